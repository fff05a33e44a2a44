//! libpq-compatible connection strings.
//!
//! The `postgres` crate parses only part of libpq's syntax, rejects keys that
//! libpq accepts (`passfile`, `fallback_application_name`, `service`, ...) and
//! ignores the `PG*` environment and `~/.pgpass`. repmgr stores and passes
//! conninfo strings around verbatim (node records, `primary_conninfo`), so this
//! module parses them as libpq does, keeps their order for rewriting, and
//! resolves them into a [`ConnTarget`] the way libpq would before connecting.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use postgres::config::{ChannelBinding, LoadBalanceHosts, SslMode, TargetSessionAttrs};

use crate::error::{Error, Result};

/// Every keyword libpq (PostgreSQL 17) accepts; anything else is an error.
pub const LIBPQ_KEYWORDS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "channel_binding",
    "connect_timeout",
    "client_encoding",
    "options",
    "application_name",
    "fallback_application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "replication",
    "gssencmode",
    "sslmode",
    "requiressl",
    "sslcompression",
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslcertmode",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "requirepeer",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "krbsrvname",
    "gsslib",
    "gssdelegation",
    "service",
    "target_session_attrs",
    "load_balance_hosts",
];

/// libpq's compiled-in socket directory on Debian/Ubuntu/RHEL packages.
pub const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";
pub const DEFAULT_PORT: u16 = 5432;
/// repmgr adds `connect_timeout=2` to every connection, and libpq raises
/// anything lower to 2 s; we also use it when the value is 0 or invalid
/// because a connection attempt must always have a hard deadline.
pub const MIN_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A parsed connection string: libpq keywords in the order given.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConnInfo {
    params: Vec<(String, String)>,
}

impl ConnInfo {
    pub fn new() -> ConnInfo {
        ConnInfo::default()
    }

    /// Parses either libpq form: `key=value ...` or a `postgresql://` URI.
    /// Errors carry libpq's wording, for repmgr's DETAIL lines.
    pub fn parse(s: &str) -> std::result::Result<ConnInfo, String> {
        let params = if uri_prefix_len(s).is_some() {
            parse_uri(s)?
        } else {
            parse_key_values(s)?
        };
        let mut ci = ConnInfo::new();
        for (k, v) in params {
            if !is_libpq_keyword(&k) {
                return Err(format!("invalid connection option \"{k}\""));
            }
            ci.set(&k, &v);
        }
        Ok(ci)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Replaces the value in place (keeping the key's position) or appends.
    pub fn set(&mut self, key: &str, value: &str) {
        match self.params.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value.to_string(),
            None => self.params.push((key.to_string(), value.to_string())),
        }
    }

    /// Sets the value only when the key is absent (repmgr's `param_set_ine`).
    pub fn set_if_absent(&mut self, key: &str, value: &str) {
        if !self.contains(key) {
            self.set(key, value);
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<String> {
        let pos = self.params.iter().position(|(k, _)| k == key)?;
        Some(self.params.remove(pos).1)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// The raw `host` value (may be a list or a socket directory).
    pub fn host(&self) -> Option<&str> {
        self.get("host")
    }
    pub fn port(&self) -> Option<&str> {
        self.get("port")
    }
    pub fn user(&self) -> Option<&str> {
        self.get("user")
    }
    pub fn dbname(&self) -> Option<&str> {
        self.get("dbname")
    }

    /// The key=value string with the password replaced, for log lines.
    pub fn to_string_without_password(&self) -> String {
        let mut shown = self.clone();
        shown.remove("password");
        shown.to_string()
    }

    /// Resolves against the process environment, as libpq does.
    pub fn resolve(&self) -> Result<ConnTarget> {
        self.resolve_with(&|name| std::env::var(name).ok())
    }

    /// Resolves with an injected environment (tests, or a prepared env).
    pub fn resolve_with(&self, env: EnvLookup) -> Result<ConnTarget> {
        resolve(self, env)
    }
}

/// Never shows the password, so `{:?}` is safe in logs and panics.
impl fmt::Debug for ConnInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: Vec<(&str, &str)> = self
            .iter()
            .map(|(k, v)| {
                if k == "password" {
                    (k, "********")
                } else {
                    (k, v)
                }
            })
            .collect();
        f.debug_struct("ConnInfo").field("params", &shown).finish()
    }
}

/// `key=value` pairs separated by spaces, quoted so that [`ConnInfo::parse`]
/// (and libpq) read back the same values.
impl fmt::Display for ConnInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, v)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{k}={}", quote_value(v))?;
        }
        Ok(())
    }
}

pub fn is_libpq_keyword(key: &str) -> bool {
    LIBPQ_KEYWORDS.contains(&key)
}

/// Quotes a value for a key=value string when libpq would need it.
pub fn quote_value(v: &str) -> String {
    let plain = !v.is_empty()
        && !v
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '\\');
    if plain {
        return v.to_string();
    }
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

// ---------------------------------------------------------------------------
// key=value form (libpq's conninfo_parse)

fn parse_key_values(s: &str) -> std::result::Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut it = s.chars().peekable();
    loop {
        skip_whitespace(&mut it);
        if it.peek().is_none() {
            break;
        }
        let key = read_key(&mut it);
        skip_whitespace(&mut it);
        if it.next() != Some('=') {
            return Err(format!(
                "missing \"=\" after \"{key}\" in connection info string"
            ));
        }
        skip_whitespace(&mut it);
        let value = if it.peek() == Some(&'\'') {
            it.next();
            read_quoted_value(&mut it)?
        } else {
            read_unquoted_value(&mut it)
        };
        out.push((key, value));
    }
    Ok(out)
}

type Chars<'a> = std::iter::Peekable<std::str::Chars<'a>>;

fn skip_whitespace(it: &mut Chars) {
    while it.peek().is_some_and(|c| c.is_whitespace()) {
        it.next();
    }
}

fn read_key(it: &mut Chars) -> String {
    let mut key = String::new();
    while let Some(&c) = it.peek() {
        if c == '=' || c.is_whitespace() {
            break;
        }
        key.push(c);
        it.next();
    }
    key
}

fn read_quoted_value(it: &mut Chars) -> std::result::Result<String, String> {
    let mut val = String::new();
    loop {
        match it.next() {
            None => return Err("unterminated quoted string in connection info string".into()),
            Some('\\') => match it.next() {
                Some(c) => val.push(c),
                None => return Err("unterminated quoted string in connection info string".into()),
            },
            Some('\'') => return Ok(val),
            Some(c) => val.push(c),
        }
    }
}

