//! A database session whose every call has a deadline: the only way this
//! program talks SQL.
//!
//! Why not the `postgres` crate's blocking `Client`: it drives
//! tokio-postgres on a private runtime with no bound on a query, so a
//! server that accepted the connection and then stopped answering (a
//! SIGSTOPped host, a hung postmaster, a VM pause: the kernel still ACKs,
//! keepalives still answer) blocks the caller for ever, and no server-side
//! timeout fires on a frozen server. A [`Session`] is the same shape (one
//! current-thread runtime per connection, polled only while a call runs),
//! but each call races the server's answer against a client-side deadline
//! and against a stop request ([`crate::shutdown`]). When the deadline
//! passes, the connection is dropped at once (its socket closed) and every
//! later call fails immediately: a session that missed a deadline is never
//! trusted again.
//!
//! Bounds: connecting is bounded by the target's `connect_timeout` (per
//! host, as libpq); each call by the session's query bound unless the call
//! names a longer one (CHECKPOINT, a backup start).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::{pin, Pin};
use std::task::Poll;
use std::time::Duration;

use tokio::runtime::Runtime;
use tokio_postgres::error::{DbError, SqlState};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{NoTls, Statement};

use super::tls_plan::{LazyTls, Tls};

pub use tokio_postgres::Row;

/// Reading a column without panicking: a server whose answer has another
/// type than the statement promises (or a NULL where none can be) is an
/// error for the caller to report, not a crash.
pub trait RowExt {
    fn val<'a, T: tokio_postgres::types::FromSql<'a>>(
        &'a self,
        idx: usize,
    ) -> crate::error::Result<T>;
}

impl RowExt for Row {
    fn val<'a, T: tokio_postgres::types::FromSql<'a>>(
        &'a self,
        idx: usize,
    ) -> crate::error::Result<T> {
        self.try_get(idx).map_err(|e| {
            crate::error::Error::db_query("unexpected answer from the server").detail(format!(
                "column {} ({}): {}",
                idx + 1,
                self.columns().get(idx).map_or("?", |c| c.name()),
                driver_error_text(&e)
            ))
        })
    }
}

