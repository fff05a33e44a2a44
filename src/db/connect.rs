//! Opening database connections the way repmgr does (`dbutils.c`,
//! `_establish_db_connection`): `connect_timeout=2` unless given,
//! `fallback_application_name`, an empty `search_path`, and
//! `synchronous_commit` set to `local` so repmgr's own writes never wait for
//! a synchronous standby that may be the very node being repaired.

use std::time::Duration;

use tokio_postgres::error::SqlState;

use std::time::Instant;

use super::session::{RowExt, Session, Sql, SqlError};
use super::{tls, tls_plan};
use crate::conninfo::{ConnInfo, ConnTarget, Endpoint, ServerRole};
use crate::error::{Error, Result};

/// Appended to any user `options`: later `-c` settings win, so repmgr's
/// queries always run with an empty, safe search_path, and with
/// `synchronous_commit` at `local` (repmgr's `SET` after connecting; in the
/// startup packet it costs no round trip, and a setting given there beats
/// role and database settings just as a `SET` does).
const SESSION_OPTIONS: &str = "-csearch_path= -csynchronous_commit=local";

/// Opens a connection for `app` ("repmgr" or "repmgrd", the fallback
/// application_name). The whole attempt, from TCP connect to ReadyForQuery,
/// is bounded by connect_timeout (per host), and so is every later query
/// on the session (see [`set_query_bound`]).
pub fn connect(ci: &ConnInfo, app: &str) -> Result<Session> {
    probe(ci, app).map_err(|(e, _)| e)
}

/// One connection attempt that also tells, on failure, whether the server
/// answered at all (as [`ping`] would), so callers that need both (`cluster
/// show`) never pay two timeouts for one unreachable node.
pub fn probe(ci: &ConnInfo, app: &str) -> std::result::Result<Session, (Error, Ping)> {
    let ci = with_repmgr_defaults(ci, app);
    crate::log_debug!("connecting to: \"{}\"", ci.to_string_without_password());
    let target = resolve_target(&ci).map_err(|e| (e, Ping::NoResponse))?;
    open_session(&target)
}

/// The longest a query waits for its answer, unless the call names
/// another bound: the connection's own connect_timeout, or this process's
/// setting when larger (the CLI uses `async_query_timeout`). repmgrd keeps
/// the connect_timeout: a node that does not answer a trivial query within
/// it is unreachable for its purposes.
static QUERY_BOUND_SECS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Sets this process's query bound (0: the connect_timeout alone).
pub fn set_query_bound(d: Duration) {
    QUERY_BOUND_SECS.store(d.as_secs(), std::sync::atomic::Ordering::Relaxed);
}

/// How long one attempt on `ci` and one query on it may take, or None
/// when the conninfo does not resolve (the attempt fails at once).
pub fn attempt_limit(ci: &ConnInfo, app: &str) -> Option<Duration> {
    let target = prepare(ci, app).ok()?;
    Some(target.deadline() + query_bound(&target))
}

fn query_bound(target: &ConnTarget) -> Duration {
    let configured =
        Duration::from_secs(QUERY_BOUND_SECS.load(std::sync::atomic::Ordering::Relaxed));
    target.connect_timeout.max(configured)
}

pub use super::ping::Ping;

/// Checks whether a server is there, within the same deadline as [`connect`].
pub fn ping(ci: &ConnInfo, app: &str) -> Ping {
    ping_within(ci, app, None)
}

/// [`ping`] bounded by `limit` instead of the conninfo's connect_timeout
/// (which, as in libpq, is never below 2 s): for a look that must be
/// quick.
pub fn ping_within(ci: &ConnInfo, app: &str, limit: Option<Duration>) -> Ping {
    let mut target = match prepare(ci, app) {
        Ok(t) => t,
        Err(e) => {
            crate::log_debug!("ping: {}", e);
            return Ping::NoResponse;
        }
    };
    if let Some(limit) = limit {
        target.connect_timeout = limit;
    }
    // Cheap path first: a startup packet and the first answer, no thread.
    if let Some(answer) = super::ping::raw_ping(&target, app) {
        return answer;
    }
    match open_attempts(&target, target.deadline(), target.deadline()) {
        Ok(_session) => Ping::Ok,
        Err(Failure::Setup(_)) => Ping::NoResponse,
        Err(Failure::Connect { last, .. }) => last
            .driver_error()
            .map(classify_ping_error)
            .unwrap_or(Ping::NoResponse),
    }
}