fn read_unquoted_value(it: &mut Chars) -> String {
    let mut val = String::new();
    while let Some(&c) = it.peek() {
        if c.is_whitespace() {
            break;
        }
        it.next();
        if c == '\\' {
            // libpq keeps a trailing lone backslash out of the value.
            if let Some(n) = it.next() {
                val.push(n);
            }
        } else {
            val.push(c);
        }
    }
    val
}

// ---------------------------------------------------------------------------
// URI form (libpq's conninfo_uri_parse_options)

fn uri_prefix_len(s: &str) -> Option<usize> {
    ["postgresql://", "postgres://"]
        .iter()
        .find(|p| s.starts_with(*p))
        .map(|p| p.len())
}

fn parse_uri(uri: &str) -> std::result::Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let rest = &uri[uri_prefix_len(uri).unwrap_or(0)..];

    // Credentials: everything before the first '@' that precedes the path
    // (libpq's rule: an '@' inside a password must be percent-encoded).
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (mut rest, credentials) = match rest[..authority_end].find('@') {
        Some(at) => (&rest[at + 1..], Some(&rest[..at])),
        None => (rest, None),
    };
    if let Some(cred) = credentials {
        let (user, password) = match cred.split_once(':') {
            Some((u, p)) => (u, Some(p)),
            None => (cred, None),
        };
        push_nonempty(&mut out, "user", percent_decode(user)?);
        if let Some(p) = password {
            push_nonempty(&mut out, "password", percent_decode(p)?);
        }
    }

    let (hosts, ports, after_hosts) = parse_uri_hosts(rest, uri)?;
    rest = after_hosts;
    if hosts.iter().any(|h| !h.is_empty()) {
        out.push(("host".into(), hosts.join(",")));
    }
    if ports.iter().any(|p| !p.is_empty()) {
        out.push(("port".into(), ports.join(",")));
    }

    if let Some(path) = rest.strip_prefix('/') {
        let end = path.find('?').unwrap_or(path.len());
        push_nonempty(&mut out, "dbname", percent_decode(&path[..end])?);
        rest = &path[end..];
    }
    if let Some(query) = rest.strip_prefix('?') {
        out.extend(parse_uri_query(query)?);
    }
    Ok(out)
}

fn push_nonempty(out: &mut Vec<(String, String)>, key: &str, value: String) {
    if !value.is_empty() {
        out.push((key.to_string(), value));
    }
}

/// Reads `host[:port][,host[:port]...]`, returning the hosts, the ports and
/// what follows (the path or query).
fn parse_uri_hosts<'a>(
    mut rest: &'a str,
    uri: &str,
) -> std::result::Result<(Vec<String>, Vec<String>, &'a str), String> {
    let (mut hosts, mut ports) = (Vec::new(), Vec::new());
    loop {
        let host;
        if let Some(v6) = rest.strip_prefix('[') {
            let close = v6.find(']').ok_or_else(|| {
                format!("end of string reached when looking for matching \"]\" in IPv6 host address in URI: \"{uri}\"")
            })?;
            if close == 0 {
                return Err(format!(
                    "IPv6 host address may not be empty in URI: \"{uri}\""
                ));
            }
            host = v6[..close].to_string();
            rest = &v6[close + 1..];
        } else {
            let end = rest.find([':', '/', '?', ',']).unwrap_or(rest.len());
            host = percent_decode(&rest[..end])?;
            rest = &rest[end..];
        }
        let mut port = String::new();
        if let Some(p) = rest.strip_prefix(':') {
            let end = p.find(['/', '?', ',']).unwrap_or(p.len());
            port = percent_decode(&p[..end])?;
            rest = &p[end..];
        }
        if let Some(c) = rest
            .chars()
            .next()
            .filter(|c| !matches!(c, ',' | '/' | '?'))
        {
            return Err(format!(
                "unexpected character \"{c}\" at position {} in URI (expected \":\" or \"/\"): \"{uri}\"",
                uri.len() - rest.len() + 1
            ));
        }
        hosts.push(host);
        ports.push(port);
        match rest.strip_prefix(',') {
            Some(more) => rest = more,
            None => return Ok((hosts, ports, rest)),
        }
    }
}

fn parse_uri_query(query: &str) -> std::result::Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(format!(
                "missing key/value separator \"=\" in URI query parameter: \"{pair}\""
            ));
        };
        if v.contains('=') {
            return Err(format!(
                "extra key/value separator \"=\" in URI query parameter: \"{pair}\""
            ));
        }
        let (mut key, mut value) = (percent_decode(k)?, percent_decode(v)?);
        // libpq's JDBC compatibility: ssl=true means sslmode=require.
        if key == "ssl" && value == "true" {
            key = "sslmode".into();
            value = "require".into();
        }
        if !is_libpq_keyword(&key) {
            return Err(format!("invalid URI query parameter: \"{key}\""));
        }
        out.push((key, value));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> std::result::Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let byte = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .ok_or_else(|| format!("invalid percent-encoded token: \"{s}\""))?;
        if byte == 0 {
            return Err(format!(
                "forbidden value %00 in percent-encoded value: \"{s}\""
            ));
        }
        out.push(byte);
        i += 3;
    }
    String::from_utf8(out).map_err(|_| format!("invalid percent-encoded token: \"{s}\""))
}

// ---------------------------------------------------------------------------
// Resolution into an effective target

/// One place to connect to: a TCP host (name and/or address) or a unix
/// socket directory, with its port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Socket {
        dir: String,
        port: u16,
    },
    Tcp {
        host: Option<String>,
        hostaddr: Option<IpAddr>,
        port: u16,
    },
}

impl Endpoint {
    pub fn port(&self) -> u16 {
        match self {
            Endpoint::Socket { port, .. } | Endpoint::Tcp { port, .. } => *port,
        }
    }

    /// The host as `.pgpass` matches it: libpq uses "localhost" for the
    /// default socket directory, and `host` before `hostaddr`.
    pub fn passfile_host(&self) -> String {
        match self {
            Endpoint::Socket { dir, .. } if dir == DEFAULT_SOCKET_DIR => "localhost".into(),
            Endpoint::Socket { dir, .. } => dir.clone(),
            Endpoint::Tcp { host: Some(h), .. } => h.clone(),
            Endpoint::Tcp {
                hostaddr: Some(a), ..
            } => a.to_string(),
            Endpoint::Tcp { .. } => "localhost".into(),
        }
    }
}

