//! Finding repmgr.conf: the file named with `-f`, or the first of the
//! default places that exists.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Finds the configuration file as repmgr does: `-f FILE` (which must
/// exist), else `./repmgr.conf`, else `/etc/repmgr.conf`.
pub fn locate(explicit: Option<&str>) -> Result<Option<PathBuf>> {
    let candidates = [
        PathBuf::from("repmgr.conf"),
        PathBuf::from("/etc/repmgr.conf"),
    ];
    locate_among(explicit, &candidates)
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
            "configuration file \"{given}\" not found"
        ))),
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
    fn locate_explicit_missing_is_an_error() {
        let error = locate(Some("/nonexistent/dir/repmgr.conf")).unwrap_err();
        assert_eq!(error.code, ExitCode::BadConfig);
        assert!(error.message().contains("/nonexistent/dir/repmgr.conf"));
        let dir = tempfile::tempdir().unwrap();
        let as_dir = dir.path().display().to_string();
        assert!(locate(Some(&as_dir)).is_err());
    }
}
