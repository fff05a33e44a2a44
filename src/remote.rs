//! Commands on other nodes over ssh, as repmgr runs them:
//! `ssh -o BatchMode=yes <ssh_options> [-l user] host '<command>'`, the
//! remote repmgr at the local binary's path (or `repmgr_bindir`) with the
//! remote node's own repmgr.conf (`nodes.config_file`).
//!
//! A switchover runs several commands per node, some of them while no node
//! accepts writes; one multiplexed connection per host (ssh ControlMaster)
//! makes each of them cost milliseconds instead of a new handshake.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::Config;
use crate::conninfo::ConnInfo;
use crate::db::nodes::NodeRecord;
use crate::error::{Error, ExitCode, Result};
use crate::process::{self, shell_quote, Output};

/// How long opening an ssh connection may take.
const MASTER_TIMEOUT: Duration = Duration::from_secs(15);

pub struct Ssh {
    options: Vec<String>,
    user: Option<String>,
    /// Directory of the control sockets, when multiplexing.
    control_dir: Option<PathBuf>,
    /// Per host: whether its shared connection is open. Each host has its
    /// own lock, so connections to different hosts open in parallel.
    masters: Mutex<HashMap<String, Arc<Mutex<bool>>>>,
}

impl Ssh {
    /// From `ssh_options` and `-R/--remote-user`.
    pub fn new(cfg: &Config, remote_user: Option<&str>) -> Ssh {
        Ssh {
            options: cfg
                .ssh_options
                .split_whitespace()
                .map(str::to_string)
                .collect(),
            user: remote_user.filter(|u| !u.is_empty()).map(str::to_string),
            control_dir: None,
            masters: Mutex::new(HashMap::new()),
        }
    }

    /// Reuses one connection per host for every command (ControlMaster).
    pub fn multiplexed(mut self) -> Ssh {
        // A private directory (mkdtemp, 0700) for the control sockets: a
        // predictable name in /tmp could be taken over by another user.
        match process::private_dir(&std::env::temp_dir(), "repmgr-ssh") {
            Ok(dir) => self.control_dir = Some(dir),
            Err(e) => crate::log_debug!("no shared ssh connections: {e}"),
        }
        self
    }

    fn base(&self, host: &str) -> Command {
        let mut c = Command::new("ssh");
        c.args(["-o", "BatchMode=yes"]);
        c.args(&self.options);
        if let Some(dir) = &self.control_dir {
            c.arg("-o").arg(format!("ControlPath={}/%C", dir.display()));
        }
        if let Some(u) = &self.user {
            c.args(["-l", u]);
        }
        // `--`: a host name beginning with "-" is never read as an option
        c.arg("--").arg(host);
        c
    }

    /// Opens the shared connection to `host` (once).
    fn ensure_master(&self, host: &str) -> Result<()> {
        let Some(_) = &self.control_dir else {
            return Ok(());
        };
        let slot = {
            let mut masters = self.masters.lock().unwrap_or_else(|e| e.into_inner());
            masters.entry(host.to_string()).or_default().clone()
        };
        let mut open = slot.lock().unwrap_or_else(|e| e.into_inner());
        if *open {
            return Ok(());
        }
        let mut c = Command::new("ssh");
        c.args(["-o", "BatchMode=yes"]).args(&self.options);
        if let Some(dir) = &self.control_dir {
            c.arg("-o").arg(format!("ControlPath={}/%C", dir.display()));
        }
        c.args([
            "-o",
            "ControlMaster=yes",
            "-o",
            "ControlPersist=120",
            "-f",
            "-N",
        ]);
        if let Some(u) = &self.user {
            c.args(["-l", u]);
        }
        c.arg("--").arg(host);
        let status = process::run_quiet(c, MASTER_TIMEOUT, "ssh")?;
        if !status.success() {
            return Err(ssh_error(host, &process::describe_status(&status), ""));
        }
        *open = true;
        Ok(())
    }

    /// Runs `command` on `host` within `limit`; the output is returned
    /// whatever the exit status (the caller judges it).
    pub fn run(&self, host: &str, command: &str, limit: Duration) -> Result<Output> {
        self.ensure_master(host)?;
        let mut c = self.base(host);
        c.arg(command);
        let out = process::run(c, limit, &format!("remote command on \"{host}\""))
            .map_err(|e| e.with_code(ExitCode::BadSsh))?;
        // ssh itself failing (not the remote command) exits 255.
        if out.code() == 255 {
            return Err(ssh_error(host, "exit code 255", &out.stderr));
        }
        Ok(out)
    }

    /// Whether `host` can be reached at all (`ssh host /bin/true`).
    pub fn check(&self, host: &str) -> Result<()> {
        let out = self.run(host, "/bin/true", MASTER_TIMEOUT)?;
        if out.success() {
            Ok(())
        } else {
            Err(ssh_error(
                host,
                &process::describe_status(&out.status),
                &out.stderr,
            ))
        }
    }
}