/// libpq's wording: `server at "host:port"` or `socket "/dir/.s.PGSQL.5432"`;
/// a hostaddr different from the host name follows in parentheses.
impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Socket { dir, port } => write!(f, "socket \"{dir}/.s.PGSQL.{port}\""),
            Endpoint::Tcp {
                host,
                hostaddr,
                port,
            } => {
                let addr = hostaddr.map(|a| a.to_string());
                let name = host.clone().or(addr.clone()).unwrap_or_default();
                let name = if name.contains(':') {
                    format!("[{name}]")
                } else {
                    name
                };
                write!(f, "server at \"{name}:{port}\"")?;
                match (host, addr) {
                    (Some(_), Some(a)) => write!(f, " ({a})"),
                    _ => Ok(()),
                }
            }
        }
    }
}

/// Everything needed to open a connection, after environment and defaults.
#[derive(Clone)]
pub struct ConnTarget {
    pub endpoints: Vec<Endpoint>,
    pub user: String,
    pub dbname: String,
    password: Option<String>,
    pub application_name: Option<String>,
    pub options: Option<String>,
    /// Per endpoint, as libpq; never below [`MIN_CONNECT_TIMEOUT`].
    pub connect_timeout: Duration,
    pub tcp_user_timeout: Duration,
    pub keepalives: bool,
    pub keepalives_idle: Option<Duration>,
    pub keepalives_interval: Option<Duration>,
    pub keepalives_count: Option<u32>,
    pub target_session_attrs: TargetSessionAttrs,
    pub channel_binding: ChannelBinding,
    pub load_balance_hosts: LoadBalanceHosts,
}

impl ConnTarget {
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// Bound for a whole attempt: libpq's connect_timeout applies per host.
    pub fn deadline(&self) -> Duration {
        let tries = u32::try_from(self.endpoints.len().max(1)).unwrap_or(u32::MAX);
        self.connect_timeout.saturating_mul(tries)
    }

    /// `server at "127.0.0.1:5432" (dbname=x user=y)`, never the password.
    pub fn describe(&self) -> String {
        let places: Vec<String> = self.endpoints.iter().map(|e| e.to_string()).collect();
        format!(
            "{} (dbname={} user={})",
            places.join(", "),
            self.dbname,
            self.user
        )
    }

    /// The `postgres` crate's configuration. TLS is never used (sslmode
    /// disable/allow/prefer all mean plaintext here; the stricter modes were
    /// rejected during resolution).
    pub fn to_config(&self) -> postgres::Config {
        let mut c = postgres::Config::new();
        for e in &self.endpoints {
            add_endpoint(&mut c, e);
        }
        c.user(&self.user)
            .dbname(&self.dbname)
            .ssl_mode(SslMode::Disable)
            .connect_timeout(self.connect_timeout)
            .tcp_user_timeout(self.tcp_user_timeout)
            .keepalives(self.keepalives)
            .target_session_attrs(self.target_session_attrs)
            .channel_binding(self.channel_binding)
            .load_balance_hosts(self.load_balance_hosts);
        if let Some(p) = &self.password {
            c.password(p);
        }
        if let Some(a) = &self.application_name {
            c.application_name(a);
        }
        if let Some(o) = &self.options {
            c.options(o);
        }
        if let Some(d) = self.keepalives_idle {
            c.keepalives_idle(d);
        }
        if let Some(d) = self.keepalives_interval {
            c.keepalives_interval(d);
        }
        if let Some(n) = self.keepalives_count {
            c.keepalives_retries(n);
        }
        c
    }
}

/// Resolution guarantees what the driver needs: hosts and hostaddrs either
/// alone or in equal numbers, and one port per endpoint.
fn add_endpoint(c: &mut postgres::Config, e: &Endpoint) {
    match e {
        Endpoint::Socket { dir, port } => {
            c.host_path(Path::new(dir)).port(*port);
        }
        Endpoint::Tcp {
            host,
            hostaddr,
            port,
        } => {
            if let Some(h) = host {
                c.host(h);
            }
            if let Some(a) = hostaddr {
                c.hostaddr(*a);
            }
            c.port(*port);
        }
    }
}

impl fmt::Debug for ConnTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnTarget")
            .field("endpoints", &self.endpoints)
            .field("user", &self.user)
            .field("dbname", &self.dbname)
            .field("password", &self.password.as_ref().map(|_| "********"))
            .field("application_name", &self.application_name)
            .field("options", &self.options)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

/// Looks up an environment variable (injected so tests need no global state).
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Keys used while resolving; any other libpq key is accepted and ignored.
const KEYS_USED: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "connect_timeout",
    "options",
    "application_name",
    "fallback_application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "sslmode",
    "requiressl",
    "replication",
    "service",
    "target_session_attrs",
    "channel_binding",
    "load_balance_hosts",
];

fn resolve(ci: &ConnInfo, env: EnvLookup) -> Result<ConnTarget> {
    reject_unsupported(ci, env)?;
    note_ignored_keys(ci);
    let user = match setting(ci, env, "user", Some("PGUSER")) {
        Some(u) => u,
        None => os_user_name()?,
    };
    let dbname = setting(ci, env, "dbname", Some("PGDATABASE")).unwrap_or_else(|| user.clone());
    let endpoints = endpoints(ci, env)?;
    let password = setting(ci, env, "password", Some("PGPASSWORD"))
        .or_else(|| password_from_passfile(ci, env, &endpoints, &dbname, &user));
    let connect_timeout = connect_timeout(setting(
        ci,
        env,
        "connect_timeout",
        Some("PGCONNECT_TIMEOUT"),
    ));
    let tcp_user_timeout = match int_setting(ci, "tcp_user_timeout")? {
        Some(ms) if ms > 0 => Duration::from_millis(ms),
        // So that a socket left behind by an abandoned attempt dies too.
        _ => connect_timeout,
    };
    Ok(ConnTarget {
        endpoints,
        user,
        dbname,
        password,
        application_name: setting(ci, env, "application_name", Some("PGAPPNAME"))
            .or_else(|| setting(ci, env, "fallback_application_name", None)),
        options: setting(ci, env, "options", Some("PGOPTIONS")),
        connect_timeout,
        tcp_user_timeout,
        keepalives: ci.get("keepalives").is_none_or(|v| v.trim() != "0"),
        keepalives_idle: int_setting(ci, "keepalives_idle")?.map(Duration::from_secs),
        keepalives_interval: int_setting(ci, "keepalives_interval")?.map(Duration::from_secs),
        keepalives_count: int_setting(ci, "keepalives_count")?
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        target_session_attrs: target_session_attrs(ci.get("target_session_attrs"))?,
        channel_binding: channel_binding(ci.get("channel_binding"))?,
        load_balance_hosts: load_balance_hosts(ci.get("load_balance_hosts"))?,
    })
}

