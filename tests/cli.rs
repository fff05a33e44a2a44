//! The command grammar through the real binary: no PostgreSQL needed.

use crate::harness::ExitCode;
use crate::harness::{repmgr, repmgr_bin, user_tempdir, write_user_file, Repmgr};

#[test]
fn version_and_version_number() {
    repmgr(&["--version"])
        .assert_success()
        .assert_stdout_contains("repmgr 5.5.0");
    repmgr(&["-V"])
        .assert_success()
        .assert_stdout_contains("repmgr 5.5.0");
    let r = repmgr(&["--version-number"]);
    r.assert_success();
    assert_eq!(r.stdout.trim(), "50500");
}

#[test]
fn help_general_and_per_family_as_repmgr() {
    repmgr(&["--help"])
        .assert_success()
        .assert_stdout_contains("repmgr [OPTIONS] primary")
        .assert_stdout_contains("repmgr home page: <https://repmgr.org/>");
    repmgr(&["-?"])
        .assert_success()
        .assert_stdout_contains("Usage:");
    // an action's help is its family's, as in repmgr
    let clone = repmgr(&["standby", "clone", "--help"]);
    clone.assert_success();
    assert_eq!(clone.stdout, repmgr(&["standby", "--help"]).stdout);
    clone
        .assert_stdout_contains("STANDBY CLONE")
        .assert_stdout_contains("STANDBY SWITCHOVER");
    repmgr(&["cluster", "show", "-?"])
        .assert_success()
        .assert_stdout_contains("--compact");
    // master is primary
    repmgr(&["master", "register", "--help"])
        .assert_success()
        .assert_stdout_contains("PRIMARY REGISTER");
    // the defaults shown are those a connection would use
    repmgr(&["-U", "alice", "-p", "6000", "--help"])
        .assert_stdout_contains("(default: \"6000\")")
        .assert_stdout_contains("connect as (default: \"alice\")");
}

/// repmgr's shape: "The following command line errors were encountered:",
/// one indented line each, and a closing "Try ..." line naming the family.
#[test]
fn usage_errors_as_repmgr_lists_them() {
    for (args, msg, family) in [
        (
            &["frob", "nicate"][..],
            "unknown repmgr action 'frob nicate'",
            None,
        ),
        (&["frob"], "unknown repmgr command 'frob'", None),
        (
            &["help", "standby"],
            "unknown repmgr action 'help standby'",
            None,
        ),
        (
            &["primary", "frobnicate"],
            "unknown repmgr action 'primary frobnicate'",
            Some("primary"),
        ),
        (
            &["primary"],
            "no action provided for command 'primary'",
            Some("primary"),
        ),
        (&[], "no repmgr command provided", None),
        (
            &["cluster", "show", "extra"],
            "too many command-line arguments (first extra is \"extra\")",
            Some("cluster"),
        ),
        (
            &["--node-id=abc", "cluster", "show"],
            "\"--node-id\": invalid value (provided: \"abc\")",
            None,
        ),
        (
            &["--limit=0", "cluster", "event"],
            "\"--limit\": must be 1 or greater (provided: \"0\")",
            None,
        ),
        (
            &["-L", "LOUD", "cluster", "show"],
            "invalid log level \"LOUD\" provided",
            None,
        ),
    ] {
        let r = repmgr(args);
        r.assert_code(ExitCode::BadConfig);
        assert!(r.stdout.is_empty(), "stdout must stay clean: {r}");
        let try_line = match family {
            Some(f) => {
                format!("Try \"repmgr --help\" or \"repmgr {f} --help\" for more information.\n")
            }
            None => "Try \"repmgr --help\" for more information.\n".to_string(),
        };
        assert_eq!(
            r.stderr,
            format!("The following command line errors were encountered:\n  {msg}\n{try_line}"),
            "{r}"
        );
    }
}

/// getopt's complaints go to stderr with argv[0]; repmgr then prints its
/// "Try" line on stdout, once the rest of the command line was checked.
#[test]
fn getopt_errors_as_repmgr_prints_them() {
    let dir = user_tempdir();
    let conf = write_user_file(
        &dir.path().join("repmgr.conf"),
        "node_id=1\nnode_name='n1'\nconninfo='host=127.0.0.1 port=1'\ndata_directory='/d'\n",
    );
    let conf = conf.display().to_string();
    let argv0 = repmgr_bin().display().to_string();
    for (args, complaint) in [
        (
            &["--no-such-option", "cluster", "show"][..],
            "unrecognized option '--no-such-option'",
        ),
        (&["-x", "cluster", "show"], "invalid option -- 'x'"),
        (
            &["cluster", "show", "--csv=yes"],
            "option '--csv' doesn't allow an argument",
        ),
    ] {
        let mut all = vec!["-f", conf.as_str()];
        all.extend_from_slice(args);
        let r = repmgr(&all);
        r.assert_code(ExitCode::BadConfig);
        assert_eq!(r.stderr, format!("{argv0}: {complaint}\n"), "{r}");
        assert_eq!(
            r.stdout, "Try \"repmgr --help\" or \"repmgr cluster --help\" for more information.\n",
            "{r}"
        );
    }
}

