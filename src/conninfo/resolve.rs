//! Resolving a [`ConnInfo`] into a [`ConnTarget`] the way libpq would
//! before connecting: `PG*` environment fallbacks, defaults, host, address
//! and port lists, the password (string, `PGPASSWORD`, then the password
//! file), settings this build cannot honour, and the `postgres` crate's
//! configuration.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_postgres::config::{
    ChannelBinding, LoadBalanceHosts, SslMode as DriverSslMode, TargetSessionAttrs,
};

use super::passfile::{lookup_passfile, read_passfile};
use super::service::apply_service;
use super::ssl::{resolve_ssl, SslMode, SslSettings, SSL_KEYS};
use super::ConnInfo;
use crate::error::{Error, Result};

/// libpq's compiled-in socket directory on Debian/Ubuntu/RHEL packages.
pub const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";
pub const DEFAULT_PORT: u16 = 5432;
/// repmgr adds `connect_timeout=2` to every connection, and libpq raises
/// anything lower to 2 s; we also use it when the value is 0 or invalid
/// because a connection attempt must always have a hard deadline.
pub const MIN_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

impl ConnInfo {
    /// Resolves against the process environment, as libpq does.
    pub fn resolve(&self) -> Result<ConnTarget> {
        self.resolve_with(&|name| std::env::var(name).ok())
    }