/// The value from the string, else from `var`. Blank values count as absent
/// because repmgr drops them before handing the string to libpq.
fn setting(ci: &ConnInfo, env: EnvLookup, key: &str, var: Option<&str>) -> Option<String> {
    let nonempty = |v: &String| !v.is_empty();
    ci.get(key)
        .map(str::to_string)
        .filter(nonempty)
        .or_else(|| var.and_then(env).filter(nonempty))
}

fn int_setting(ci: &ConnInfo, key: &str) -> Result<Option<u64>> {
    let Some(raw) = ci.get(key).filter(|v| !v.trim().is_empty()) else {
        return Ok(None);
    };
    raw.trim().parse::<u64>().map(Some).map_err(|_| {
        Error::db_conn(format!(
            "invalid integer value \"{raw}\" for connection option \"{key}\""
        ))
    })
}

/// libpq raises values under 2 s to 2 s; 0 (libpq: wait forever) and junk
/// also become 2 s, because every attempt here must have a deadline.
fn connect_timeout(raw: Option<String>) -> Duration {
    let secs = raw.as_deref().and_then(|v| v.trim().parse::<u64>().ok());
    match secs {
        Some(s) if s >= MIN_CONNECT_TIMEOUT.as_secs() => Duration::from_secs(s),
        _ => {
            if let Some(v) = raw {
                crate::log_debug!("connect_timeout \"{v}\" raised to 2 s");
            }
            MIN_CONNECT_TIMEOUT
        }
    }
}

fn reject_unsupported(ci: &ConnInfo, env: EnvLookup) -> Result<()> {
    if ci.contains("service") {
        return Err(Error::db_conn(
            "service files are not supported; put the parameters in the connection string",
        ));
    }
    if ci.contains("replication") {
        return Err(Error::db_conn(
            "replication connections are not supported here",
        ));
    }
    check_sslmode(ci, env)?;
    if ci.get("gssencmode") == Some("require") {
        return Err(Error::db_conn(
            "GSSAPI encryption (gssencmode=require) is not supported by this build",
        ));
    }
    Ok(())
}

/// Only plaintext is available: the modes that may fall back to it are fine.
fn check_sslmode(ci: &ConnInfo, env: EnvLookup) -> Result<()> {
    let requiressl = ci.get("requiressl").is_some_and(|v| v.trim() == "1");
    let mode = match setting(ci, env, "sslmode", Some("PGSSLMODE")) {
        Some(m) => m,
        None if requiressl => "require".to_string(),
        None => return Ok(()),
    };
    match mode.as_str() {
        "disable" | "allow" | "prefer" => Ok(()),
        "require" | "verify-ca" | "verify-full" => Err(Error::db_conn(format!(
            "SSL is not supported by this build yet (sslmode={mode})"
        ))
        .hint("use sslmode=prefer or sslmode=disable, or connect through a unix socket")),
        other => Err(Error::db_conn(format!(
            "invalid sslmode value: \"{other}\""
        ))),
    }
}

fn note_ignored_keys(ci: &ConnInfo) {
    for (k, v) in ci.iter() {
        if k == "client_encoding" && !is_utf8_encoding(v) {
            crate::log_warning!("client_encoding \"{v}\" ignored: connections always use UTF8");
        } else if !KEYS_USED.contains(&k) {
            crate::log_debug!(
                "connection parameter \"{k}\" is not used by this build and is ignored"
            );
        }
    }
}

fn is_utf8_encoding(v: &str) -> bool {
    let v = v.to_ascii_lowercase().replace(['-', '_'], "");
    v.is_empty() || v == "utf8" || v == "unicode" || v == "auto"
}

fn target_session_attrs(v: Option<&str>) -> Result<TargetSessionAttrs> {
    match v.unwrap_or("any") {
        "" | "any" => Ok(TargetSessionAttrs::Any),
        "read-write" => Ok(TargetSessionAttrs::ReadWrite),
        "read-only" => Ok(TargetSessionAttrs::ReadOnly),
        "primary" | "standby" | "prefer-standby" => Err(Error::db_conn(format!(
            "target_session_attrs=\"{}\" is not supported by this build",
            v.unwrap_or_default()
        ))
        .hint("use read-write or read-only")),
        other => Err(Error::db_conn(format!(
            "invalid target_session_attrs value: \"{other}\""
        ))),
    }
}

fn channel_binding(v: Option<&str>) -> Result<ChannelBinding> {
    match v.unwrap_or("prefer") {
        "" | "prefer" => Ok(ChannelBinding::Prefer),
        "disable" => Ok(ChannelBinding::Disable),
        "require" => Ok(ChannelBinding::Require),
        other => Err(Error::db_conn(format!(
            "invalid channel_binding value: \"{other}\""
        ))),
    }
}

fn load_balance_hosts(v: Option<&str>) -> Result<LoadBalanceHosts> {
    match v.unwrap_or("disable") {
        "" | "disable" => Ok(LoadBalanceHosts::Disable),
        "random" => Ok(LoadBalanceHosts::Random),
        other => Err(Error::db_conn(format!(
            "invalid load_balance_hosts value: \"{other}\""
        ))),
    }
}

/// The user name of the effective uid: libpq's default user.
pub fn os_user_name() -> Result<String> {
    let uid = nix::unistd::geteuid();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(u)) => Ok(u.name),
        Ok(None) => Err(Error::db_conn(format!(
            "could not look up local user ID {uid}: user does not exist"
        ))),
        Err(e) => Err(Error::db_conn(format!(
            "could not look up local user ID {uid}: {e}"
        ))),
    }
}

// ---------------------------------------------------------------------------
// Hosts, addresses and ports

fn split_list(v: Option<String>) -> Vec<String> {
    v.map(|s| s.split(',').map(|x| x.trim().to_string()).collect())
        .unwrap_or_default()
}

