//! A standby's replication configuration, as repmgr writes it.
//!
//! PostgreSQL 12 and later: the settings go into `postgresql.auto.conf`
//! (edited in place: our keys replaced, everything else kept) and an empty
//! `standby.signal` makes the server start as a standby. Older servers get a
//! `recovery.conf` with `standby_mode = 'on'`.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::conninfo::ConnInfo;
use crate::error::{Error, ExitCode, Result};

/// What a standby needs to stream from its upstream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicationConfig {
    pub primary_conninfo: String,
    pub primary_slot_name: Option<String>,
    pub restore_command: String,
    pub archive_cleanup_command: String,
    pub recovery_min_apply_delay: String,
}

/// Keys repmgr manages; rewriting the configuration replaces all of them,
/// so a value that was set before and is unset now goes away.
/// repmgrd's read-only fence (ALTER SYSTEM, in postgresql.auto.conf). A
/// node configured as a standby never keeps it: a later promotion would
/// otherwise give a primary that takes no write (a standby is read-only
/// anyway).
const FENCE_KEY: &str = "default_transaction_read_only";

const MANAGED_KEYS: &[&str] = &[
    "primary_conninfo",
    "primary_slot_name",
    "restore_command",
    "archive_cleanup_command",
    "recovery_min_apply_delay",
];

/// Builds `primary_conninfo` from the upstream's conninfo as repmgr does:
/// no dbname (a physical replication connection has none), the node's name
/// as application_name (how the upstream tells its standbys apart), the
/// replication user, a passfile if configured, and the password only when
/// `use_primary_conninfo_password` is set.
pub fn primary_conninfo(
    upstream: &ConnInfo,
    node_name: &str,
    replication_user: Option<&str>,
    passfile: &str,
    include_password: bool,
) -> ConnInfo {
    let mut ci = ConnInfo::default();
    for (k, v) in upstream.iter() {
        match k {
            "dbname"
            | "replication"
            | "application_name"
            | "fallback_application_name"
            | "options" => {}
            "password" if !include_password => {}
            _ => ci.set(k, v),
        }
    }
    if include_password && !ci.contains("password") {
        if let Ok(pw) = std::env::var("PGPASSWORD") {
            ci.set("password", &pw);
        }
    }
    if let Some(u) = replication_user.filter(|u| !u.is_empty()) {
        ci.set("user", u);
    }
    if !passfile.is_empty() {
        ci.set("passfile", passfile);
    }
    ci.set("application_name", node_name);
    ci
}

impl ReplicationConfig {
    fn entries(&self) -> Vec<(&'static str, Option<&str>)> {
        fn opt(s: &str) -> Option<&str> {
            (!s.is_empty()).then_some(s)
        }
        vec![
            ("primary_conninfo", Some(self.primary_conninfo.as_str())),
            ("primary_slot_name", self.primary_slot_name.as_deref()),
            ("restore_command", opt(&self.restore_command)),
            (
                "archive_cleanup_command",
                opt(&self.archive_cleanup_command),
            ),
            (
                "recovery_min_apply_delay",
                opt(&self.recovery_min_apply_delay),
            ),
        ]
    }
}

/// Writes the configuration into `datadir` for a server of `version_num`.
pub fn write(datadir: &Path, version_num: i32, rc: &ReplicationConfig) -> Result<()> {
    if version_num >= 120000 {
        let entries = rc.entries();
        let mut updates: Vec<(&str, Option<&str>)> = MANAGED_KEYS
            .iter()
            .map(|k| {
                let v = entries.iter().find(|(ek, _)| ek == k).and_then(|(_, v)| *v);
                (*k, v)
            })
            .collect();
        updates.push((FENCE_KEY, None));
        set_auto_conf(datadir, &updates)?;
        write_file(&datadir.join("standby.signal"), "")?;
    } else {
        let mut text = String::from("# written by repmgr\nstandby_mode = 'on'\n");
        for (k, v) in rc.entries() {
            if let Some(v) = v {
                text.push_str(&format!("{k} = {}\n", quote(v)));
            }
        }
        text.push_str("recovery_target_timeline = 'latest'\n");
        write_file(&datadir.join("recovery.conf"), &text)?;
        if datadir.join("postgresql.auto.conf").exists() {
            set_auto_conf(datadir, &[(FENCE_KEY, None)])?;
        }
    }
    Ok(())
}

/// Removes repmgrd's read-only fence from `datadir`'s postgresql.auto.conf
/// (a server about to start in recovery: see [`FENCE_KEY`]).
pub fn drop_fence(datadir: &Path) -> Result<()> {
    if datadir.join("postgresql.auto.conf").exists() {
        set_auto_conf(datadir, &[(FENCE_KEY, None)])?;
    }
    Ok(())
}

/// The `primary_conninfo` a data directory is configured with, if any.
pub fn read_primary_conninfo(datadir: &Path) -> Option<String> {
    let text = fs::read_to_string(datadir.join("postgresql.auto.conf")).ok()?;
    let mut found = None;
    for line in text.lines() {
        if let Some((k, v)) = parse_line(line) {
            if k == "primary_conninfo" {
                found = Some(v);
            }
        }
    }
    found
}

/// PostgreSQL's GUC quoting: single quotes, a quote doubled.
pub fn quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