#[test]
fn options_anywhere_with_getopt_forms() {
    // A missing config file is reported after the grammar accepted everything.
    let r = repmgr(&[
        "-Lerror",
        "cluster",
        "--config-file=/nonexistent/r.conf",
        "show",
        "--compact",
        "-vt",
    ]);
    r.assert_code(ExitCode::BadConfig)
        .assert_stderr_contains("/nonexistent/r.conf");
}

#[test]
fn terse_hides_hints_not_command_line_errors() {
    let r = repmgr(&["-t", "frob", "nicate"]);
    r.assert_code(ExitCode::BadConfig)
        .assert_stderr_contains("unknown repmgr action 'frob nicate'");
    let r = repmgr(&["-t", "-f", "/nonexistent/r.conf", "cluster", "show"]);
    r.assert_code(ExitCode::BadConfig);
    assert!(!r.stderr.contains("DETAIL"), "{r}");
}

/// Options an action ignores are listed under one warning, as repmgr;
/// options it needs, or that conflict, are command-line errors.
#[test]
fn action_parameters_checked_as_repmgr() {
    let dir = user_tempdir();
    let conf = write_user_file(
        &dir.path().join("repmgr.conf"),
        "node_id=1\nnode_name='n1'\nconninfo='host=127.0.0.1 port=1 connect_timeout=2'\ndata_directory='/d'\n",
    );
    let conf = conf.display().to_string();
    let r = repmgr(&["-f", &conf, "node", "rejoin"]);
    r.assert_code(ExitCode::BadConfig);
    assert_eq!(
        r.stderr,
        "The following command line errors were encountered:\n  \
         database connection parameters for an available node must be provided when executing NODE REJOIN\n\
         Try \"repmgr --help\" or \"repmgr node --help\" for more information.\n",
        "{r}"
    );
    repmgr(&["-f", &conf, "node", "check", "--role", "--nagios", "--csv"])
        .assert_code(ExitCode::BadConfig)
        .assert_stderr_contains("only one of --csv, --nagios and --optformat can be used");
    repmgr(&["-f", &conf, "daemon", "start", "--wait", "--no-wait"])
        .assert_code(ExitCode::BadConfig)
        .assert_stderr_contains("both --wait and --no-wait options provided");
    // ignored: warned about, then the action runs (here: cannot connect)
    let r = repmgr(&["-f", &conf, "node", "status", "--compact", "--limit=3"]);
    r.assert_code(ExitCode::DbConn).assert_stderr_contains(
        "WARNING: following problems with command line parameters detected:\n  \
         --limit not required when executing NODE STATUS\n  \
         --compact is not effective when executing NODE STATUS\n",
    );
    let r = repmgr(&["-t", "-f", &conf, "node", "status", "--compact"]);
    assert!(!r.stderr.contains("--compact"), "{r}");
}

#[test]
fn refuses_to_run_as_root() {
    if !nix::unistd::Uid::effective().is_root() {
        return; // only testable as root (as CI runs)
    }
    let out = std::process::Command::new(repmgr_bin())
        .args(["cluster", "show"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(ExitCode::BadConfig.code()));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be run as root"));
    let repmgrd = std::process::Command::new(crate::harness::repmgrd_bin())
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        repmgrd.status.code(),
        Some(1),
        "repmgrd refuses root outright"
    );
}

#[test]
fn root_may_ask_for_version_and_help() {
    if !nix::unistd::Uid::effective().is_root() {
        return; // only testable as root (as CI runs)
    }
    let run = |args: &[&str]| {
        let out = std::process::Command::new(repmgr_bin())
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.code(), stdout)
    };
    assert_eq!(run(&["--version"]), (Some(0), "repmgr 5.5.0\n".into()));
    assert_eq!(run(&["-V"]), (Some(0), "repmgr 5.5.0\n".into()));
    assert_eq!(run(&["--version-number"]), (Some(0), "50500\n".into()));
    let (code, help) = run(&["--help"]);
    assert_eq!(code, Some(0));
    assert!(
        help.contains("*** repmgr must be executed by a non-superuser ***"),
        "{help}"
    );
    assert_eq!(
        run(&["help", "standby"]).0,
        Some(1),
        "the help word is no option"
    );
}