/// Bound parameters of one statement.
pub type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// Bound parameters with their types given: the statement then needs no
/// separate prepare round trip.
pub type TypedParams<'a> = &'a [(&'a (dyn ToSql + Sync), Type)];

/// How often a waiting call looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);

/// How long dropping a session waits for the goodbye message to go out.
const CLOSE_GRACE: Duration = Duration::from_millis(200);

type Driver = Pin<Box<dyn Future<Output = Result<(), tokio_postgres::Error>> + Send>>;

/// Why a call failed.
#[derive(Debug)]
pub enum SqlError {
    /// The server (or the driver) reported an error.
    Server(tokio_postgres::Error),
    /// No answer within the bound: the session is closed.
    TimedOut(Duration),
    /// A stop was requested while waiting: the session is closed.
    Stopped,
    /// The session was closed earlier (a missed deadline, a lost socket).
    Closed,
    /// The driver's runtime could not be created.
    Runtime(String),
    /// The answer was not what the statement promises (row count, type).
    Unexpected(String),
}

impl SqlError {
    /// The server's own error, with its SQLSTATE, message, detail and hint.
    pub fn as_db_error(&self) -> Option<&DbError> {
        match self {
            SqlError::Server(e) => e.as_db_error(),
            _ => None,
        }
    }

    pub fn code(&self) -> Option<&SqlState> {
        self.as_db_error().map(DbError::code)
    }

    /// The connection is gone (closed by either side, or abandoned).
    pub fn is_closed(&self) -> bool {
        match self {
            SqlError::Server(e) => e.is_closed(),
            SqlError::Unexpected(_) => false,
            _ => true,
        }
    }

    /// Nothing answered within the bound.
    pub fn is_timeout(&self) -> bool {
        matches!(self, SqlError::TimedOut(_))
    }

    /// The driver's error, for classifying connection failures.
    pub fn driver_error(&self) -> Option<&tokio_postgres::Error> {
        match self {
            SqlError::Server(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SqlError::Server(e) => f.write_str(&driver_error_text(e)),
            SqlError::TimedOut(d) => write!(
                f,
                "no answer from the server within {}; the connection was closed",
                describe_duration(*d)
            ),
            SqlError::Stopped => f.write_str("interrupted: a stop was requested"),
            SqlError::Closed => {
                f.write_str("the connection was closed (an earlier call failed or timed out)")
            }
            SqlError::Runtime(e) => write!(f, "could not start the database driver: {e}"),
            SqlError::Unexpected(e) => write!(f, "unexpected answer from the server: {e}"),
        }
    }
}

impl std::error::Error for SqlError {}

impl From<tokio_postgres::Error> for SqlError {
    fn from(e: tokio_postgres::Error) -> Self {
        SqlError::Server(e)
    }
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

/// Describes a failed query: what we were doing, and the server's words.
pub fn query_error(what: &str, e: &SqlError) -> crate::error::Error {
    crate::error::Error::db_query(format!("error {what}")).detail(e.to_string())
}

/// What a bounded wait came to.
enum Waited<T> {
    Done(T),
    /// The connection ended and the request did not complete with it.
    Closed,
    TimedOut,
    Stopped,
}

/// Whether a wait also ends when a stop is requested (looked at every
/// STOP_POLL), or only by its own limit.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OnStop {
    End,
    Ignore,
}

/// Runs `fut` on `runtime` while also driving `driver` (the connection's
/// socket), until it finishes, `limit` passes, or (`OnStop::End`) a stop
/// is requested.
fn wait_for<T>(
    runtime: &Runtime,
    driver: &mut Option<Driver>,
    limit: Duration,
    on_stop: OnStop,
    fut: impl Future<Output = T>,
) -> Waited<T> {
    // Connecting has no driver yet; only a driver that ends mid-wait counts.
    let had_driver = driver.is_some();
    runtime.block_on(async {
        let mut fut = pin!(fut);
        let mut sleep = pin!(tokio::time::sleep(limit));
        let mut stop_check = (on_stop == OnStop::End).then(|| tokio::time::interval(STOP_POLL));
        std::future::poll_fn(|cx| {
            if let Some(d) = driver.as_mut() {
                if let Poll::Ready(result) = d.as_mut().poll(cx) {
                    // The socket is gone; the request below fails as closed.
                    if let Err(e) = result {
                        crate::log_debug!("database connection ended: {e}");
                    }
                    *driver = None;
                }
            }
            if let Poll::Ready(v) = fut.as_mut().poll(cx) {
                return Poll::Ready(Waited::Done(v));
            }
            if had_driver && driver.is_none() {
                return Poll::Ready(Waited::Closed);
            }
            if sleep.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Waited::TimedOut);
            }
            if let Some(check) = stop_check.as_mut() {
                while check.poll_tick(cx).is_ready() {
                    if crate::shutdown::requested() {
                        return Poll::Ready(Waited::Stopped);
                    }
                }
            }
            Poll::Pending
        })
        .await
    })
}

fn runtime() -> Result<Runtime, SqlError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| SqlError::Runtime(e.to_string()))
}

/// Runs the request `$make(client)` on `$s`, bounded by `$limit`. A macro,
/// not a method taking a closure: the request borrows the client while the
/// runtime and the socket driver are borrowed mutably beside it.
macro_rules! bounded {
    ($s:expr, $limit:expr, |$c:ident| $make:expr) => {{
        let limit: Duration = $limit;
        let Session {
            runtime,
            client,
            driver,
            ..
        } = &mut *$s;
        match (client.as_ref(), driver.is_some()) {
            (Some($c), true) => {
                let outcome = wait_for(runtime, driver, limit, OnStop::End, $make);
                $s.finish(outcome, limit)
            }
            _ => Err(SqlError::Closed),
        }
    }};
}

/// One connection to one server. Not shared between threads; move it.
pub struct Session {
    runtime: Runtime,
    client: Option<tokio_postgres::Client>,
    driver: Option<Driver>,
    bound: Duration,
    /// Statements prepared on this connection, by their text: a query then
    /// costs one round trip instead of two (repmgrd asks the same few every
    /// cycle, and idle cost is mostly round trips).
    statements: HashMap<String, Statement>,
    /// Facts about the schema this session found true (a table or column
    /// exists): asked once per connection, not every cycle.
    known: Vec<&'static str>,
}

