//! pg_rewind on a stopped node: the configuration files it would replace
//! kept aside and put back, the signal files out of its way, and the
//! replication slots it leaves in the data directory.

use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::config::Config;
use crate::db::nodes::NodeRecord;
use crate::error::{Error, ExitCode, Result};
use crate::process;

/// How long pg_rewind may run before it is stopped.
pub const PG_REWIND_TIMEOUT: Duration = Duration::from_secs(3600);

/// Configuration files inside the data directory that are always kept
/// across pg_rewind (which would replace them with the source's copies).
pub const DEFAULT_KEPT_FILES: &[&str] = &[
    "postgresql.conf",
    "postgresql.auto.conf",
    "pg_hba.conf",
    "pg_ident.conf",
];

/// Files pg_rewind would overwrite that this node keeps: the defaults,
/// every other `*.conf` file at the top of the data directory (files
/// included from postgresql.conf belong to this node, not to the source),
/// plus `--config-files`.
fn kept_files(datadir: &Path, extra: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut local_confs: Vec<String> = fs::read_dir(datadir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".conf"))
                .collect()
        })
        .unwrap_or_default();
    local_confs.sort();
    for f in DEFAULT_KEPT_FILES
        .iter()
        .map(|s| s.to_string())
        .chain(local_confs)
        .chain(extra.iter().cloned())
    {
        if out.contains(&f) {
            continue;
        }
        if datadir.join(&f).is_file() {
            out.push(f);
        } else if extra.contains(&f) {
            crate::log_warning!(
                "file \"{f}\" given with --config-files does not exist in the data directory"
            );
        }
    }
    out
}

/// Signal files that must not be there while pg_rewind runs (single-user
/// crash recovery refuses standby mode).
const SIGNAL_FILES: &[&str] = &["standby.signal", "recovery.signal"];

/// Archives the kept files, runs pg_rewind, restores them; returns what
/// pg_rewind printed. On failure the kept files and signal files are put back.
pub fn rewind(
    cfg: &Config,
    pg_rewind: &Path,
    config_files: &[String],
    config_archive_dir: &Path,
    primary: &NodeRecord,
    datadir: &Path,
) -> Result<String> {
    // A fresh private directory (mkdtemp, 0700): the default parent is /tmp.
    let prefix = format!("repmgr-config-archive-{}", cfg.node_name);
    let archive = process::private_dir(config_archive_dir, &prefix)
        .map_err(|e| file_error("create", &config_archive_dir.join(&prefix), &e))?;
    let files = kept_files(datadir, config_files);
    let moved_signals = set_aside(datadir, &archive, &files)?;
    let out = match run_pg_rewind(pg_rewind, primary, datadir) {
        Ok(out) => out,
        Err(e) => {
            if let Err(r) = restore(&archive, datadir, &files, &moved_signals) {
                crate::log_warning!(
                    "unable to restore the archived configuration files from \"{}\": {}",
                    archive.display(),
                    r.message()
                );
            }
            return Err(e.hint(
            "check the pg_rewind output above; the source conninfo needs a user allowed to run pg_rewind (superuser or the documented grants)",
        ));
        }
    };
    crate::log_notice!("pg_rewind completed");
    restore(&archive, datadir, &files, &[])?;
    for f in &files {
        crate::log_info!("restored \"{f}\"");
    }
    if let Err(e) = fs::remove_dir_all(&archive) {
        crate::log_warning!(
            "unable to remove archive directory \"{}\": {e}",
            archive.display()
        );
    }
    Ok(format!("{}{}", out.stdout, out.stderr))
}

/// Copies the kept files into the fresh `archive` and moves the signal files
/// there; returns the signal files moved.
fn set_aside(datadir: &Path, archive: &Path, files: &[String]) -> Result<Vec<&'static str>> {
    for f in files {
        copy_file(&datadir.join(f), &archive.join(f))?;
        crate::log_info!("archived \"{f}\" to \"{}\"", archive.display());
    }
    let mut moved_signals = Vec::new();
    for s in SIGNAL_FILES {
        let p = datadir.join(s);
        if p.exists() {
            let to = archive.join(format!("{s}.repmgr"));
            fs::rename(&p, &to).map_err(|e| file_error("move", &p, &e))?;
            moved_signals.push(*s);
        }
    }
    Ok(moved_signals)
}

/// Puts the archived `files` and `signals` back into the data directory.
fn restore(archive: &Path, datadir: &Path, files: &[String], signals: &[&str]) -> Result<()> {
    for f in files {
        copy_file(&archive.join(f), &datadir.join(f))?;
    }
    for s in signals {
        let from = archive.join(format!("{s}.repmgr"));
        fs::rename(&from, datadir.join(s)).map_err(|e| file_error("restore", &from, &e))?;
    }
    Ok(())
}

/// `pg_rewind -D <datadir> --source-server=<primary>`, logged as it runs;
/// a non-zero exit is an error carrying its output.
fn run_pg_rewind(
    pg_rewind: &Path,
    primary: &NodeRecord,
    datadir: &Path,
) -> Result<process::Output> {
    let (cmd, _service_file) = pg_rewind_command(pg_rewind, primary, datadir)?;
    crate::log_notice!("executing pg_rewind with source node {}", primary);
    crate::log_detail!("{}", process::display_command(&cmd));
    let shown = process::display_command(&cmd);
    let mut tick = |elapsed: Duration| {
        crate::log_info!("pg_rewind running for {} s", elapsed.as_secs());
    };
    process::run_logged(
        cmd,
        PG_REWIND_TIMEOUT,
        "pg_rewind",
        ExitCode::RejoinFail,
        false,
        Duration::from_secs(10),
        &mut tick,
    )
    .and_then(|out| {
        if out.success() {
            Ok(out)
        } else {
            Err(process::failure(
                &out,
                &shown,
                "pg_rewind",
                ExitCode::RejoinFail,
            ))
        }
    })
}

