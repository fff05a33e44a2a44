//! Finding repmgr.conf: the file named with `-f`, or the first of the
//! default places that exists.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// PostgreSQL's `SYSCONFDIR` and `PGBINDIR` (what `pg_config --sysconfdir`
/// and `--bindir` say; `make build` passes them), Debian's when not given.
const PG_SYSCONFDIR: &str = match option_env!("REPMGR_PG_SYSCONFDIR") {
    Some(d) => d,
    None => "/etc/postgresql-common",
};
const PG_BINDIR: &str = match option_env!("REPMGR_PG_BINDIR") {
    Some(d) => d,
    None => "/usr/lib/postgresql/15/bin",
};

/// Finds the configuration file as repmgr does: `-f FILE` (which must
/// exist), else `./repmgr.conf`, else `/etc/repmgr.conf`, else
/// `repmgr.conf` in PostgreSQL's sysconfdir as seen from this executable.
pub fn locate(explicit: Option<&str>) -> Result<Option<PathBuf>> {
    let mut candidates = vec![
        PathBuf::from("repmgr.conf"),
        PathBuf::from("/etc/repmgr.conf"),
    ];
    if let Ok(exe) = std::env::current_exe() {
        let dir = exe.parent().unwrap_or(Path::new("/"));
        candidates.push(etc_path(dir, PG_SYSCONFDIR, PG_BINDIR).join("repmgr.conf"));
    }
    locate_among(explicit, &candidates)
}

/// PostgreSQL's `get_etc_path` (`make_relative_path`): `sysconfdir` moved
/// along with the installation, i.e. when `exe_dir` ends with the part of
/// `bindir` below their common prefix, that part is replaced by the rest of
/// `sysconfdir`; otherwise `sysconfdir` itself.
fn etc_path(exe_dir: &Path, sysconfdir: &str, bindir: &str) -> PathBuf {
    let common = sysconfdir
        .bytes()
        .zip(bindir.bytes())
        .enumerate()
        .take_while(|(_, (a, b))| a == b)
        .filter(|(_, (a, _))| *a == b'/')
        .map(|(i, _)| i + 1)
        .last()
        .unwrap_or(0);
    if common == 0 {
        return PathBuf::from(sysconfdir);
    }
    let tail = bindir[common..].trim_end_matches('/');
    let exe = exe_dir.to_string_lossy();
    let exe = exe.trim_end_matches('/');
    match exe.strip_suffix(tail) {
        Some(prefix) if prefix.ends_with('/') => Path::new(prefix).join(&sysconfdir[common..]),
        _ => PathBuf::from(sysconfdir),
    }
}

fn locate_among(explicit: Option<&str>, candidates: &[PathBuf]) -> Result<Option<PathBuf>> {
    if let Some(given) = explicit {
        return explicit_file(given).map(Some);
    }
    Ok(candidates
        .iter()
        .find(|candidate| candidate.is_file())
        .map(|found| absolute(found)))
}

/// A file named with `-f` must exist and be readable: silently falling
/// back to another file would configure the wrong node.
fn explicit_file(given: &str) -> Result<PathBuf> {
    let path = absolute(Path::new(given));
    match fs::File::open(&path) {
        Ok(_) if path.is_file() => Ok(path),
        Ok(_) => Err(Error::config(format!(
            "configuration file \"{given}\" is not a regular file"
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::config(format!(
            "provided configuration file \"{given}\" not found"
        ))
        .detail("No such file or directory")),
        Err(e) => Err(Error::config(format!(
            "could not open configuration file \"{given}\": {e}"
        ))),
    }
}

/// Makes `path` absolute without resolving symlinks (like repmgr, which
/// keeps the name the operator gave).
pub(super) fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ExitCode;

    #[test]
    fn locate_search_order() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("first.conf");
        let second = dir.path().join("second.conf");
        fs::write(&second, "").unwrap();
        let candidates = [first.clone(), second.clone()];
        assert_eq!(
            locate_among(None, &candidates).unwrap(),
            Some(second.clone())
        );
        fs::write(&first, "").unwrap();
        assert_eq!(
            locate_among(None, &candidates).unwrap(),
            Some(first.clone())
        );
        assert_eq!(
            locate_among(None, &[dir.path().join("none")]).unwrap(),
            None
        );
        let given = second.display().to_string();
        assert_eq!(
            locate_among(Some(&given), &candidates).unwrap(),
            Some(second)
        );
    }

    #[test]
    fn sysconfdir_as_postgresql_computes_it() {
        let debian = ("/etc/postgresql-common", "/usr/lib/postgresql/15/bin");
        let at = |exe: &str, (sys, bin): (&str, &str)| etc_path(Path::new(exe), sys, bin);
        assert_eq!(
            at("/usr/lib/postgresql/15/bin", debian),
            PathBuf::from("/etc/postgresql-common")
        );
        assert_eq!(
            at("/opt/x/bin", debian),
            PathBuf::from("/etc/postgresql-common")
        );
        let source = ("/usr/local/pgsql/etc", "/usr/local/pgsql/bin");
        assert_eq!(at("/opt/pg/bin", source), PathBuf::from("/opt/pg/etc"));
        assert_eq!(
            at("/usr/local/pgsql/bin", source),
            PathBuf::from("/usr/local/pgsql/etc")
        );
        // no common directory prefix: sysconfdir as is
        assert_eq!(at("/x/bin", ("etc", "/bin")), PathBuf::from("etc"));
    }

    #[test]
    fn locate_explicit_missing_is_an_error() {
        let error = locate(Some("/nonexistent/dir/repmgr.conf")).unwrap_err();
        assert_eq!(error.code, ExitCode::BadConfig);
        assert!(error.message().contains("/nonexistent/dir/repmgr.conf"));
        let dir = tempfile::tempdir().unwrap();
        let as_dir = dir.path().display().to_string();
        assert!(locate(Some(&as_dir)).is_err());
    }
}