#[test]
fn repmgrd_personality_by_argv0() {
    let r = Repmgr::new(&["--version"]).daemon().run();
    r.assert_success().assert_stdout_contains("repmgrd 5.5.0");
    Repmgr::new(&["--help"])
        .daemon()
        .run()
        .assert_success()
        .assert_stdout_contains("--daemonize");
    Repmgr::new(&["--bogus"])
        .daemon()
        .run()
        .assert_code(ExitCode::BadConfig)
        .assert_stderr_contains("--bogus");
    Repmgr::new(&["extra"])
        .daemon()
        .run()
        .assert_code(ExitCode::BadConfig);
    Repmgr::new(&["--daemonize=sometimes", "-f", "/x"])
        .daemon()
        .run()
        .assert_code(ExitCode::BadConfig);
}

#[test]
fn config_search_order_uses_cwd_repmgr_conf() {
    let dir = user_tempdir();
    // A ./repmgr.conf with an error proves it was found and read.
    write_user_file(&dir.path().join("repmgr.conf"), "node_id=abc\n");
    let r = Repmgr::new(&["cluster", "show"]).cwd(dir.path()).run();
    r.assert_code(ExitCode::BadConfig)
        .assert_stderr_contains("node_id");
}

#[test]
fn dump_config_prints_every_parameter_as_repmgr() {
    let dir = user_tempdir();
    let conf = write_user_file(
        &dir.path().join("repmgr.conf"),
        "node_id=3\nnode_name='n3'\nconninfo='host=x'\ndata_directory='/d'\nuse_replication_slots=yes\n",
    );
    let conf = conf.display().to_string();
    let r = repmgr(&["-f", &conf, "--dump-config"]);
    r.assert_success();
    let lines: Vec<&str> = r.stdout.lines().collect();
    // repmgr 5.5's order and formatting
    assert_eq!(
        lines[..3],
        ["node_id|3", "node_name|n3", "conninfo|host=x"],
        "{r}"
    );
    assert!(lines.contains(&"use_replication_slots|true"), "{r}");
    assert!(lines.contains(&"failover|manual"), "{r}");
    assert!(lines.contains(&"repmgrd_standby_startup_timeout|60"), "{r}");
    assert!(lines.iter().all(|l| l.contains('|')), "{r}");
    repmgr(&["-f", &conf, "--dump-config", "cluster", "show"])
        .assert_code(ExitCode::BadConfig)
        .assert_stderr_contains("cannot be used in combination with a repmgr command");
}

/// `log_facility` sends the log lines to syslog (repmgrd's, and a command's
/// with --log-to-file), at repmgr's facility and severity, under the
/// program's name and pid. Read from a /dev/log of the test's own, so only
/// where the machine has none (no syslog daemon) and as root.
#[test]
fn log_facility_sends_lines_to_syslog() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::UnixDatagram;
    let dev_log = std::path::Path::new("/dev/log");
    if dev_log.exists() || !nix::unistd::Uid::effective().is_root() {
        return; // a real syslog owns it, or we may not create it
    }
    struct Remove(&'static std::path::Path);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(self.0);
        }
    }
    let sock = UnixDatagram::bind(dev_log).unwrap();
    let _remove = Remove(std::path::Path::new("/dev/log"));
    std::fs::set_permissions(dev_log, std::fs::Permissions::from_mode(0o666)).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();

    let dir = user_tempdir();
    let conf = write_user_file(
        &dir.path().join("repmgr.conf"),
        "node_id=1\nnode_name='n1'\nconninfo='host=127.0.0.1 port=1 connect_timeout=2'\ndata_directory='/d'\nlog_facility='LOCAL3'\n",
    );
    let conf = conf.display().to_string();
    let r = repmgr(&["-f", &conf, "--log-to-file", "cluster", "show"]);
    r.assert_code(ExitCode::DbConn);
    assert!(
        !r.stderr.contains("ERROR"),
        "the ERROR line went to syslog: {r}"
    );
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("a syslog datagram");
    let line = String::from_utf8_lossy(&buf[..n]).into_owned();
    // LOCAL3 (19) * 8 + LOG_ERR (3)
    assert!(line.starts_with("<155>"), "{line}");
    assert!(line.contains(" repmgr["), "{line}");

    // without --log-to-file a command logs to stderr, as repmgr's does
    let r = repmgr(&["-f", &conf, "-L", "ERROR", "cluster", "show"]);
    r.assert_code(ExitCode::DbConn)
        .assert_stderr_contains("ERROR");
}