/// Why [`open_attempts`] gave up.
enum Failure {
    /// The TLS files could not be used: nothing was sent.
    Setup(Error),
    /// The last attempt's error, and what the earlier ones said.
    Connect {
        last: SqlError,
        earlier: Vec<String>,
    },
}

/// Endpoints connected to with one driver configuration: all of them,
/// unless unix sockets and TCP are mixed (TLS applies to TCP only, and the
/// driver takes one TLS mode per configuration).
fn endpoint_groups(target: &ConnTarget) -> Vec<Vec<Endpoint>> {
    let tcp = target
        .endpoints
        .iter()
        .filter(|e| matches!(e, Endpoint::Tcp { .. }))
        .count();
    if tcp == 0 || tcp == target.endpoints.len() {
        return vec![target.endpoints.clone()];
    }
    target.endpoints.iter().map(|e| vec![e.clone()]).collect()
}

/// libpq's attempts for the target's sslmode (see [`tls_plan::plan`]), every
/// one within what is left of `limit`.
fn open_attempts(
    target: &ConnTarget,
    limit: Duration,
    bound: Duration,
) -> std::result::Result<Session, Failure> {
    let deadline = Instant::now() + limit;
    let mut earlier = Vec::new();
    let mut last = None;
    // libpq: prefer-standby takes any server when no standby answered.
    let passes: &[Option<ServerRole>] = match target.server_role {
        Some(ServerRole::PreferStandby) => &[Some(ServerRole::Standby), None],
        Some(ServerRole::Primary) => &[Some(ServerRole::Primary)],
        Some(ServerRole::Standby) => &[Some(ServerRole::Standby)],
        None => &[None],
    };
    for want in passes {
        for group in endpoint_groups(target) {
            match try_group(target, &group, *want, deadline, bound, &mut earlier)? {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
    }
    Err(Failure::Connect {
        last: last.unwrap_or(SqlError::TimedOut(limit)),
        earlier,
    })
}

/// Whether a session's server is in the role asked for; why not if not.
fn role_mismatch(session: &mut Session, want: Option<ServerRole>) -> Option<String> {
    let want = want?;
    let standby = match session.query_typed_one("SELECT pg_is_in_recovery()", &[]) {
        Ok(row) => row.val::<bool>(0).unwrap_or(false),
        Err(e) => return Some(format!("could not check the server's role: {e}")),
    };
    match (want, standby) {
        (ServerRole::Primary, true) => Some("server is in hot standby mode".into()),
        (ServerRole::Standby | ServerRole::PreferStandby, false) => {
            Some("server is not in hot standby mode".into())
        }
        _ => None,
    }
}

/// The attempts of one endpoint group; the inner error is the last one.
fn try_group(
    target: &ConnTarget,
    group: &[Endpoint],
    want: Option<ServerRole>,
    deadline: Instant,
    bound: Duration,
    earlier: &mut Vec<String>,
) -> std::result::Result<std::result::Result<Session, SqlError>, Failure> {
    let mut last = SqlError::TimedOut(Duration::ZERO);
    // The role is checked per server, so each is its own group then.
    if want.is_some() && group.len() > 1 {
        for e in group {
            match try_group(
                target,
                std::slice::from_ref(e),
                want,
                deadline,
                bound,
                earlier,
            )? {
                Ok(s) => return Ok(Ok(s)),
                Err(e) => last = e,
            }
        }
        return Ok(Err(last));
    }
    for (attempt, fallback) in tls_plan::plan(target, group).map_err(Failure::Setup)? {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(Err(SqlError::TimedOut(left)));
        }
        let config = target.config_for(group, attempt.mode);
        let err = match Session::open(&config, attempt.tls.as_ref(), left, bound) {
            Ok(mut s) => match role_mismatch(&mut s, want) {
                None => return Ok(Ok(s)),
                Some(why) => return Ok(Err(SqlError::Unexpected(why))),
            },
            Err(e) => e,
        };
        let server_spoke = err.as_db_error().is_some();
        let tls_failed = err.driver_error().is_some_and(tls::is_tls_failure);
        let again = match fallback {
            tls_plan::Fallback::Never => false,
            tls_plan::Fallback::OnServerError => server_spoke,
            tls_plan::Fallback::OnTlsOrServerError => server_spoke || tls_failed,
        };
        if !again {
            return Ok(Err(err));
        }
        let over = if attempt.tls.is_some() {
            "over TLS"
        } else {
            "without TLS"
        };
        let cause = connect_cause(&err);
        if tls_failed {
            crate::log_info!(
                "{cause} with {}; trying without TLS, as sslmode={} allows",
                target.describe(),
                target.ssl.mode
            );
        } else {
            crate::log_debug!(
                "{over}: {cause}; trying again as sslmode={}",
                target.ssl.mode
            );
        }
        earlier.push(format!("{over}: {cause}"));
        last = err;
    }
    Ok(Err(last))
}

/// Applies repmgr's additions to the conninfo and resolves it.
fn prepare(ci: &ConnInfo, app: &str) -> Result<ConnTarget> {
    resolve_target(&with_repmgr_defaults(ci, app))
}

/// repmgr's `param_set_ine` calls: they lose to values already present.
fn with_repmgr_defaults(ci: &ConnInfo, app: &str) -> ConnInfo {
    let mut ci = ci.clone();
    ci.set_if_absent("connect_timeout", "2");
    ci.set_if_absent("fallback_application_name", app);
    ci
}

/// Resolves and adds the session options after the environment was
/// applied, so it also follows any PGOPTIONS.
fn resolve_target(ci: &ConnInfo) -> Result<ConnTarget> {
    let mut target = ci.resolve()?;
    target.options = Some(with_session_options(target.options.as_deref()));
    Ok(target)
}

fn with_session_options(user_options: Option<&str>) -> String {
    match user_options.map(str::trim).filter(|o| !o.is_empty()) {
        Some(o) => format!("{o} {SESSION_OPTIONS}"),
        None => SESSION_OPTIONS.to_string(),
    }
}

fn open_session(target: &ConnTarget) -> std::result::Result<Session, (Error, Ping)> {
    let limit = target.deadline();
    let session = match open_attempts(target, limit, query_bound(target)) {
        Ok(s) => s,
        Err(Failure::Setup(e)) => return Err((e, Ping::NoResponse)),
        // The driver's own TCP connect timeout and our deadline for the
        // whole attempt end at the same moment: one message for both.
        Err(Failure::Connect { last: e, .. })
            if e.is_timeout() || e.to_string().contains("timed out") =>
        {
            return Err((
                connection_failed(format!(
                    "timeout expired after {} s connecting to {}",
                    limit.as_secs(),
                    target.describe()
                )),
                Ping::NoResponse,
            ))
        }
        Err(Failure::Connect { last: e, earlier }) => {
            let ping = match e.driver_error() {
                Some(d) => classify_ping_error(d),
                None => Ping::NoResponse,
            };
            let cause = connect_cause(&e);
            let mut detail = format!("could not connect to {}: {cause}", target.describe());
            if !earlier.is_empty() {
                detail.push_str(&format!(" (before that, {})", earlier.join("; ")));
            }
            let mut err = connection_failed(detail);
            if let Some(h) = tls::hint_for(&cause, target) {
                err = err.hint(h);
            }
            return Err((err, ping));
        }
    };
    Ok(session)
}

fn connection_failed(detail: String) -> Error {
    Error::db_conn("connection to database failed").detail(detail)
}

/// The error without the driver's redundant prefix, and with a readable
/// reason when the server wanted a password we do not have.
fn connect_cause(e: &SqlError) -> String {
    if let SqlError::Unexpected(why) = e {
        return why.clone();
    }
    if let Some(text) = e.driver_error().and_then(tls::failure_text) {
        return text;
    }
    let full = e.to_string();
    if full == "invalid configuration: password missing" {
        return "no password supplied (none in the conninfo, PGPASSWORD or the password file)"
            .into();
    }
    match full.strip_prefix("error connecting to server: ") {
        Some(rest) => rest.to_string(),
        None => full,
    }
}

/// A server that sent anything at all is up (PQping's rule): an error
/// response, an authentication request we could not satisfy, or a protocol
/// surprise. Only "starting up / shutting down" is a rejection.
fn classify_ping_error(e: &tokio_postgres::Error) -> Ping {
    if let Some(db) = e.as_db_error() {
        return match *db.code() == SqlState::CANNOT_CONNECT_NOW {
            true => Ping::Reject,
            false => Ping::Ok,
        };
    }
    let full = super::driver_error_text(e);
    let server_spoke = full.ends_with("password missing")
        || full.starts_with("authentication error")
        || full.starts_with("unexpected message from server");
    match server_spoke {
        true => Ping::Ok,
        false => Ping::NoResponse,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn conninfo(s: &str) -> ConnInfo {
        ConnInfo::parse(s).unwrap()
    }

    /// `Client` has no Debug, so `unwrap_err` is not available.
    fn connect_err(ci: &ConnInfo) -> Error {
        match connect(ci, "repmgr") {
            Ok(_) => panic!("connected unexpectedly"),
            Err(e) => e,
        }
    }

    #[test]
    fn session_options_are_appended_to_user_options() {
        assert_eq!(with_session_options(None), SESSION_OPTIONS);
        assert_eq!(with_session_options(Some(" ")), SESSION_OPTIONS);
        assert_eq!(
            with_session_options(Some("-c work_mem=64MB")),
            "-c work_mem=64MB -csearch_path= -csynchronous_commit=local"
        );
    }

    #[test]
    fn prepare_adds_repmgr_defaults_without_overriding() {
        let t = prepare(&conninfo("host=127.0.0.1 user=u dbname=d"), "repmgrd").unwrap();
        assert_eq!(t.application_name.as_deref(), Some("repmgrd"));
        assert_eq!(t.connect_timeout, Duration::from_secs(2));
        let t = prepare(
            &conninfo("host=127.0.0.1 user=u application_name=mine connect_timeout=5"),
            "repmgr",
        )
        .unwrap();
        assert_eq!(t.application_name.as_deref(), Some("mine"));
        assert_eq!(t.connect_timeout, Duration::from_secs(5));
    }

    /// A port nobody listens on: bind, note the port, close the listener.
    fn closed_port() -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }

    #[test]
    fn closed_port_fails_fast_with_target_in_detail() {
        let port = closed_port();
        let ci = conninfo(&format!(
            "host=127.0.0.1 port={port} user=repmgr dbname=repmgr password=secret"
        ));
        let err = connect_err(&ci);
        assert_eq!(err.code, crate::error::ExitCode::DbConn);
        assert_eq!(err.message(), "connection to database failed");
        let detail = err.detail.unwrap();
        assert!(
            detail.starts_with(&format!(
                "could not connect to server at \"127.0.0.1:{port}\" (dbname=repmgr user=repmgr): "
            )),
            "{detail}"
        );
        assert!(detail.contains("Connection refused"), "{detail}");
        assert!(!detail.contains("secret"));
        assert_eq!(ping(&ci, "repmgr"), Ping::NoResponse);
    }

    #[test]
    fn hung_listener_gives_up_at_the_deadline() {
        // Accepts TCP (the kernel completes the handshake) but never answers.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let ci = conninfo(&format!("host=127.0.0.1 port={port} user=u dbname=d"));
        let err = connect_err(&ci);
        let detail = err.detail.unwrap();
        assert_eq!(
            detail,
            format!("timeout expired after 2 s connecting to server at \"127.0.0.1:{port}\" (dbname=d user=u)")
        );
        assert_eq!(ping(&ci, "repmgr"), Ping::NoResponse);
        drop(listener);
    }

    /// Accepts TCP, says yes to the SSLRequest, then never speaks again: a
    /// server that hangs in the TLS handshake.
    fn silent_after_ssl_yes() -> (u16, std::thread::JoinHandle<()>) {
        use std::io::{Read, Write};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = std::thread::spawn(move || {
            // One connection from connect(), one from ping().
            for _ in 0..2 {
                let Ok((mut s, _)) = listener.accept() else {
                    return;
                };
                let mut req = [0u8; 8];
                if s.read_exact(&mut req).is_ok() {
                    let _ = s.write_all(b"S");
                }
                let mut sink = [0u8; 512];
                while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
            }
        });
        (port, handle)
    }

    #[test]
    fn a_hung_tls_handshake_gives_up_at_the_deadline() {
        let (port, server) = silent_after_ssl_yes();
        let ci = conninfo(&format!(
            "host=127.0.0.1 port={port} user=u dbname=d sslmode=require sslrootcert=/nonexistent"
        ));
        let start = std::time::Instant::now();
        let detail = connect_err(&ci).detail.unwrap();
        assert!(detail.starts_with("timeout expired after 2 s"), "{detail}");
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
        let start = std::time::Instant::now();
        assert_eq!(ping(&ci, "repmgr"), Ping::NoResponse);
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
        server.join().unwrap();
    }

    #[test]
    fn unsupported_conninfo_is_a_connection_error() {
        let err = connect_err(&conninfo(
            "host=127.0.0.1 sslmode=verify-full sslrootcert=/nonexistent/root.crt",
        ));
        assert_eq!(err.code, crate::error::ExitCode::DbConn);
        assert!(err.detail.unwrap().contains("does not exist"));
        assert_eq!(
            ping(&conninfo("host=127.0.0.1 service=x"), "repmgr"),
            Ping::NoResponse
        );
    }
}