fn endpoints(ci: &ConnInfo, env: EnvLookup) -> Result<Vec<Endpoint>> {
    let hosts = split_list(setting(ci, env, "host", Some("PGHOST")));
    let addrs = split_list(setting(ci, env, "hostaddr", Some("PGHOSTADDR")));
    let ports = split_list(setting(ci, env, "port", Some("PGPORT")));
    if !hosts.is_empty() && !addrs.is_empty() && hosts.len() != addrs.len() {
        return Err(Error::db_conn(format!(
            "could not match {} host names to {} hostaddr values",
            hosts.len(),
            addrs.len()
        )));
    }
    let count = hosts.len().max(addrs.len()).max(1);
    if ports.len() > 1 && ports.len() != count {
        return Err(Error::db_conn(format!(
            "could not match {} port numbers to {count} hosts",
            ports.len()
        )));
    }
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let host = hosts.get(i).filter(|h| !h.is_empty()).cloned();
        let hostaddr = match addrs.get(i).filter(|a| !a.is_empty()) {
            Some(a) => Some(parse_hostaddr(a)?),
            None => None,
        };
        let port_text = ports.get(i).or(ports.first().filter(|_| ports.len() == 1));
        let port = match port_text.filter(|p| !p.is_empty()) {
            Some(p) => parse_port(p)?,
            None => DEFAULT_PORT,
        };
        out.push(endpoint(host, hostaddr, port));
    }
    check_driver_can_express(&out)?;
    Ok(out)
}

fn endpoint(host: Option<String>, hostaddr: Option<IpAddr>, port: u16) -> Endpoint {
    match (host, hostaddr) {
        // libpq connects to hostaddr over TCP even when host names a socket.
        (host, Some(a)) => Endpoint::Tcp {
            host,
            hostaddr: Some(a),
            port,
        },
        (Some(h), None) if h.starts_with('/') => Endpoint::Socket { dir: h, port },
        (Some(h), None) => Endpoint::Tcp {
            host: Some(h),
            hostaddr: None,
            port,
        },
        (None, None) => Endpoint::Socket {
            dir: DEFAULT_SOCKET_DIR.to_string(),
            port,
        },
    }
}

/// The driver takes hosts and hostaddrs as two parallel lists, so it cannot
/// express libpq's "some entries with hostaddr, some without".
fn check_driver_can_express(endpoints: &[Endpoint]) -> Result<()> {
    let with_addr = |e: &Endpoint| {
        matches!(
            e,
            Endpoint::Tcp {
                hostaddr: Some(_),
                ..
            }
        )
    };
    let with_host = |e: &Endpoint| !matches!(e, Endpoint::Tcp { host: None, .. });
    let addrs = endpoints.iter().filter(|e| with_addr(e)).count();
    let hosts = endpoints.iter().filter(|e| with_host(e)).count();
    if addrs == 0 || (addrs == endpoints.len() && (hosts == 0 || hosts == endpoints.len())) {
        return Ok(());
    }
    Err(
        Error::db_conn("a hostaddr list with empty entries is not supported by this build")
            .hint("give a hostaddr for every host, or none"),
    )
}

fn parse_hostaddr(a: &str) -> Result<IpAddr> {
    a.parse::<IpAddr>()
        .map_err(|_| Error::db_conn(format!("could not parse network address \"{a}\"")))
}

fn parse_port(p: &str) -> Result<u16> {
    match p.parse::<u16>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(Error::db_conn(format!("invalid port number: \"{p}\""))),
    }
}

// ---------------------------------------------------------------------------
// Password file (libpq's passwordFromFile)

fn password_from_passfile(
    ci: &ConnInfo,
    env: EnvLookup,
    endpoints: &[Endpoint],
    dbname: &str,
    user: &str,
) -> Option<String> {
    let path = passfile_path(ci, env)?;
    let contents = read_passfile(&path)?;
    // The driver takes one password; libpq looks one up per host, so the
    // first host with an entry wins.
    endpoints.iter().find_map(|e| {
        lookup_passfile(
            &contents,
            &e.passfile_host(),
            &e.port().to_string(),
            dbname,
            user,
        )
    })
}

fn passfile_path(ci: &ConnInfo, env: EnvLookup) -> Option<PathBuf> {
    if let Some(p) = setting(ci, env, "passfile", Some("PGPASSFILE")) {
        return Some(PathBuf::from(p));
    }
    env("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| Path::new(&h).join(".pgpass"))
}

/// The file's text, unless it is missing, unreadable, not a plain file, or
/// readable by group or others (libpq ignores it then, with a warning).
fn read_passfile(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).ok()?;
    let shown = path.display();
    if !meta.is_file() {
        crate::log_warning!("password file \"{shown}\" is not a plain file");
        return None;
    }
    if meta.permissions().mode() & 0o077 != 0 {
        crate::log_warning!(
            "password file \"{shown}\" has group or world access; permissions should be u=rw (0600) or less"
        );
        return None;
    }
    std::fs::read_to_string(path).ok()
}

/// The password of the first `host:port:database:username:password` line
/// matching; `*` matches anything, `\:` and `\\` are escapes, `#` starts a
/// comment line.
pub fn lookup_passfile(
    contents: &str,
    host: &str,
    port: &str,
    dbname: &str,
    user: &str,
) -> Option<String> {
    contents
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .find_map(|line| {
            let rest = match_passfile_field(line, host)?;
            let rest = match_passfile_field(rest, port)?;
            let rest = match_passfile_field(rest, dbname)?;
            let rest = match_passfile_field(rest, user)?;
            Some(unescape_passfile_password(rest))
        })
}

/// Matches one field against `token`; returns the rest of the line after the
/// field's ':' (libpq's pwdfMatchesString).
fn match_passfile_field<'a>(line: &'a str, token: &str) -> Option<&'a str> {
    if let Some(rest) = line.strip_prefix("*:") {
        return Some(rest);
    }
    let mut chars = line.char_indices();
    let mut tok = token.chars().peekable();
    loop {
        let (i, c) = chars.next()?;
        let (c, escaped) = if c == '\\' {
            (chars.next()?.1, true)
        } else {
            (c, false)
        };
        if c == ':' && !escaped && tok.peek().is_none() {
            return Some(&line[i + 1..]);
        }
        if tok.next() != Some(c) {
            return None;
        }
    }
}

