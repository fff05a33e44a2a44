//! What the clone steps share: the copy method, the copy deadline and
//! progress logging, the replication conninfo, removing a path.

use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::conninfo::ConnInfo;
use crate::error::{Error, Result};

/// Bound on one copy (pg_basebackup, each rsync): generous for big
/// clusters, but a hung copy never hangs repmgr forever.
pub const COPY_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

/// How often a plain progress line is logged while a copy runs.
pub const TICK: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Basebackup,
    Rsync,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Basebackup => "pg_basebackup",
            Method::Rsync => "rsync",
        }
    }

    /// pg_basebackup -X stream holds two WAL senders; an rsync clone needs
    /// one, for the standby once it starts.
    pub fn wal_senders_needed(self) -> i64 {
        match self {
            Method::Basebackup => 2,
            Method::Rsync => 1,
        }
    }

    pub fn describe_wal_use(self) -> &'static str {
        match self {
            Method::Basebackup => "pg_basebackup -X stream",
            Method::Rsync => "the standby's replication connection",
        }
    }
}

/// A conninfo for a physical replication connection, and the password
/// taken out of it (children get it as PGPASSWORD, never on a command line).
pub fn replication_conninfo(ci: &ConnInfo) -> (ConnInfo, Option<String>) {
    let mut r = ci.clone();
    let password = r.remove("password");
    r.remove("dbname");
    r.remove("application_name");
    r.set("replication", "true");
    r.set("fallback_application_name", "repmgr");
    r.set_if_absent("connect_timeout", "10");
    (r, password.or_else(|| std::env::var("PGPASSWORD").ok()))
}

/// Removes a file, a symlink (never what it points to) or a directory tree.
pub fn remove_entry(p: &Path) -> Result<()> {
    let r = match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    r.map_err(|e| {
        Error::config(format!("unable to remove \"{}\"", p.display())).detail(e.to_string())
    })
}

/// A plain progress line while a copy runs; silent when the tool's own
/// progress display goes to a terminal.
pub fn progress_logger(what: &'static str, target: &Path, tty: bool) -> impl FnMut(Duration) {
    let target = target.to_path_buf();
    move |elapsed| {
        if tty {
            return;
        }
        crate::log_info!(
            "{what} running for {} s, {} MB in \"{}\" so far",
            elapsed.as_secs(),
            dir_size(&target) / (1024 * 1024),
            target.display()
        )
    }
}

fn dir_size(p: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replication_conninfo_moves_password_out() {
        let ci = ConnInfo::parse("host=a port=5 user=u dbname=d password=p").unwrap();
        let (r, pw) = replication_conninfo(&ci);
        assert_eq!(pw.as_deref(), Some("p"));
        assert_eq!(r.get("password"), None);
        assert_eq!(r.get("dbname"), None);
        assert_eq!(r.get("replication"), Some("true"));
    }
}