/// Prepared statements kept per session at most (the queries are fixed
/// texts; a caller that builds texts must not grow the cache).
const STATEMENTS_KEPT: usize = 64;

impl Session {
    /// Connects within `limit` (TCP, TLS handshake, startup,
    /// authentication, all of it); later calls are bounded by `bound`.
    /// Without `tls` the connection is plaintext whatever the config says.
    pub fn open(
        config: &tokio_postgres::Config,
        tls: Option<&Tls>,
        limit: Duration,
        bound: Duration,
    ) -> Result<Session, SqlError> {
        let runtime = runtime()?;
        let mut none = None;
        // Either connector ends in a client and a boxed socket driver.
        let connecting = async {
            match tls {
                None => config
                    .connect(NoTls)
                    .await
                    .map(|(c, conn)| (c, Box::pin(conn) as Driver)),
                Some(Tls::Ready(t)) => config
                    .connect(t.make_connector())
                    .await
                    .map(|(c, conn)| (c, Box::pin(conn) as Driver)),
                Some(Tls::Lazy(ssl)) => config
                    .connect(LazyTls(ssl.clone()))
                    .await
                    .map(|(c, conn)| (c, Box::pin(conn) as Driver)),
            }
        };
        match wait_for(&runtime, &mut none, limit, OnStop::End, connecting) {
            Waited::Done(Ok((client, driver))) => Ok(Session {
                runtime,
                client: Some(client),
                driver: Some(driver),
                bound,
                statements: HashMap::new(),
                known: Vec::new(),
            }),
            Waited::Done(Err(e)) => Err(SqlError::Server(e)),
            Waited::Closed => Err(SqlError::Closed),
            Waited::TimedOut => Err(SqlError::TimedOut(limit)),
            Waited::Stopped => Err(SqlError::Stopped),
        }
    }

    /// The bound each call waits at most, unless it says otherwise.
    pub fn bound(&self) -> Duration {
        self.bound
    }

    pub fn set_bound(&mut self, bound: Duration) {
        self.bound = bound;
    }

    /// Whether the session can no longer be used.
    pub fn is_closed(&self) -> bool {
        self.client.as_ref().is_none_or(|c| c.is_closed()) || self.driver.is_none()
    }

    /// Turns the outcome of a bounded call into its result; a missed
    /// deadline or a stop closes the session.
    fn finish<T>(
        &mut self,
        outcome: Waited<Result<T, tokio_postgres::Error>>,
        limit: Duration,
    ) -> Result<T, SqlError> {
        match outcome {
            Waited::Done(r) => r.map_err(SqlError::Server),
            Waited::Closed => {
                self.abandon();
                Err(SqlError::Closed)
            }
            Waited::TimedOut => {
                self.abandon();
                Err(SqlError::TimedOut(limit))
            }
            Waited::Stopped => {
                self.abandon();
                Err(SqlError::Stopped)
            }
        }
    }

    /// Drops the connection without goodbye: the server may be frozen.
    fn abandon(&mut self) {
        self.driver = None;
        self.client = None;
        self.statements.clear();
    }

    /// `sql` prepared on this connection (once).
    fn statement(&mut self, sql: &str) -> Result<Statement, SqlError> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let limit = self.bound;
        let s = bounded!(self, limit, |c| c.prepare(sql))?;
        if self.statements.len() >= STATEMENTS_KEPT {
            self.statements.clear();
        }
        self.statements.insert(sql.to_string(), s.clone());
        Ok(s)
    }

    /// Runs `run` on the prepared `sql`; a statement the server no longer
    /// takes (the schema changed under it, or it was discarded) is
    /// prepared anew once.
    fn prepared<T>(
        &mut self,
        sql: &str,
        mut run: impl FnMut(&mut Session, &Statement) -> Result<T, SqlError>,
    ) -> Result<T, SqlError> {
        let s = self.statement(sql)?;
        match run(self, &s) {
            Err(e) if is_stale_statement(&e) => {
                self.statements.remove(sql);
                let s = self.statement(sql)?;
                run(self, &s)
            }
            r => r,
        }
    }

    /// A trivial round trip within `limit`.
    pub fn is_valid(&mut self, limit: Duration) -> Result<(), SqlError> {
        bounded!(self, limit, |c| async move {
            c.simple_query("").await.map(|_| ())
        })
    }

    /// Waits up to `limit` for the server to close the connection (its
    /// backend ended: the server died or was stopped). True when closed.
    /// Nothing is sent: an idle session costs the server nothing, and the
    /// wait does not wake for the stop flag either (its caller looks at
    /// its own between waits), so an idle watcher costs no CPU.
    pub fn wait_closed(&mut self, limit: Duration) -> bool {
        let Session {
            runtime, driver, ..
        } = self;
        if driver.is_none() {
            return true;
        }
        let never = std::future::pending::<()>();
        match wait_for(runtime, driver, limit, OnStop::Ignore, never) {
            Waited::Stopped | Waited::Closed => {
                self.abandon();
                true
            }
            Waited::Done(()) | Waited::TimedOut => false,
        }
    }

    /// Begins a transaction; it rolls back unless committed.
    pub fn transaction(&mut self) -> Result<Transaction<'_>, SqlError> {
        self.batch_execute("BEGIN")?;
        Ok(Transaction {
            session: self,
            done: false,
        })
    }
}

