//! Everything that speaks SQL. Queries use bound parameters only.

pub mod checks;
pub mod connect;
pub mod daemon_status;
pub mod events;
pub mod fence;
pub mod monitoring;
pub mod nodes;
pub mod ping;
pub mod reach;
pub mod replication;
pub mod schema;
pub mod server;
pub mod session;
pub mod timeline;

pub use schema::query_error;
pub use session::{Row, Session, Sql, SqlError};

/// A failed call as text an operator can act on (see [`driver_error_text`]).
pub fn pg_error_text(e: &SqlError) -> String {
    e.to_string()
}

/// "2 s", "1.5 s", "250 ms".
pub fn describe_duration(d: std::time::Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{} ms", d.as_millis())
    } else if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// A driver error as text an operator can act on: the server's own message
/// (with its DETAIL and HINT) or the whole cause chain of a client error,
/// since the driver's Display alone hides the cause.
pub fn driver_error_text(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{}: {}", db.severity(), db.message());
        if let Some(d) = db.detail() {
            s.push_str(&format!("\nDETAIL: {d}"));
        }
        if let Some(h) = db.hint() {
            s.push_str(&format!("\nHINT: {h}"));
        }
        return s;
    }
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}
