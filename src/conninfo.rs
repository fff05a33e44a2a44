//! libpq-compatible connection strings.
