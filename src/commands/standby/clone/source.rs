//! Where the clone reads from: the source's conninfo (options, the
//! positional HOST, the configured conninfo's other keys), the replication
//! user, whether the source runs on this host, and the connected source
//! with what the clone reads from it first.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use crate::commands::{connect_node, parse_conninfo, Ctx};
use crate::conninfo::ConnInfo;
use crate::db::{self, replication as repl, Session};
use crate::error::{Error, ExitCode, Result};

/// The source server, connected and checked: its version is supported
/// and, when it runs here, its data directory is not the target.
pub struct Source {
    pub ci: ConnInfo,
    /// Host and port as shown in messages and the event.
    pub host: String,
    pub port: String,
    pub conn: Session,
    pub version: i32,
    /// data_directory, config_file, hba_file, ident_file (those readable).
    pub files: HashMap<String, String>,
    pub datadir: Option<String>,
    /// The source runs on this host.
    pub local: bool,
}

impl Source {
    /// `superuser` (-S/--superuser) reads the file locations when the
    /// connecting user may not (no superuser or pg_read_all_settings), as
    /// repmgr does for `--copy-external-config-files`.
    pub fn connect(ci: ConnInfo, target: &Path, superuser: Option<&str>) -> Result<Source> {
        let (host, port) = shown_host_port(&ci);
        let mut conn = connect_source(&ci)?;
        let version = db::server::version_num(&mut conn)?;
        if version < 100000 {
            return Err(Error::config(format!(
                "the upstream runs PostgreSQL {}; cloning needs PostgreSQL 10 or later",
                version / 10000
            )));
        }
        let mut files = repl::file_settings(&mut conn)?;
        if let Some(su) = superuser.filter(|_| !files.contains_key("data_directory")) {
            files = superuser_file_settings(&ci, su)?;
        }
        let datadir = files.get("data_directory").cloned();
        let local = is_local_source(&ci);
        if local {
            if let Some(sd) = &datadir {
                if same_dir(Path::new(sd), target) {
                    return Err(Error::config(format!(
                        "target data directory \"{}\" is the source server's own data directory",
                        target.display()
                    ))
                    .hint("choose another directory with -D/--pgdata"));
                }
            }
        }
        Ok(Source {
            ci,
            host,
            port,
            conn,
            version,
            files,
            datadir,
            local,
        })
    }
}

/// The source's file locations read as -S/--superuser.
fn superuser_file_settings(ci: &ConnInfo, superuser: &str) -> Result<HashMap<String, String>> {
    let mut su_ci = ci.clone();
    su_ci.set("user", superuser);
    crate::log_info!("reading the source's file locations as superuser \"{superuser}\"");
    let mut conn = connect_source(&su_ci).map_err(|e| {
        Error::config(format!(
            "unable to connect to the source node as provided superuser \"{superuser}\""
        ))
        .detail(e.reason().to_string())
    })?;
    if !db::checks::is_superuser(&mut conn)? {
        return Err(Error::config(format!(
            "connection to the source node for provided superuser \"{superuser}\" is not a superuser connection"
        )));
    }
    repl::file_settings(&mut conn)
}

/// The source: -h/-p/-U/-d or the positional HOST, on top of the configured
/// conninfo's other keys (user, passfile…), as repmgr does.
pub fn source_conninfo(ctx: &Ctx) -> Result<ConnInfo> {
    let o = &ctx.opts;
    let mut ci = match ctx.conninfo_from_options()? {
        Some(ci) => ci,
        None => match ctx.loaded.as_ref() {
            Some(l) if !l.config.conninfo.is_empty() => {
                let mut base =
                    parse_conninfo(&l.config.conninfo, "conninfo in the configuration file")?;
                for k in ["host", "hostaddr", "port", "application_name"] {
                    base.remove(k);
                }
                base
            }
            _ => ConnInfo::default(),
        },
    };
    if let Some(h) = ctx.arg.as_deref().filter(|h| !h.is_empty()) {
        if let Some(given) = o.host.as_deref() {
            if given != h {
                return Err(Error::config(format!(
                    "two source hosts given: -h \"{given}\" and \"{h}\""
                ))
                .hint("give the upstream host once, with -h/--host or as the last argument"));
            }
        }
        ci.remove("hostaddr");
        ci.set("host", h);
    }
    let named = ctx.arg.is_some()
        || o.host.is_some()
        || o.port.is_some()
        || o.username.is_some()
        || o.dbname.is_some();
    if !named {
        return Err(Error::config("no upstream node to clone from")
            .hint("give the upstream's host with -h/--host or as the last argument (\"repmgr -D /data standby clone node1\"), or a conninfo with -d"));
    }
    Ok(ci)
}

pub fn connect_source(ci: &ConnInfo) -> Result<Session> {
    connect_node(ci, "", 0).map_err(|mut e| {
        e.messages = vec!["unable to connect to the source node".into()];
        e.with_code(ExitCode::DbConn)
    })
}

/// The source conninfo with `--replication-user` / `replication_user`.
pub fn with_replication_user(ctx: &Ctx, ci: &ConnInfo) -> ConnInfo {
    let mut ci = ci.clone();
    if let Some(u) = replication_user(ctx) {
        ci.set("user", &u);
    }
    ci
}

pub fn replication_user(ctx: &Ctx) -> Option<String> {
    ctx.opts
        .replication_user
        .clone()
        .filter(|u| !u.is_empty())
        .or_else(|| {
            let u = &ctx.config().replication_user;
            (!u.is_empty()).then(|| u.clone())
        })
}

/// Host and port as shown in messages and the event.
fn shown_host_port(ci: &ConnInfo) -> (String, String) {
    let host = ci
        .host()
        .or(ci.get("hostaddr"))
        .map(str::to_string)
        .or_else(|| std::env::var("PGHOST").ok())
        .unwrap_or_else(|| "localhost".into());
    let port = ci
        .port()
        .map(str::to_string)
        .or_else(|| std::env::var("PGPORT").ok())
        .unwrap_or_else(|| "5432".into());
    (host, port)
}

/// Whether the source server runs on this host: a unix socket, loopback,
/// localhost, or this host's own name.
pub fn is_local_source(ci: &ConnInfo) -> bool {
    if let Some(a) = ci.get("hostaddr") {
        return a
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    }
    let host = ci
        .host()
        .map(str::to_string)
        .or_else(|| std::env::var("PGHOST").ok())
        .unwrap_or_default();
    is_local_host(&host)
}

pub fn is_local_host(host: &str) -> bool {
    if host.is_empty() || host.starts_with('/') || host.starts_with('@') || host == "localhost" {
        return true;
    }
    if let Ok(ip) = host
        .trim_matches(|c| c == '[' || c == ']')
        .parse::<std::net::IpAddr>()
    {
        return ip.is_loopback();
    }
    let me = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    !me.is_empty()
        && (host.eq_ignore_ascii_case(&me)
            || host.eq_ignore_ascii_case(me.split('.').next().unwrap_or("")))
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_hosts() {
        for h in [
            "",
            "/tmp",
            "localhost",
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
        ] {
            assert!(is_local_host(h), "{h}");
        }
        for h in ["10.1.2.3", "node1.example.invalid"] {
            assert!(!is_local_host(h), "{h}");
        }
    }
}