impl Drop for Session {
    /// Says goodbye (a Terminate message, so the server logs no "unexpected
    /// EOF"), waiting briefly for it to go out.
    fn drop(&mut self) {
        if self.client.take().is_none() {
            return;
        }
        let Session {
            runtime, driver, ..
        } = self;
        if driver.is_some() {
            let never = std::future::pending::<()>();
            let _ = wait_for(runtime, driver, CLOSE_GRACE, OnStop::End, never);
        }
    }
}

/// Statements, with bound parameters only. Implemented by a session and by
/// a transaction on it, so the functions in `db/` take either.
pub trait Sql {
    fn query(&mut self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, SqlError>;
    fn execute(&mut self, sql: &str, params: Params<'_>) -> Result<u64, SqlError>;
    /// Several statements, no parameters (schema installation, SET).
    fn batch_execute(&mut self, sql: &str) -> Result<(), SqlError>;
    /// One round trip: parameter types given, no prepare.
    fn query_typed(&mut self, sql: &str, params: TypedParams<'_>) -> Result<Vec<Row>, SqlError>;
    fn execute_typed(&mut self, sql: &str, params: TypedParams<'_>) -> Result<u64, SqlError>;
    /// Replaces the bound of later calls; returns the one it replaced.
    fn replace_bound(&mut self, bound: Duration) -> Duration;
    /// Whether this connection already found `fact` true ([`Sql::learn`]).
    fn knows(&self, fact: &'static str) -> bool;
    /// Remembers a fact about the schema that stays true (an object that
    /// exists) for the rest of this connection.
    fn learn(&mut self, fact: &'static str);

    /// Several [`Sql::query_typed`] statements, each answered on its own
    /// (one's error leaves the others' answers). A session sends them all
    /// before reading any answer: one round trip for all, under one bound.
    /// The outer error is a missed bound or a lost session.
    fn query_typed_all(
        &mut self,
        stmts: &[(&str, TypedParams<'_>)],
    ) -> Result<Vec<Result<Vec<Row>, SqlError>>, SqlError> {
        Ok(stmts
            .iter()
            .map(|(sql, params)| self.query_typed(sql, params))
            .collect())
    }

    fn query_typed_one(&mut self, sql: &str, params: TypedParams<'_>) -> Result<Row, SqlError> {
        exactly_one(self.query_typed(sql, params)?)
    }

    fn query_typed_opt(
        &mut self,
        sql: &str,
        params: TypedParams<'_>,
    ) -> Result<Option<Row>, SqlError> {
        at_most_one(self.query_typed(sql, params)?)
    }

    fn query_opt(&mut self, sql: &str, params: Params<'_>) -> Result<Option<Row>, SqlError> {
        at_most_one(self.query(sql, params)?)
    }

    fn query_one(&mut self, sql: &str, params: Params<'_>) -> Result<Row, SqlError> {
        exactly_one(self.query(sql, params)?)
    }
}

fn at_most_one(mut rows: Vec<Row>) -> Result<Option<Row>, SqlError> {
    match rows.len() {
        0 | 1 => Ok(rows.pop()),
        n => Err(SqlError::Unexpected(format!(
            "{n} rows where at most one was expected"
        ))),
    }
}

fn exactly_one(mut rows: Vec<Row>) -> Result<Row, SqlError> {
    match (rows.len(), rows.pop()) {
        (1, Some(r)) => Ok(r),
        (n, _) => Err(SqlError::Unexpected(format!(
            "{n} rows where exactly one was expected"
        ))),
    }
}

/// Every statement's request made (each future polled once, which queues
/// its messages for the connection) before any answer is awaited, so the
/// socket driver writes them together; the answers come back in order.
async fn pipelined(
    c: &tokio_postgres::Client,
    stmts: &[(&str, TypedParams<'_>)],
) -> Result<Vec<Result<Vec<Row>, tokio_postgres::Error>>, tokio_postgres::Error> {
    let mut pending: Vec<_> = stmts
        .iter()
        .map(|(sql, params)| Box::pin(c.query_typed(sql, params)))
        .collect();
    let mut answers: Vec<Option<Result<Vec<Row>, tokio_postgres::Error>>> =
        pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        for (fut, answer) in pending.iter_mut().zip(answers.iter_mut()) {
            if answer.is_none() {
                if let Poll::Ready(r) = fut.as_mut().poll(cx) {
                    *answer = Some(r);
                }
            }
        }
        if answers.iter().all(Option::is_some) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    Ok(answers.into_iter().flatten().collect())
}

/// "cached plan must not change result type" (the table changed since
/// the statement was prepared), or a statement the server dropped.
fn is_stale_statement(e: &SqlError) -> bool {
    e.as_db_error().is_some_and(|d| {
        *d.code() == SqlState::INVALID_SQL_STATEMENT_NAME
            || (*d.code() == SqlState::FEATURE_NOT_SUPPORTED && d.message().contains("cached plan"))
    })
}

impl Sql for Session {
    fn query(&mut self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, SqlError> {
        self.prepared(sql, |s, stmt| {
            let limit = s.bound;
            bounded!(s, limit, |c| c.query(stmt, params))
        })
    }

    fn execute(&mut self, sql: &str, params: Params<'_>) -> Result<u64, SqlError> {
        self.prepared(sql, |s, stmt| {
            let limit = s.bound;
            bounded!(s, limit, |c| c.execute(stmt, params))
        })
    }

    fn batch_execute(&mut self, sql: &str) -> Result<(), SqlError> {
        let limit = self.bound;
        bounded!(self, limit, |c| c.batch_execute(sql))
    }

    fn query_typed(&mut self, sql: &str, params: TypedParams<'_>) -> Result<Vec<Row>, SqlError> {
        let limit = self.bound;
        bounded!(self, limit, |c| c.query_typed(sql, params))
    }

    fn query_typed_all(
        &mut self,
        stmts: &[(&str, TypedParams<'_>)],
    ) -> Result<Vec<Result<Vec<Row>, SqlError>>, SqlError> {
        let limit = self.bound;
        let answers = bounded!(self, limit, |c| pipelined(c, stmts))?;
        Ok(answers
            .into_iter()
            .map(|a| a.map_err(SqlError::Server))
            .collect())
    }
    fn execute_typed(&mut self, sql: &str, params: TypedParams<'_>) -> Result<u64, SqlError> {
        let limit = self.bound;
        bounded!(self, limit, |c| c.execute_typed(sql, params))
    }

    fn replace_bound(&mut self, bound: Duration) -> Duration {
        std::mem::replace(&mut self.bound, bound)
    }

    fn knows(&self, fact: &'static str) -> bool {
        self.known.contains(&fact)
    }

    fn learn(&mut self, fact: &'static str) {
        if !self.knows(fact) {
            self.known.push(fact);
        }
    }
}

/// A transaction on a session: rolled back when dropped uncommitted.
pub struct Transaction<'a> {
    session: &'a mut Session,
    done: bool,
}

impl Transaction<'_> {
    pub fn commit(mut self) -> Result<(), SqlError> {
        self.done = true;
        self.session.batch_execute("COMMIT")
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.done && !self.session.is_closed() {
            let _ = self.session.batch_execute("ROLLBACK");
        }
    }
}

impl Sql for Transaction<'_> {
    fn query(&mut self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, SqlError> {
        self.session.query(sql, params)
    }
    fn execute(&mut self, sql: &str, params: Params<'_>) -> Result<u64, SqlError> {
        self.session.execute(sql, params)
    }
    fn batch_execute(&mut self, sql: &str) -> Result<(), SqlError> {
        self.session.batch_execute(sql)
    }
    fn query_typed(&mut self, sql: &str, params: TypedParams<'_>) -> Result<Vec<Row>, SqlError> {
        self.session.query_typed(sql, params)
    }
    fn execute_typed(&mut self, sql: &str, params: TypedParams<'_>) -> Result<u64, SqlError> {
        self.session.execute_typed(sql, params)
    }
    fn knows(&self, fact: &'static str) -> bool {
        self.session.knows(fact)
    }
    /// Nothing is learnt inside a transaction: it may roll back what it
    /// created.
    fn learn(&mut self, _fact: &'static str) {}
    fn replace_bound(&mut self, bound: Duration) -> Duration {
        self.session.replace_bound(bound)
    }
}

/// How long statements that wait for a checkpoint (CHECKPOINT, a backup
/// start) may take: a spread checkpoint lasts up to
/// `checkpoint_timeout × checkpoint_completion_target`.
pub const CHECKPOINT_BOUND: Duration = Duration::from_secs(30 * 60);

/// Runs `f` with `bound` for its calls instead of the session's own.
pub fn with_bound<S: Sql + ?Sized, R>(
    c: &mut S,
    bound: Duration,
    f: impl FnOnce(&mut S) -> R,
) -> R {
    let saved = c.replace_bound(bound);
    let r = f(c);
    c.replace_bound(saved);
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A server that completes the startup (trust authentication) and then
    /// never answers again: a frozen host whose kernel still ACKs.
    fn silent_after_startup() -> (u16, std::thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut len = [0u8; 4];
            s.read_exact(&mut len).unwrap();
            let mut body = vec![0u8; u32::from_be_bytes(len) as usize - 4];
            s.read_exact(&mut body).unwrap();
            // AuthenticationOk, BackendKeyData, ReadyForQuery(idle).
            let mut out = Vec::new();
            out.extend_from_slice(&[b'R', 0, 0, 0, 8, 0, 0, 0, 0]);
            out.extend_from_slice(&[b'K', 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 2]);
            out.extend_from_slice(&[b'Z', 0, 0, 0, 5, b'I']);
            s.write_all(&out).unwrap();
            // Read whatever comes, answer nothing, until the client hangs up.
            let mut sink = [0u8; 512];
            while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
        });
        (port, handle)
    }

    fn config(port: u16) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host("127.0.0.1").port(port).user("u").dbname("d");
        c
    }

    #[test]
    fn a_server_that_stops_answering_mid_session_costs_the_bound_and_closes_it() {
        let (port, server) = silent_after_startup();
        let bound = Duration::from_millis(300);
        let mut s = Session::open(&config(port), None, Duration::from_secs(5), bound).unwrap();
        let err = s.query("SELECT 1", &[]).unwrap_err();
        assert!(err.is_timeout(), "{err}");
        assert!(s.is_closed());
        // Later calls fail without asking the server, and the socket was
        // closed (the server thread saw EOF and ended).
        assert!(matches!(s.batch_execute("SELECT 1"), Err(SqlError::Closed)));
        server.join().unwrap();
    }

    #[test]
    fn a_longer_bound_applies_only_inside_with_bound() {
        let (port, server) = silent_after_startup();
        let mut s = Session::open(
            &config(port),
            None,
            Duration::from_secs(5),
            Duration::from_millis(100),
        )
        .unwrap();
        let err = with_bound(&mut s, Duration::from_millis(400), |s| {
            s.execute("CHECKPOINT", &[])
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "no answer from the server within 400 ms; the connection was closed"
        );
        assert_eq!(s.bound(), Duration::from_millis(100));
        drop(s);
        server.join().unwrap();
    }

    #[test]
    fn a_server_that_never_completes_the_startup_costs_the_connect_limit() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let err = match Session::open(
            &config(port),
            None,
            Duration::from_millis(300),
            Duration::from_secs(1),
        ) {
            Ok(_) => panic!("connected to a silent listener"),
            Err(e) => e,
        };
        assert!(err.is_timeout(), "{err}");
        drop(listener);
    }
}
