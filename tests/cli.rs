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
fn help_general_and_per_action() {
    repmgr(&["--help"])
        .assert_success()
        .assert_stdout_contains("repmgr [OPTIONS] primary");
    repmgr(&["-?"])
        .assert_success()
        .assert_stdout_contains("Usage:");
    repmgr(&["standby", "clone", "--help"])
        .assert_success()
        .assert_stdout_contains("repmgr standby clone:");
    repmgr(&["cluster", "show", "-?"])
        .assert_success()
        .assert_stdout_contains("--compact");
    repmgr(&["help", "standby"])
        .assert_success()
        .assert_stdout_contains("standby switchover");
    // master is primary
    repmgr(&["master", "register", "--help"])
        .assert_success()
        .assert_stdout_contains("repmgr primary register");
}

#[test]
fn usage_errors_are_one_line_with_a_hint_and_exit_1() {
    for args in [
        &["frob", "nicate"][..],
        &["primary", "frobnicate"],
        &["primary"],
        &[],
        &["cluster", "show", "extra"],
        &["--no-such-option", "cluster", "show"],
        &["-x", "cluster", "show"],
        &["cluster", "show", "--csv=yes"],
    ] {
        let r = repmgr(args);
        r.assert_code(ExitCode::BadConfig);
        assert!(r.stdout.is_empty(), "stdout must stay clean: {r}");
        let errors: Vec<&str> = r
            .stderr
            .lines()
            .filter(|l| l.starts_with("ERROR:"))
            .collect();
        assert_eq!(errors.len(), 1, "{r}");
        assert!(r.stderr.contains("HINT:"), "{r}");
        assert!(!r.stderr.contains("panicked"), "{r}");
    }
    repmgr(&["frob", "nicate"]).assert_stderr_contains("unknown command \"frob nicate\"");
    repmgr(&["cluster", "show", "extra"]).assert_stderr_contains("first extra is \"extra\"");
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
fn terse_hides_hints() {
    let r = repmgr(&["-t", "frob", "nicate"]);
    r.assert_code(ExitCode::BadConfig);
    assert!(!r.stderr.contains("HINT"), "{r}");
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
