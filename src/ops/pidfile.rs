//! repmgrd's pid file: refuses a second daemon while the recorded process
//! lives, replaces a stale file, and is removed when the daemon stops.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;

use crate::config::Config;
use crate::error::{Error, ExitCode, Result};

/// The pid file repmgrd uses: `-p`, else `repmgrd_pid_file`, else
/// `$TMPDIR/repmgrd.pid` as repmgr does; None with `--no-pid-file`.
/// `repmgr service status` and `daemon stop` look in the same place.
pub fn path(given: Option<&str>, no_pid_file: bool, cfg: &Config) -> Option<PathBuf> {
    if no_pid_file {
        return None;
    }
    Some(match (given, cfg.repmgrd_pid_file.as_str()) {
        (Some(p), _) => PathBuf::from(p),
        (None, "") => std::env::temp_dir().join("repmgrd.pid"),
        (None, p) => PathBuf::from(p),
    })
}

/// Errors unless the pid file is absent, empty, stale or unreadable garbage.
pub fn check_not_running(path: &Path) -> Result<()> {
    let Ok(text) = fs::read_to_string(path) else {
        return Ok(());
    };
    let Ok(pid) = text.trim().parse::<i32>() else {
        crate::log_warning!(
            "pid file \"{}\" does not contain a process ID; overwriting it",
            path.display()
        );
        return Ok(());
    };
    if pid > 0 && pid as u32 != std::process::id() && alive(pid) {
        return Err(Error::new(
            ExitCode::BadPidfile,
            format!(
                "pid file \"{}\" exists and seems to contain a valid PID ({pid})",
                path.display()
            ),
        )
        .hint("if repmgrd is no longer alive, remove the file and restart repmgrd"));
    }
    Ok(())
}

/// A process that exists and is not a zombie (a killed daemon whose parent
/// has not reaped it yet is gone for our purposes).
fn alive(pid: i32) -> bool {
    if matches!(kill(Pid::from_raw(pid), None), Err(Errno::ESRCH)) {
        return false;
    }
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state letter follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_none_or(|state| state != "Z"),
        Err(_) => true,
    }
}

/// The written pid file; removed on drop if it still holds our pid.
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    pub fn create(path: &Path) -> Result<PidFile> {
        check_not_running(path)?;
        // Written beside and renamed into place: whoever reads the file
        // (a script, `repmgr daemon stop`) never sees it empty.
        let write = || -> std::io::Result<()> {
            let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
            let mut f = fs::File::create(&tmp)?;
            writeln!(f, "{}", std::process::id())?;
            f.sync_all()?;
            fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            Error::new(
                ExitCode::BadPidfile,
                format!("unable to write pid file \"{}\"", path.display()),
            )
            .detail(e.to_string())
        })?;
        Ok(PidFile {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let ours = fs::read_to_string(&self.path)
            .map(|t| t.trim() == std::process::id().to_string())
            .unwrap_or(false);
        if ours {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_and_live_pid_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.pid");
        check_not_running(&p).unwrap();
        // pid 1 always exists: a "running" daemon.
        fs::write(&p, "1\n").unwrap();
        assert_eq!(
            check_not_running(&p).unwrap_err().code,
            ExitCode::BadPidfile
        );
        fs::write(&p, "garbage").unwrap();
        check_not_running(&p).unwrap();
        {
            let _g = PidFile::create(&p).unwrap();
            assert_eq!(
                fs::read_to_string(&p).unwrap().trim(),
                std::process::id().to_string()
            );
        }
        assert!(!p.exists());
    }
}
