//! A real sshd on loopback, run as the unprivileged user with keys made for
//! this test run, so switchover and other remote commands go through ssh as
//! they do in production. It can only log in as the user it runs as, which
//! is the user the repmgr binary runs as too.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::pg::free_port;
use super::{poll_until, run_as_user, run_checked, user_tempdir, write_user_file, Daemon};

pub struct Sshd {
    pub port: u16,
    /// Private key the client uses.
    pub key: PathBuf,
    _daemon: Daemon,
    _dir: tempfile::TempDir,
}

fn keygen(path: &std::path::Path) {
    let mut c = Command::new("ssh-keygen");
    c.args(["-q", "-t", "ed25519", "-N", ""])
        .arg("-f")
        .arg(path);
    run_as_user(&mut c);
    run_checked(&mut c, "ssh-keygen");
}

impl Sshd {
    pub fn start() -> Sshd {
        let dir = user_tempdir();
        let d = dir.path();
        keygen(&d.join("host_key"));
        keygen(&d.join("user_key"));
        let pubkey = std::fs::read_to_string(d.join("user_key.pub")).expect("reading user_key.pub");
        write_user_file(&d.join("authorized_keys"), &pubkey);
        let port = free_port();
        let config = format!(
            "ListenAddress 127.0.0.1\nPort {port}\nHostKey {dir}/host_key\nAuthorizedKeysFile {dir}/authorized_keys\n\
             PidFile {dir}/sshd.pid\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nLogLevel ERROR\nMaxStartups 100\nMaxSessions 100\n",
            dir = d.display()
        );
        let conf = write_user_file(&d.join("sshd_config"), &config);
        let mut cmd = Command::new("/usr/sbin/sshd");
        cmd.arg("-D").arg("-e").arg("-f").arg(&conf);
        run_as_user(&mut cmd);
        let daemon = Daemon::spawn("sshd", cmd);
        poll_until(Duration::from_secs(10), "sshd listening", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Sshd {
            port,
            key: d.join("user_key"),
            _daemon: daemon,
            _dir: dir,
        }
    }

    /// `ssh_options` for repmgr.conf.
    pub fn ssh_options(&self) -> String {
        format!(
            "-q -o ConnectTimeout=10 -p {} -i {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
            self.port,
            self.key.display()
        )
    }
}
