//! Everything that speaks SQL. Queries use bound parameters only.

pub mod checks;
pub mod connect;
pub mod daemon_status;
pub mod events;
pub mod fence;
pub mod monitoring;
pub mod nodes;
pub mod observe;
pub mod ping;
pub mod reach;
pub mod receiver;
pub mod replication;
pub mod schema;
pub mod secret;
pub mod server;
pub mod session;
pub mod takeover;
pub mod timeline;
pub mod tls;
pub mod tls_plan;

pub use session::{
    describe_duration, driver_error_text, query_error, Row, RowExt, Session, Sql, SqlError,
};

/// A failed call as text an operator can act on (see [`driver_error_text`]).
pub fn pg_error_text(e: &SqlError) -> String {
    e.to_string()
}