impl Drop for Ssh {
    fn drop(&mut self) {
        let Some(dir) = self.control_dir.take() else {
            return;
        };
        let masters: Vec<String> = self
            .masters
            .lock()
            .map(|m| {
                m.iter()
                    .filter(|(_, open)| open.lock().map(|o| *o).unwrap_or(false))
                    .map(|(h, _)| h.clone())
                    .collect()
            })
            .unwrap_or_default();
        for host in masters {
            let mut c = Command::new("ssh");
            c.args(&self.options);
            c.arg("-o").arg(format!("ControlPath={}/%C", dir.display()));
            c.args(["-O", "exit", "--"]).arg(&host);
            let _ = process::run_quiet(c, Duration::from_secs(5), "ssh -O exit");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

fn ssh_error(host: &str, status: &str, stderr: &str) -> Error {
    let mut e = Error::new(
        ExitCode::BadSsh,
        format!("unable to execute a command on \"{host}\" over ssh ({status})"),
    );
    if !stderr.trim().is_empty() {
        e = e.detail(stderr.trim().to_string());
    }
    e.hint("check passwordless ssh from this node to that host for this user, and \"ssh_options\" in repmgr.conf")
}

/// The host ssh reaches a node at: its conninfo's host (a socket directory
/// means this machine).
pub fn node_host(rec: &NodeRecord) -> Result<String> {
    let ci = ConnInfo::parse(&rec.conninfo).map_err(|e| {
        Error::config(format!("invalid conninfo for node \"{}\"", rec.node_name)).detail(e)
    })?;
    let host = ci
        .get("host")
        .filter(|h| !h.is_empty())
        .or(ci.get("hostaddr"))
        .unwrap_or("localhost");
    let first = host.split(',').next().unwrap_or("localhost");
    Ok(if first.starts_with('/') {
        "localhost".to_string()
    } else {
        first.to_string()
    })
}

/// `'<bindir>/repmgr' -f '<config_file>'` for a remote node: the local
/// binary's directory (or `repmgr_bindir`), the node's own config file.
pub fn remote_repmgr(cfg: &Config, rec: &NodeRecord) -> String {
    let bin = if !cfg.repmgr_bindir.is_empty() {
        PathBuf::from(&cfg.repmgr_bindir).join("repmgr")
    } else {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("repmgr")))
            .unwrap_or_else(|| PathBuf::from("repmgr"))
    };
    let mut s = shell_quote(&bin.to_string_lossy());
    if !rec.config_file.is_empty() {
        s.push_str(" -f ");
        s.push_str(&shell_quote(&rec.config_file));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::nodes::NodeType;

    fn rec(conninfo: &str) -> NodeRecord {
        NodeRecord {
            node_id: 1,
            upstream_node_id: None,
            active: true,
            node_name: "n".into(),
            node_type: NodeType::Primary,
            location: "default".into(),
            priority: 100,
            conninfo: conninfo.into(),
            repluser: "r".into(),
            slot_name: None,
            config_file: "/etc/repmgr conf".into(),
        }
    }

    #[test]
    fn a_host_is_never_read_as_an_ssh_option() {
        let cfg = Config::default();
        let ssh = Ssh::new(&cfg, None);
        let c = ssh.base("-oProxyCommand=evil");
        let args: Vec<String> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let at = args
            .iter()
            .position(|a| a == "-oProxyCommand=evil")
            .unwrap();
        assert_eq!(args[at - 1], "--", "{args:?}");
        let m = Ssh::new(&cfg, None).multiplexed();
        let dir = m.control_dir.clone().unwrap();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("repmgr-ssh.") && name.len() > "repmgr-ssh.".len(),
            "{name}"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{mode:o}");
    }

    #[test]
    fn hosts_of_nodes() {
        assert_eq!(node_host(&rec("host=db1 port=5432")).unwrap(), "db1");
        assert_eq!(
            node_host(&rec("host=/var/run/postgresql")).unwrap(),
            "localhost"
        );
        assert_eq!(node_host(&rec("hostaddr=10.0.0.1")).unwrap(), "10.0.0.1");
        assert_eq!(node_host(&rec("host=a,b")).unwrap(), "a");
    }

    #[test]
    fn remote_command_line() {
        let cfg = Config {
            repmgr_bindir: "/usr/lib/postgresql/15/bin".into(),
            ..Config::default()
        };
        assert_eq!(
            remote_repmgr(&cfg, &rec("host=x")),
            "/usr/lib/postgresql/15/bin/repmgr -f '/etc/repmgr conf'"
        );
    }
}
