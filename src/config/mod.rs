//! repmgr.conf: typed configuration (see `params.rs`), loading and validation.