    /// Resolves with an injected environment (tests, or a prepared env).
    pub fn resolve_with(&self, env: EnvLookup) -> Result<ConnTarget> {
        resolve(self, env)
    }
}

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
    /// target_session_attrs primary, standby or prefer-standby, which the
    /// driver does not know: checked after connecting (`db::connect`).
    pub server_role: Option<ServerRole>,
    pub channel_binding: ChannelBinding,
    pub load_balance_hosts: LoadBalanceHosts,
    pub ssl: SslSettings,
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

    /// The driver's configuration for every endpoint, with the TLS mode of
    /// libpq's first attempt (`db::tls` plans the fallbacks).
    pub fn to_config(&self) -> tokio_postgres::Config {
        let over_tcp = self
            .endpoints
            .iter()
            .any(|e| matches!(e, Endpoint::Tcp { .. }));
        let mode = match self.ssl.mode {
            _ if !over_tcp => DriverSslMode::Disable,
            SslMode::Disable | SslMode::Allow => DriverSslMode::Disable,
            SslMode::Prefer => DriverSslMode::Prefer,
            _ => DriverSslMode::Require,
        };
        self.config_for(&self.endpoints, mode)
    }

    /// The driver's configuration for some of the endpoints, with the
    /// driver's TLS mode given (it knows only disable, prefer and require;
    /// the verification is the connector's business).
    pub fn config_for(
        &self,
        endpoints: &[Endpoint],
        ssl_mode: DriverSslMode,
    ) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        for e in endpoints {
            add_endpoint(&mut c, e);
        }
        c.user(&self.user)
            .dbname(&self.dbname)
            .ssl_mode(ssl_mode)
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
fn add_endpoint(c: &mut tokio_postgres::Config, e: &Endpoint) {
    match e {
        Endpoint::Socket { dir, port } => {
            c.host_path(Path::new(dir)).port(*port);
        }
        Endpoint::Tcp {
            host,
            hostaddr,
            port,
        } => {
            // The driver names the server in the TLS handshake only by
            // `host`, so a bare hostaddr stands in for it (libpq verifies a
            // hostaddr-only connection against the address too).
            match (host, hostaddr) {
                (Some(h), _) => {
                    c.host(h);
                }
                (None, Some(a)) => {
                    c.host(a.to_string());
                }
                (None, None) => {}
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
    "replication",
    "service",
    "target_session_attrs",
    "channel_binding",
    "load_balance_hosts",
];

fn resolve(ci: &ConnInfo, env: EnvLookup) -> Result<ConnTarget> {
    let ci = &apply_service(ci, env)?;
    reject_unsupported(ci)?;
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
        server_role: server_role(ci.get("target_session_attrs")),
        channel_binding: channel_binding(ci.get("channel_binding"))?,
        load_balance_hosts: load_balance_hosts(ci.get("load_balance_hosts"))?,
        ssl: resolve_ssl(ci, env)?,
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

fn reject_unsupported(ci: &ConnInfo) -> Result<()> {
    if ci.contains("replication") {
        return Err(Error::db_conn(
            "replication connections are not supported here",
        ));
    }
    if ci.get("gssencmode") == Some("require") {
        return Err(Error::db_conn(
            "GSSAPI encryption (gssencmode=require) is not supported by this build",
        ));
    }
    Ok(())
}

fn note_ignored_keys(ci: &ConnInfo) {
    for (k, v) in ci.iter() {
        if k == "client_encoding" && !is_utf8_encoding(v) {
            crate::log_warning!("client_encoding \"{v}\" ignored: connections always use UTF8");
        } else if !KEYS_USED.contains(&k) && !SSL_KEYS.contains(&k) {
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
        "primary" | "standby" | "prefer-standby" => Ok(TargetSessionAttrs::Any),
        other => Err(Error::db_conn(format!(
            "invalid target_session_attrs value: \"{other}\""
        ))),
    }
}

/// libpq 14's roles by recovery state (see [`ConnTarget::server_role`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerRole {
    Primary,
    Standby,
    PreferStandby,
}

fn server_role(v: Option<&str>) -> Option<ServerRole> {
    match v? {
        "primary" => Some(ServerRole::Primary),
        "standby" => Some(ServerRole::Standby),
        "prefer-standby" => Some(ServerRole::PreferStandby),
        _ => None,
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
#[cfg(test)]
mod tests {
    use super::*;
    use crate::conninfo::tests::{env_of, parse, resolve_in, write_passfile};

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
        assert_eq!(
            c.get_hosts(),
            &[tokio_postgres::config::Host::Tcp("db".into())]
        );
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
        assert_eq!(c.get_ssl_mode(), DriverSslMode::Prefer);
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
        assert_eq!(
            err("user=u sslmode=bogus", &[]).message(),
            "invalid sslmode value: \"bogus\""
        );
        assert_eq!(
            err("user=u", &[("PGSSLMODE", "bogus")]).code,
            crate::error::ExitCode::DbConn
        );
        assert_eq!(
            err("user=u service=x", &[("PGSERVICEFILE", "/nonexistent")]).message(),
            "definition of service \"x\" not found"
        );
        assert!(err("user=u replication=1", &[])
            .message()
            .contains("replication connections are not supported"));
        assert!(err("user=u keepalives_idle=x", &[])
            .message()
            .starts_with("invalid integer value"));
    }

    #[test]
    fn tls_keys_resolve_and_choose_the_first_attempt() {
        let mode = |s: &str| {
            resolve_in(&format!("user=u {s}"), &[])
                .unwrap()
                .to_config()
                .get_ssl_mode()
        };
        assert_eq!(mode("host=h"), DriverSslMode::Prefer);
        assert_eq!(mode("host=h sslmode=allow"), DriverSslMode::Disable);
        assert_eq!(mode("host=h sslmode=disable"), DriverSslMode::Disable);
        assert_eq!(mode("host=h sslmode=verify-full"), DriverSslMode::Require);
        assert_eq!(mode("host=h requiressl=1"), DriverSslMode::Require);
        // No TLS over unix sockets, as libpq: sslmode does not apply there.
        assert_eq!(mode("host=/tmp sslmode=require"), DriverSslMode::Disable);
        let t = resolve_in("user=u sslmode=verify-ca sslrootcert=/ca", &[]).unwrap();
        assert_eq!(t.ssl.mode, SslMode::VerifyCa);
        // A bare hostaddr names the server in the handshake.
        let c = resolve_in("user=u hostaddr=127.0.0.1", &[])
            .unwrap()
            .to_config();
        assert_eq!(
            c.get_hosts(),
            &[tokio_postgres::config::Host::Tcp("127.0.0.1".into())]
        );
    }

    #[test]
    fn harmless_libpq_keys_are_ignored() {
        for s in [
            "sslmode=disable",
            "sslmode=allow",
            "sslmode=prefer",
            "sslmode=require sslrootcert=/x sslcert=/y sslkey=/z sslcrl=/w gssencmode=prefer",
            "krbsrvname=postgres requirepeer=postgres client_encoding=UTF8 sslsni=1",
            "client_encoding=LATIN1",
        ] {
            assert!(resolve_in(&format!("user=u {s}"), &[]).is_ok(), "{s}");
        }
    }

    // --- password file --------------------------------------------------------

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