/// The pg_rewind invocation. The password goes in the child's environment
/// and sslpassword in a service file of its own (kept until pg_rewind has
/// run), never on its command line (any user can read that in ps) nor in
/// the logged command.
fn pg_rewind_command(
    pg_rewind: &Path,
    primary: &NodeRecord,
    datadir: &Path,
) -> Result<(
    std::process::Command,
    Option<crate::tool_secrets::ServiceFile>,
)> {
    let mut source = crate::conninfo::ConnInfo::parse(&primary.conninfo).map_err(|e| {
        Error::new(
            ExitCode::RejoinFail,
            format!("invalid conninfo for node \"{}\"", primary.node_name),
        )
        .detail(e)
    })?;
    let password = source.remove("password");
    let mut cmd = std::process::Command::new(pg_rewind);
    let service_file = crate::tool_secrets::hand_sslpassword(&mut source, &mut cmd, "pg_rewind")
        .map_err(|e| e.with_code(ExitCode::RejoinFail))?;
    cmd.arg("-D")
        .arg(datadir)
        .arg(format!("--source-server={source}"))
        .env("LC_ALL", "C");
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    }
    Ok((cmd, service_file))
}

fn copy_file(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).map_err(|e| file_error("create", parent, &e))?;
    }
    fs::copy(from, to).map_err(|e| {
        Error::new(
            ExitCode::RejoinFail,
            format!(
                "unable to copy \"{}\" to \"{}\"",
                from.display(),
                to.display()
            ),
        )
        .detail(e.to_string())
    })?;
    Ok(())
}

fn file_error(what: &str, path: &Path, e: &std::io::Error) -> Error {
    Error::new(
        ExitCode::RejoinFail,
        format!("unable to {what} \"{}\"", path.display()),
    )
    .detail(e.to_string())
}

/// The physical replication slots stored in a stopped data directory.
pub fn list_replication_slots(datadir: &Path) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(datadir.join("pg_replslot"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().join("state").is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Removes every replication slot from a stopped, rewound data directory:
/// they are the source's, copied by pg_rewind.
pub fn remove_replication_slots(datadir: &Path) -> Result<Vec<String>> {
    let dir = datadir.join("pg_replslot");
    let mut removed = Vec::new();
    let Ok(rd) = fs::read_dir(&dir) else {
        return Ok(removed);
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            fs::remove_dir_all(&p).map_err(|err| file_error("remove", &p, &err))?;
            removed.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    removed.sort();
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_rewind_gets_the_password_through_its_environment() {
        let primary = NodeRecord {
            node_id: 1,
            upstream_node_id: None,
            active: true,
            node_name: "node1".into(),
            node_type: crate::db::nodes::NodeType::Primary,
            location: "default".into(),
            priority: 100,
            conninfo: "host=db1 user=repmgr password=s3cret dbname=repmgr".into(),
            repluser: "repmgr".into(),
            slot_name: None,
            config_file: String::new(),
        };
        let (cmd, _) =
            pg_rewind_command(Path::new("/bin/pg_rewind"), &primary, Path::new("/d")).unwrap();
        let line = process::display_command(&cmd);
        assert!(!line.contains("s3cret"), "{line}");
        assert!(
            line.ends_with("'--source-server=host=db1 user=repmgr dbname=repmgr'"),
            "{line}"
        );
        let env: Vec<_> = cmd.get_envs().collect();
        assert!(env.contains(&(
            std::ffi::OsStr::new("PGPASSWORD"),
            Some(std::ffi::OsStr::new("s3cret"))
        )));

        // sslpassword: in a service file of its own, never on the line.
        let primary = NodeRecord {
            conninfo: "host=db1 user=repmgr sslkey=/k sslpassword=k3y dbname=repmgr".into(),
            ..primary
        };
        let (cmd, file) =
            pg_rewind_command(Path::new("/bin/pg_rewind"), &primary, Path::new("/d")).unwrap();
        let line = process::display_command(&cmd);
        assert!(!line.contains("k3y"), "{line}");
        let file = file.expect("a service file for sslpassword");
        let path = cmd
            .get_envs()
            .find(|(k, _)| *k == "PGSERVICEFILE")
            .and_then(|(_, v)| v)
            .map(std::path::PathBuf::from)
            .unwrap();
        assert!(fs::read_to_string(&path)
            .unwrap()
            .contains("sslpassword=k3y"));
        drop(file);
        assert!(!path.exists());
    }

    #[test]
    fn the_config_archive_is_a_fresh_private_directory() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let a = process::private_dir(tmp.path(), "repmgr-config-archive-node1").unwrap();
        let mode = fs::metadata(&a).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{mode:o}");
    }

    #[test]
    fn kept_files_and_slots() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(d.join("postgresql.conf"), "x").unwrap();
        fs::write(d.join("postgresql.auto.conf"), "y").unwrap();
        fs::write(d.join("extra.conf"), "z").unwrap();
        let k = kept_files(d, &["extra.conf".into(), "missing.conf".into()]);
        assert_eq!(
            k,
            vec!["postgresql.conf", "postgresql.auto.conf", "extra.conf"]
        );
        fs::create_dir_all(d.join("pg_replslot/repmgr_slot_2")).unwrap();
        fs::write(d.join("pg_replslot/repmgr_slot_2/state"), "").unwrap();
        assert_eq!(list_replication_slots(d), vec!["repmgr_slot_2"]);
        assert_eq!(remove_replication_slots(d).unwrap(), vec!["repmgr_slot_2"]);
        assert!(list_replication_slots(d).is_empty());
    }
}