/// `key = 'value'` → (key, value); None for comments and other shapes.
fn parse_line(line: &str) -> Option<(String, String)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (k, rest) = line.split_once('=')?;
    let rest = rest.trim();
    let value = if let Some(q) = rest.strip_prefix('\'') {
        let mut out = String::new();
        let mut chars = q.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    out.push('\'');
                }
                '\'' => break,
                '\\' => {
                    if let Some(n) = chars.next() {
                        out.push(n);
                    }
                }
                c => out.push(c),
            }
        }
        out
    } else {
        rest.split('#').next().unwrap_or("").trim().to_string()
    };
    Some((k.trim().to_string(), value))
}

/// Edits `postgresql.auto.conf`: each key given is removed, then appended
/// again with its new value when it has one. Other lines stay untouched.
pub fn set_auto_conf(datadir: &Path, updates: &[(&str, Option<&str>)]) -> Result<()> {
    let path = datadir.join("postgresql.auto.conf");
    let old = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(file_error("read", &path, &e)),
    };
    let mut out = String::new();
    for line in old.lines() {
        let ours = parse_line(line).is_some_and(|(k, _)| updates.iter().any(|(u, _)| *u == k));
        if !ours {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !out.contains("Do not edit this file manually") {
        out.insert_str(
            0,
            "# Do not edit this file manually!\n# It will be overwritten by the ALTER SYSTEM command.\n",
        );
    }
    for (k, v) in updates {
        if let Some(v) = v {
            out.push_str(&format!("{k} = {}\n", quote(v)));
        }
    }
    write_file(&path, &out)
}

/// Writes through a temporary file and a rename, so a crash never leaves a
/// half-written configuration behind.
fn write_file(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("repmgr-tmp");
    let res = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))?;
        fs::rename(&tmp, path)
    })();
    res.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        file_error("write", path, &e)
    })
}

fn file_error(what: &str, path: &Path, e: &std::io::Error) -> Error {
    Error::new(
        ExitCode::BadConfig,
        format!("unable to {what} \"{}\"", path.display()),
    )
    .detail(e.to_string())
    .hint("check the data directory belongs to the user running repmgr")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primary_conninfo_as_repmgr_builds_it() {
        let up = ConnInfo::parse(
            "host=node1 port=5432 user=repmgr dbname=repmgr password=s3 connect_timeout=2 application_name=x",
        )
        .unwrap();
        let ci = primary_conninfo(&up, "node2", None, "", false);
        assert_eq!(
            ci.to_string(),
            "host=node1 port=5432 user=repmgr connect_timeout=2 application_name=node2"
        );
        let ci = primary_conninfo(&up, "node2", Some("repl"), "/p/.pgpass", true);
        assert_eq!(ci.get("user"), Some("repl"));
        assert_eq!(ci.get("password"), Some("s3"));
        assert_eq!(ci.get("passfile"), Some("/p/.pgpass"));
    }

    #[test]
    fn auto_conf_keeps_other_lines_and_replaces_ours() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("postgresql.auto.conf");
        fs::write(
            &p,
            "# Do not edit this file manually!\nwork_mem = '8MB'\nprimary_conninfo = 'host=old'\nprimary_slot_name = 'gone'\n",
        )
        .unwrap();
        let rc = ReplicationConfig {
            primary_conninfo: "host=new application_name='it''s'".into(),
            ..Default::default()
        };
        write(dir.path(), 150000, &rc).unwrap();
        let text = fs::read_to_string(&p).unwrap();
        assert!(text.contains("work_mem = '8MB'"));
        assert!(!text.contains("host=old"));
        assert!(!text.contains("primary_slot_name"), "{text}");
        assert_eq!(
            read_primary_conninfo(dir.path()).unwrap(),
            "host=new application_name='it''s'"
        );
        assert!(dir.path().join("standby.signal").exists());
    }

    #[test]
    fn a_standby_keeps_no_read_only_fence() {
        // repmgrd's fence on a former primary, then rejoin or follow: a
        // later promotion must not give a read-only primary.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("postgresql.auto.conf");
        fs::write(
            &p,
            "work_mem = '8MB'\ndefault_transaction_read_only = 'on'\n",
        )
        .unwrap();
        let rc = ReplicationConfig {
            primary_conninfo: "host=new".into(),
            ..Default::default()
        };
        write(dir.path(), 150000, &rc).unwrap();
        let text = fs::read_to_string(&p).unwrap();
        assert!(!text.contains("default_transaction_read_only"), "{text}");
        assert!(text.contains("work_mem = '8MB'"));
        fs::write(&p, "default_transaction_read_only = on\n").unwrap();
        write(dir.path(), 110000, &rc).unwrap();
        let text = fs::read_to_string(&p).unwrap();
        assert!(!text.contains("default_transaction_read_only"), "{text}");
        // A demotion with no new primary to follow drops it too.
        fs::write(
            &p,
            "work_mem = '8MB'
default_transaction_read_only = on
",
        )
        .unwrap();
        drop_fence(dir.path()).unwrap();
        let text = fs::read_to_string(&p).unwrap();
        assert!(!text.contains("default_transaction_read_only"), "{text}");
        assert!(text.contains("work_mem = '8MB'"));
    }

    #[test]
    fn recovery_conf_for_old_servers() {
        let dir = tempfile::tempdir().unwrap();
        let rc = ReplicationConfig {
            primary_conninfo: "host=a".into(),
            primary_slot_name: Some("repmgr_slot_2".into()),
            ..Default::default()
        };
        write(dir.path(), 110000, &rc).unwrap();
        let text = fs::read_to_string(dir.path().join("recovery.conf")).unwrap();
        assert!(text.contains("standby_mode = 'on'"));
        assert!(text.contains("primary_slot_name = 'repmgr_slot_2'"));
        assert!(!dir.path().join("standby.signal").exists());
    }
}