/// The password field ends at the first unescaped ':'.
fn unescape_passfile_password(field: &str) -> String {
    let mut out = String::new();
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        match c {
            ':' => break,
            '\\' => match chars.next() {
                Some(n) => out.push(n),
                None => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    fn parse(s: &str) -> ConnInfo {
        ConnInfo::parse(s).unwrap()
    }

    fn pairs(ci: &ConnInfo) -> Vec<(&str, &str)> {
        ci.iter().collect()
    }

    /// An injected environment: tests never touch the process environment.
    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn resolve_in(ci: &str, vars: &[(&str, &str)]) -> Result<ConnTarget> {
        parse(ci).resolve_with(&env_of(vars))
    }

    // --- key=value ---------------------------------------------------------

    #[test]
    fn key_values_with_spaces_quotes_and_escapes() {
        let ci = parse("  host = db1 port=5433 password='it\\'s a \\\\ pw' dbname=x\\ y user=''  ");
        assert_eq!(
            pairs(&ci),
            vec![
                ("host", "db1"),
                ("port", "5433"),
                ("password", "it's a \\ pw"),
                ("dbname", "x y"),
                ("user", ""),
            ]
        );
        assert!(parse("").is_empty());
        assert_eq!(pairs(&parse("options=")), vec![("options", "")]);
    }

    #[test]
    fn key_value_errors_use_libpq_wording() {
        assert_eq!(
            ConnInfo::parse("host=a foo").unwrap_err(),
            "missing \"=\" after \"foo\" in connection info string"
        );
        assert_eq!(
            ConnInfo::parse("password='abc").unwrap_err(),
            "unterminated quoted string in connection info string"
        );
        assert_eq!(
            ConnInfo::parse("host=a foo=bar").unwrap_err(),
            "invalid connection option \"foo\""
        );
    }

    #[test]
    fn every_libpq_keyword_is_accepted() {
        for k in LIBPQ_KEYWORDS {
            assert!(ConnInfo::parse(&format!("{k}=1")).is_ok(), "{k}");
        }
    }

    #[test]
    fn a_repeated_key_keeps_its_place_and_the_last_value() {
        assert_eq!(
            pairs(&parse("host=a port=1 host=b")),
            vec![("host", "b"), ("port", "1")]
        );
    }

    // --- URI -----------------------------------------------------------------

    #[test]
    fn uri_with_everything() {
        let ci = parse("postgresql://us%40r:p%3Aw@db1:5433,[::1]:5434/my%20db?application_name=x&connect_timeout=5");
        assert_eq!(
            pairs(&ci),
            vec![
                ("user", "us@r"),
                ("password", "p:w"),
                ("host", "db1,::1"),
                ("port", "5433,5434"),
                ("dbname", "my db"),
                ("application_name", "x"),
                ("connect_timeout", "5"),
            ]
        );
    }

    #[test]
    fn uri_minimal_forms() {
        assert!(parse("postgresql://").is_empty());
        assert_eq!(pairs(&parse("postgres:///db")), vec![("dbname", "db")]);
        assert_eq!(
            pairs(&parse("postgresql:///db?host=/tmp/sock&port=5999")),
            vec![("dbname", "db"), ("host", "/tmp/sock"), ("port", "5999")]
        );
        assert_eq!(
            pairs(&parse("postgresql://%2Fvar%2Frun%2Fpostgresql/db")),
            vec![("host", "/var/run/postgresql"), ("dbname", "db")]
        );
        assert_eq!(
            pairs(&parse("postgresql://u@h")),
            vec![("user", "u"), ("host", "h")]
        );
        assert_eq!(
            pairs(&parse("postgresql://h?ssl=true")),
            vec![("host", "h"), ("sslmode", "require")]
        );
    }

    #[test]
    fn uri_errors() {
        assert_eq!(
            ConnInfo::parse("postgresql://h/db?foo=1").unwrap_err(),
            "invalid URI query parameter: \"foo\""
        );
        assert!(ConnInfo::parse("postgresql://h/db?port")
            .unwrap_err()
            .starts_with("missing key/value separator"));
        assert!(ConnInfo::parse("postgresql://h/d%zz")
            .unwrap_err()
            .starts_with("invalid percent-encoded token"));
        assert!(ConnInfo::parse("postgresql://h/d%00")
            .unwrap_err()
            .starts_with("forbidden value %00"));
        assert!(ConnInfo::parse("postgresql://[::1/db")
            .unwrap_err()
            .contains("IPv6"));
        assert!(ConnInfo::parse("postgresql://[::1]x/db")
            .unwrap_err()
            .starts_with("unexpected character \"x\""));
    }

    // --- editing and display ------------------------------------------------

    #[test]
    fn get_set_remove_contains() {
        let mut ci = parse("host=a port=1");
        ci.set("port", "2");
        ci.set("user", "u");
        ci.set_if_absent("user", "other");
        assert_eq!(ci.port(), Some("2"));
        assert_eq!(ci.user(), Some("u"));
        assert_eq!(ci.host(), Some("a"));
        assert_eq!(ci.dbname(), None);
        assert_eq!(ci.remove("host"), Some("a".into()));
        assert!(!ci.contains("host"));
        assert_eq!(ci.to_string(), "port=2 user=u");
    }

    #[test]
    fn display_quotes_and_round_trips() {
        let mut ci = ConnInfo::new();
        for (k, v) in [
            ("host", "db1"),
            ("password", "it's"),
            ("options", "-c a=b"),
            ("dbname", "back\\slash"),
            ("user", ""),
        ] {
            ci.set(k, v);
        }
        let s = ci.to_string();
        assert_eq!(
            s,
            "host=db1 password='it\\'s' options='-c a=b' dbname='back\\\\slash' user=''"
        );
        assert_eq!(ConnInfo::parse(&s).unwrap(), ci);
        assert_eq!(
            parse("postgresql://x:y@h/d").to_string(),
            "user=x password=y host=h dbname=d"
        );
    }

    #[test]
    fn passwords_stay_out_of_debug_and_log_strings() {
        let ci = parse("host=h password=hunter2");
        assert!(!format!("{ci:?}").contains("hunter2"));
        assert_eq!(ci.to_string_without_password(), "host=h");
        let t = ci.resolve_with(&env_of(&[("PGUSER", "u")])).unwrap();
        assert!(!format!("{t:?}").contains("hunter2"));
        assert!(!t.describe().contains("hunter2"));
    }

    // --- resolution ---------------------------------------------------------

    #[test]
    fn defaults_are_socket_5432_os_user() {
        let t = resolve_in("", &[]).unwrap();
        let me = os_user_name().unwrap();
        assert_eq!(
            t.endpoints,
            vec![Endpoint::Socket {
                dir: DEFAULT_SOCKET_DIR.into(),
                port: 5432
            }]
        );
        assert_eq!(t.user, me);
        assert_eq!(t.dbname, me);
        assert_eq!(t.password(), None);
        assert_eq!(t.connect_timeout, Duration::from_secs(2));
        assert_eq!(t.tcp_user_timeout, Duration::from_secs(2));
        assert_eq!(t.application_name, None);
    }

    #[test]
    fn environment_fills_what_the_string_lacks() {
        let env = [
            ("PGHOST", "envhost"),
            ("PGPORT", "6000"),
            ("PGUSER", "envuser"),
            ("PGDATABASE", "envdb"),
            ("PGPASSWORD", "envpw"),
            ("PGCONNECT_TIMEOUT", "7"),
            ("PGAPPNAME", "envapp"),
            ("PGOPTIONS", "-c x=y"),
        ];
        let t = resolve_in("", &env).unwrap();
        assert_eq!(
            t.endpoints,
            vec![Endpoint::Tcp {
                host: Some("envhost".into()),
                hostaddr: None,
                port: 6000
            }]
        );
        assert_eq!((t.user.as_str(), t.dbname.as_str()), ("envuser", "envdb"));
        assert_eq!(t.password(), Some("envpw"));
        assert_eq!(t.connect_timeout, Duration::from_secs(7));
        assert_eq!(t.application_name.as_deref(), Some("envapp"));
        assert_eq!(t.options.as_deref(), Some("-c x=y"));

        let t = resolve_in(
            "host=h port=1 user=u dbname=d password=p application_name=a",
            &env,
        )
        .unwrap();
        assert_eq!(t.endpoints[0].port(), 1);
        assert_eq!((t.user.as_str(), t.dbname.as_str()), ("u", "d"));
        assert_eq!(t.password(), Some("p"));
        assert_eq!(t.application_name.as_deref(), Some("a"));
    }

    #[test]
    fn blank_values_fall_back_like_repmgr() {
        let t = resolve_in("host='' user=''", &[("PGHOST", "e"), ("PGUSER", "eu")]).unwrap();
        assert_eq!(t.user, "eu");
        assert_eq!(t.endpoints[0].passfile_host(), "e");
    }

    #[test]
    fn hostaddr_from_env_and_dbname_defaults_to_user() {
        let t = resolve_in("user=u", &[("PGHOSTADDR", "127.0.0.1")]).unwrap();
        assert_eq!(
            t.endpoints,
            vec![Endpoint::Tcp {
                host: None,
                hostaddr: Some("127.0.0.1".parse().unwrap()),
                port: 5432
            }]
        );
        assert_eq!(t.dbname, "u");
    }

    #[test]
    fn fallback_application_name_only_without_application_name() {
        let t = resolve_in("user=u fallback_application_name=repmgr", &[]).unwrap();
        assert_eq!(t.application_name.as_deref(), Some("repmgr"));
        let t = resolve_in(
            "user=u fallback_application_name=repmgr",
            &[("PGAPPNAME", "x")],
        )
        .unwrap();
        assert_eq!(t.application_name.as_deref(), Some("x"));
    }

    #[test]
    fn connect_timeout_is_at_least_two_seconds() {
        for (v, secs) in [
            ("0", 2),
            ("1", 2),
            ("-5", 2),
            ("junk", 2),
            ("2", 2),
            (" 10 ", 10),
        ] {
            let t = resolve_in(&format!("user=u connect_timeout='{v}'"), &[]).unwrap();
            assert_eq!(t.connect_timeout, Duration::from_secs(secs), "{v}");
        }
        let t = resolve_in("user=u connect_timeout=3 tcp_user_timeout=500", &[]).unwrap();
        assert_eq!(t.tcp_user_timeout, Duration::from_millis(500));
        let t = resolve_in("user=u connect_timeout=3", &[]).unwrap();
        assert_eq!(t.tcp_user_timeout, Duration::from_secs(3));
    }

    #[test]
    fn multiple_hosts_sockets_and_ports() {
        let t = parse("postgresql://u@a:1,[::1]:2/d")
            .resolve_with(&env_of(&[]))
            .unwrap();
        assert_eq!(
            t.describe(),
            "server at \"a:1\", server at \"[::1]:2\" (dbname=d user=u)"
        );
        let t = resolve_in("host=a,/tmp/s, port=7 user=u", &[]).unwrap();
        assert_eq!(
            t.endpoints,
            vec![
                Endpoint::Tcp {
                    host: Some("a".into()),
                    hostaddr: None,
                    port: 7
                },
                Endpoint::Socket {
                    dir: "/tmp/s".into(),
                    port: 7
                },
                Endpoint::Socket {
                    dir: DEFAULT_SOCKET_DIR.into(),
                    port: 7
                },
            ]
        );
        assert_eq!(t.deadline(), Duration::from_secs(6));
        let cfg = t.to_config();
        assert_eq!(cfg.get_hosts().len(), 3);
        assert_eq!(cfg.get_ports(), &[7, 7, 7]);
    }

    #[test]
    fn host_list_errors() {
        let err = |s: &str| resolve_in(s, &[]).unwrap_err().message().to_string();
        assert_eq!(
            err("user=u host=a,b port=1,2,3"),
            "could not match 3 port numbers to 2 hosts"
        );
        assert_eq!(
            err("user=u host=a,b hostaddr=127.0.0.1"),
            "could not match 2 host names to 1 hostaddr values"
        );
        assert_eq!(err("user=u port=99999"), "invalid port number: \"99999\"");
        assert_eq!(
            err("user=u hostaddr=nope"),
            "could not parse network address \"nope\""
        );
        assert!(err("user=u host=a,b hostaddr=127.0.0.1,").contains("not supported"));
    }

    #[test]
    fn config_carries_every_setting() {
        let t = resolve_in(
            "host=db hostaddr=127.0.0.1 port=6 user=u dbname=d password=p application_name=a \
             options='-c x=1' connect_timeout=4 keepalives=1 keepalives_idle=30 \
             keepalives_interval=5 keepalives_count=3 target_session_attrs=read-write",
            &[],
        )
        .unwrap();
        let c = t.to_config();
        assert_eq!(c.get_hosts(), &[postgres::config::Host::Tcp("db".into())]);
        assert_eq!(c.get_hostaddrs(), &["127.0.0.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(c.get_ports(), &[6]);
        assert_eq!(c.get_user(), Some("u"));
        assert_eq!(c.get_dbname(), Some("d"));
        assert_eq!(c.get_password(), Some(&b"p"[..]));
        assert_eq!(c.get_application_name(), Some("a"));
        assert_eq!(c.get_options(), Some("-c x=1"));
        assert_eq!(c.get_connect_timeout(), Some(&Duration::from_secs(4)));
        assert_eq!(c.get_tcp_user_timeout(), Some(&Duration::from_secs(4)));
        assert_eq!(c.get_keepalives_idle(), Duration::from_secs(30));
        assert_eq!(c.get_keepalives_interval(), Some(Duration::from_secs(5)));
        assert_eq!(c.get_keepalives_retries(), Some(3));
        assert_eq!(c.get_target_session_attrs(), TargetSessionAttrs::ReadWrite);
        assert_eq!(c.get_ssl_mode(), SslMode::Disable);
        assert_eq!(
            t.describe(),
            "server at \"db:6\" (127.0.0.1) (dbname=d user=u)"
        );
        assert!(!resolve_in("user=u keepalives=0", &[])
            .unwrap()
            .to_config()
            .get_keepalives());
    }

    #[test]
    fn endpoint_descriptions() {
        let sock = Endpoint::Socket {
            dir: "/tmp".into(),
            port: 5432,
        };
        assert_eq!(sock.to_string(), "socket \"/tmp/.s.PGSQL.5432\"");
        let v6 = Endpoint::Tcp {
            host: Some("::1".into()),
            hostaddr: None,
            port: 1,
        };
        assert_eq!(v6.to_string(), "server at \"[::1]:1\"");
    }

    #[test]
    fn unsupported_keys_are_clear_errors() {
        let err = |s: &str, env: &[(&str, &str)]| resolve_in(s, env).unwrap_err();
        for mode in ["require", "verify-ca", "verify-full"] {
            let e = err(&format!("user=u sslmode={mode}"), &[]);
            assert_eq!(e.code, crate::error::ExitCode::DbConn);
            assert!(
                e.message().contains("SSL is not supported by this build"),
                "{mode}"
            );
        }
        assert!(err("user=u", &[("PGSSLMODE", "require")])
            .message()
            .contains("SSL"));
        assert!(err("user=u requiressl=1", &[]).message().contains("SSL"));
        assert_eq!(
            err("user=u sslmode=bogus", &[]).message(),
            "invalid sslmode value: \"bogus\""
        );
        assert_eq!(
            err("user=u service=x", &[]).message(),
            "service files are not supported; put the parameters in the connection string"
        );
        assert!(err("user=u replication=1", &[])
            .message()
            .contains("replication connections are not supported"));
        assert!(err("user=u keepalives_idle=x", &[])
            .message()
            .starts_with("invalid integer value"));
    }

    #[test]
    fn harmless_libpq_keys_are_ignored() {
        for s in [
            "sslmode=disable",
            "sslmode=allow",
            "sslmode=prefer",
            "sslrootcert=/x sslcert=/y sslkey=/z sslcrl=/w gssencmode=prefer",
            "krbsrvname=postgres requirepeer=postgres client_encoding=UTF8 sslsni=1",
            "client_encoding=LATIN1",
        ] {
            assert!(resolve_in(&format!("user=u {s}"), &[]).is_ok(), "{s}");
        }
    }

    // --- password file --------------------------------------------------------

    #[test]
    fn passfile_matching_rules() {
        let file = "# comment\n\
                    other:5432:*:*:wrong\n\
                    db1:5433:*:*:notthisport\n\
                    db1:5432:app:u:first\n\
                    db1:5432:app:u:second\n\
                    *:*:*:special:p\\:w\\\\x:ignored\n\
                    h\\:6:5432:*:*:escaped-host\n";
        assert_eq!(
            lookup_passfile(file, "db1", "5432", "app", "u").as_deref(),
            Some("first")
        );
        assert_eq!(
            lookup_passfile(file, "any", "1", "d", "special").as_deref(),
            Some("p:w\\x")
        );
        assert_eq!(
            lookup_passfile(file, "h:6", "5432", "d", "v").as_deref(),
            Some("escaped-host")
        );
        assert_eq!(lookup_passfile(file, "db1", "5432", "other", "u"), None);
        // '*' is a wildcard only as a whole field.
        assert_eq!(lookup_passfile("db*:*:*:*:x\n", "db1", "1", "d", "u"), None);
        assert_eq!(
            lookup_passfile("a:1:d:u:x\r\n", "a", "1", "d", "u").as_deref(),
            Some("x")
        );
    }

    fn write_passfile(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(text.as_bytes()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn password_comes_from_string_then_env_then_passfile() {
        let dir = tempfile::tempdir().unwrap();
        let pf = write_passfile(dir.path(), "pf", "h:5432:d:u:frompassfile\n", 0o600);
        let pf = pf.to_str().unwrap();
        let base = format!("host=h user=u dbname=d passfile={pf}");
        let pw = |s: &str, env: &[(&str, &str)]| {
            resolve_in(s, env).unwrap().password().map(str::to_string)
        };
        assert_eq!(pw(&base, &[]).as_deref(), Some("frompassfile"));
        assert_eq!(pw(&base, &[("PGPASSWORD", "env")]).as_deref(), Some("env"));
        assert_eq!(
            pw(&format!("{base} password=str"), &[("PGPASSWORD", "env")]).as_deref(),
            Some("str")
        );
        assert_eq!(
            pw("host=h user=u dbname=d", &[("PGPASSFILE", pf)]).as_deref(),
            Some("frompassfile")
        );
    }

    #[test]
    fn home_pgpass_is_the_last_resort() {
        let home = tempfile::tempdir().unwrap();
        write_passfile(home.path(), ".pgpass", "*:*:*:u:home\n", 0o600);
        let home = home.path().to_str().unwrap();
        let t = resolve_in("host=h user=u", &[("HOME", home)]).unwrap();
        assert_eq!(t.password(), Some("home"));
    }

    #[test]
    fn group_readable_passfile_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let pf = write_passfile(dir.path(), "pf", "*:*:*:*:x\n", 0o640);
        let t = resolve_in(&format!("host=h user=u passfile={}", pf.display()), &[]).unwrap();
        assert_eq!(t.password(), None);
        let t = resolve_in(
            &format!("host=h user=u passfile={}", dir.path().display()),
            &[],
        )
        .unwrap();
        assert_eq!(t.password(), None, "a directory is not a password file");
    }

    #[test]
    fn default_socket_matches_localhost_in_passfile() {
        let dir = tempfile::tempdir().unwrap();
        let pf = write_passfile(
            dir.path(),
            "pf",
            "localhost:5432:*:u:local\n/tmp/s:5432:*:u:tmpsock\n",
            0o600,
        );
        let pf = pf.to_str().unwrap();
        let pw = |s: &str| {
            resolve_in(&format!("{s} user=u passfile={pf}"), &[])
                .unwrap()
                .password()
                .map(str::to_string)
        };
        assert_eq!(pw("").as_deref(), Some("local"));
        assert_eq!(pw("host=localhost").as_deref(), Some("local"));
        assert_eq!(pw("host=/tmp/s").as_deref(), Some("tmpsock"));
    }
}
