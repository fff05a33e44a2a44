//! Fencing a primary that must not take writes, reversibly: the server's
//! default becomes read-only (ALTER SYSTEM + reload, so it holds for every
//! new session and survives a restart) and every client session is ended.
//! A client could still override the default per session; operators who
//! need a hard stop use `fence_mode = stop`. Needs a superuser.

use std::time::Duration;

use super::session::RowExt;
use super::session::{Session, Sql};

use super::query_error;
use crate::error::Result;

/// [`is_fenced`] as an expression, for statements that ask more. The
/// source of the setting is only in `pg_show_all_settings()`, which builds
/// every setting's row: on a new session that is about half a millisecond
/// of server time, most of what `node check --role` costs the server. The
/// CASE asks it only when the current value is read-only at all (CASE
/// evaluates its branches lazily; the sub-select is an InitPlan run on
/// first use), so a node that is not fenced never pays for it.
pub(super) const FENCED: &str = "CASE WHEN pg_catalog.pg_is_in_recovery()
           OR NOT pg_catalog.current_setting('default_transaction_read_only')::BOOL
         THEN FALSE
         ELSE COALESCE((SELECT setting = 'on' AND source = 'configuration file'
                          FROM pg_catalog.pg_show_all_settings()
                         WHERE name = 'default_transaction_read_only'), FALSE)
    END";

/// Whether this node is fenced: a primary whose configured default is
/// read-only (`default_transaction_read_only` from postgresql.auto.conf).
/// (`checks::stats` asks the same in its one statement.) Through
/// `pg_show_all_settings()`, not the `pg_settings` view: one round trip,
/// no view to expand.
pub fn is_fenced(c: &mut impl Sql) -> Result<bool> {
    let row = c
        .query_typed_one(&format!("SELECT {FENCED}"), &[])
        .map_err(|e| query_error("checking whether the node is fenced", &e))?;
    row.val(0)
}

/// A new session for [`fence_read_only`]'s look at the reloaded setting,
/// or why there is none.
pub enum Fresh {
    Open(Box<Session>),
    /// The server answered, with an error (too many clients, say).
    Refused,
    /// Nothing answered within the connect deadline: the server is hung
    /// (or gone).
    Silent,
}

/// Makes the server read-only for new sessions and ends the existing ones
/// (but `spare`, repmgrd's own). `fresh` opens a new session, to see when
/// the reloaded setting is live before the sessions are ended (none may
/// slip through in between). A server that answers no new connection at
/// all (or no query on one) fails the fence at once: it is hung, ending its sessions would wait
/// out another deadline, and the time left is the kill's (a fence job that
/// waited out its 5 s here against a hung server kept its repmgrd from
/// killing it before its lease ended).
pub fn fence_read_only(
    c: &mut Session,
    fresh: &dyn Fn() -> Fresh,
    spare: Option<i32>,
) -> Result<u64> {
    c.batch_execute("ALTER SYSTEM SET default_transaction_read_only = on")
        .map_err(|e| query_error("fencing the node (ALTER SYSTEM)", &e))?;
    c.batch_execute("SELECT pg_catalog.pg_reload_conf()")
        .map_err(|e| query_error("reloading the configuration", &e))?;
    // Bounded: if the setting is not seen live within 5 s the sessions
    // are ended all the same (new ones get the reloaded default anyway).
    let mut silent = false;
    let _live = crate::poll::until(Duration::from_secs(5), Duration::from_millis(20), || {
        let mut f = match fresh() {
            Fresh::Open(f) => f,
            Fresh::Refused => return None,
            Fresh::Silent => {
                silent = true;
                return Some(());
            }
        };
        let r = match f.query_one(
            "SELECT pg_catalog.current_setting('default_transaction_read_only')",
            &[],
        ) {
            Ok(r) => r,
            // Connected, then nothing: hung since.
            Err(e) if e.is_timeout() => {
                silent = true;
                return Some(());
            }
            Err(_) => return None,
        };
        (r.val::<String>(0).ok()? == "on").then_some(())
    });
    if silent {
        return Err(crate::error::Error::db_conn(
            "the server answers no new connection (or no query on one): its client sessions were not ended",
        ));
    }
    end_client_sessions(c, spare)
}

/// repmgrd's own session keeps writing its metadata (heartbeat, events)
/// on a fenced node: a session setting overrides the configured default.
pub fn exempt_session(c: &mut impl Sql) -> Result<()> {
    c.batch_execute("SET default_transaction_read_only = off")
        .map_err(|e| query_error("exempting repmgrd's session from the fence", &e))
}

/// Ends every client session but our own (and `spare`), and every
/// background worker that could write (logical replication, extensions'
/// workers): after this only repmgrd's own sessions remain.
pub fn end_client_sessions(c: &mut impl Sql, spare: Option<i32>) -> Result<u64> {
    c.execute(
        "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity
          WHERE backend_type IN ('client backend', 'background worker', 'logical replication worker')
            AND pid <> pg_catalog.pg_backend_pid()
            AND pid IS DISTINCT FROM $1",
        &[&spare],
    )
    .map_err(|e| query_error("ending client sessions", &e))
}

/// Lifts a read-only fence.
pub fn unfence(c: &mut impl Sql) -> Result<()> {
    // Two statements: ALTER SYSTEM cannot run inside a multi-statement
    // (implicitly transactional) query.
    c.batch_execute("ALTER SYSTEM RESET default_transaction_read_only")
        .map_err(|e| query_error("lifting the fence", &e))?;
    c.batch_execute("SELECT pg_catalog.pg_reload_conf()")
        .map_err(|e| query_error("reloading the configuration", &e))
}

/// The voting term as this node's metadata copy has it.
pub fn voting_term(c: &mut impl Sql) -> Result<i32> {
    let row = c
        .query_opt("SELECT term FROM repmgr.voting_term", &[])
        .map_err(|e| query_error("reading the voting term", &e))?;
    Ok(row.map(|r| r.val(0)).transpose()?.unwrap_or(0))
}
