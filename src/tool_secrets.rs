//! A conninfo's `sslpassword` handed to a PostgreSQL tool (pg_basebackup,
//! pg_rewind) without its command line, which every user of the machine
//! can read (`ps`). libpq reads it from no environment variable, only from
//! a conninfo or a service file, so it goes in a service file
//! (pg_service.conf) of its own: a private directory (0700) under the
//! temp directory, the file 0600, named to the tool by `PGSERVICEFILE`
//! and `PGSERVICE`, and removed once the tool has run. (The password
//! itself goes in the tool's environment, `PGPASSWORD`, which only the
//! same user can read.)

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::Command;

use crate::conninfo::ConnInfo;
use crate::error::{Error, Result};

/// The service the file defines.
const SERVICE: &str = "repmgr_tool";

/// The service file of one tool run: removed on drop (keep it until the
/// tool has exited).
#[derive(Debug)]
pub struct ServiceFile {
    dir: PathBuf,
}

impl Drop for ServiceFile {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Takes `sslpassword` out of `ci` and, when there was one, hands it to
/// `cmd` through a service file of its own. Refused when the conninfo or
/// the environment already names a service (a tool reads one service
/// only; the user's would lose ours or ours the user's): the passphrase
/// then belongs in that service's entry.
pub fn hand_sslpassword(
    ci: &mut ConnInfo,
    cmd: &mut Command,
    tool: &str,
) -> Result<Option<ServiceFile>> {
    let Some(secret) = ci.remove("sslpassword") else {
        return Ok(None);
    };
    if ci.get("service").is_some() || std::env::var_os("PGSERVICE").is_some() {
        return Err(Error::config(format!(
            "sslpassword cannot be handed to {tool} beside a service"
        ))
        .detail("the conninfo (or PGSERVICE) names a service, and a tool reads one service only")
        .hint("put sslpassword in that service's entry in pg_service.conf"));
    }
    if secret.contains(['\n', '\r']) || secret.trim() != secret {
        return Err(Error::config(format!(
            "sslpassword cannot be handed to {tool}: it has a line break or leading or trailing spaces, which a service file cannot hold"
        )));
    }
    let failed = |what: &str, e: std::io::Error| {
        Error::config(format!(
            "unable to {what} the service file that hands sslpassword to {tool}"
        ))
        .detail(e.to_string())
    };
    let dir = crate::process::private_dir(&std::env::temp_dir(), "repmgr-service")
        .map_err(|e| failed("create a private directory for", e))?;
    let file = ServiceFile { dir };
    let path = file.dir.join("pg_service.conf");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| failed("create", e))?;
    f.write_all(format!("[{SERVICE}]\nsslpassword={secret}\n").as_bytes())
        .map_err(|e| failed("write", e))?;
    cmd.env("PGSERVICEFILE", &path).env("PGSERVICE", SERVICE);
    Ok(Some(file))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn env(cmd: &Command, key: &str) -> Option<String> {
        cmd.get_envs()
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.map(|v| v.to_string_lossy().into_owned()))
    }

    #[test]
    fn sslpassword_goes_in_a_private_service_file_removed_on_drop() {
        let mut ci = ConnInfo::parse("host=h sslmode=require sslpassword=k3y").unwrap();
        let mut cmd = Command::new("true");
        let file = hand_sslpassword(&mut ci, &mut cmd, "pg_rewind")
            .unwrap()
            .unwrap();
        assert_eq!(ci.get("sslpassword"), None);
        assert!(!ci.to_string().contains("k3y"));
        let path = PathBuf::from(env(&cmd, "PGSERVICEFILE").unwrap());
        assert_eq!(env(&cmd, "PGSERVICE").as_deref(), Some(SERVICE));
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "[repmgr_tool]\nsslpassword=k3y\n"
        );
        let mode = |p: &std::path::Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        drop(file);
        assert!(!path.parent().unwrap().exists());
    }

    #[test]
    fn no_sslpassword_no_file_and_a_service_is_not_overridden() {
        let mut ci = ConnInfo::parse("host=h").unwrap();
        let mut cmd = Command::new("true");
        assert!(hand_sslpassword(&mut ci, &mut cmd, "t").unwrap().is_none());
        assert_eq!(env(&cmd, "PGSERVICEFILE"), None);
        let mut ci = ConnInfo::parse("service=prod sslpassword=k").unwrap();
        assert!(hand_sslpassword(&mut ci, &mut cmd, "t").is_err());
        assert_eq!(env(&cmd, "PGSERVICEFILE"), None);
    }
}
