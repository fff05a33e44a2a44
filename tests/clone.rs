//! `standby clone` against real PostgreSQL: pg_basebackup and rsync, with
//! and without a repmgr.conf, refusals, --dry-run, -F re-seeding,
//! tablespaces and replication slots.

use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::fixture::{write_conf, Node};
use crate::harness::ExitCode;
use crate::harness::{chown_to_user, poll_until, user_tempdir, PgNode, Repmgr, RunResult};

const WAIT: Duration = Duration::from_secs(30);

/// A registered primary, node1 (ID 1).
fn registered_primary() -> Node {
    let p = Node::primary("node1", 1);
    p.repmgr(&["primary", "register"]).assert_success();
    p
}

/// An empty node (no data directory yet) with a repmgr.conf naming it.
fn clone_target(name: &str, id: i32, extra: &str) -> Node {
    let pg = PgNode::empty(name);
    let conf = write_conf(&pg, id, name, &pg.conninfo(), extra);
    Node { pg, conf }
}

/// `repmgr -f <standby conf> -h 127.0.0.1 -p <primary port> -U postgres -d postgres standby clone ARGS`.
fn clone_from(primary: &PgNode, standby: &Node, args: &[&str]) -> RunResult {
    let port = primary.port.to_string();
    let mut all = vec![
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-U",
        "postgres",
        "-d",
        "postgres",
        "standby",
        "clone",
    ];
    all.extend_from_slice(args);
    standby.repmgr(&all)
}

/// Starts a fresh clone on its own port and waits until it streams.
fn start_clone(pg: &PgNode) {
    pg.apply_harness_conf();
    pg.start();
    pg.wait_streaming(WAIT);
}

fn auto_conf(pg: &PgNode) -> String {
    fs::read_to_string(pg.datadir.join("postgresql.auto.conf")).unwrap_or_default()
}

fn streaming_names(primary: &PgNode) -> String {
    primary
        .try_query_one_string(
            "SELECT string_agg(application_name, ',' ORDER BY application_name) FROM pg_stat_replication WHERE state = 'streaming'",
        )
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Rows written on the primary show up on the standby.
fn replicates(primary: &PgNode, standby: &PgNode, table: &str) {
    primary.execute(&format!(
        "CREATE TABLE IF NOT EXISTS {table} (i int); INSERT INTO {table} SELECT generate_series(1, 100)"
    ));
    let want = primary.query_one_string(&format!("SELECT count(*) FROM {table}"));
    standby.wait_until(WAIT, "rows from the primary", |s| {
        s.try_query_one_string(&format!("SELECT count(*) FROM {table}"))
            .ok()
            .flatten()
            .as_deref()
            == Some(want.as_str())
    });
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn basebackup_clone_streams_and_registers() {
    let p = registered_primary();
    let s = clone_target("node2", 2, "");
    let r = clone_from(&p.pg, &s, &["-c"]);
    r.assert_success()
        .assert_stderr_contains("standby clone (using pg_basebackup) complete")
        .assert_stderr_contains("you can now start your PostgreSQL server")
        .assert_stderr_contains(&format!("-D '{}' start", s.pg.datadir.display()))
        .assert_stderr_contains("repmgr standby register");
    assert!(r.stdout.is_empty(), "logs belong on stderr: {r}");
    let auto = auto_conf(&s.pg);
    assert!(auto.contains("primary_conninfo = '"), "{auto}");
    assert!(auto.contains("application_name=node2"), "{auto}");
    assert!(auto.contains(&format!("port={}", p.pg.port)), "{auto}");
    assert!(s.pg.datadir.join("standby.signal").exists());
    start_clone(&s.pg);
    poll_until(WAIT, "node2 streaming on the primary", || {
        streaming_names(&p.pg) == "node2"
    });
    replicates(&p.pg, &s.pg, "t_bb");
    s.repmgr(&["standby", "register"]).assert_success();
    assert_eq!(
        p.query("SELECT details FROM repmgr.events WHERE event = 'standby_clone'"),
        format!(
            "cloned from host \"127.0.0.1\", port {}; backup method: pg_basebackup; --force: N",
            p.pg.port
        )
    );
}

#[test]
fn rsync_clone_streams() {
    let p = registered_primary();
    let s = clone_target("node2", 2, "");
    let r = clone_from(&p.pg, &s, &["--rsync-only", "--fast-checkpoint"]);
    r.assert_success()
        .assert_stderr_contains("standby clone (using rsync) complete");
    let d = &s.pg.datadir;
    assert!(d.join("backup_label").is_file());
    assert!(d.join("standby.signal").is_file());
    assert!(!d.join("postmaster.pid").exists());
    assert_eq!(entries(&d.join("pg_wal")), vec!["archive_status"]);
    assert!(auto_conf(&s.pg).contains("application_name=node2"));
    start_clone(&s.pg);
    replicates(&p.pg, &s.pg, "t_rs");
    s.repmgr(&["standby", "register"]).assert_success();
    // The backup was ended on the primary.
    assert_eq!(
        p.query("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND query ILIKE '%backup_start%' AND pid <> pg_backend_pid()"),
        "0"
    );
}

#[test]
fn seed_style_clone_without_config_file() {
    let p = PgNode::primary("node1");
    let s = PgNode::empty("node2");
    let cwd = user_tempdir();
    assert!(!cwd.path().join("repmgr.conf").exists());
    let port = p.port.to_string();
    let dir = s.datadir.display().to_string();
    Repmgr::new(&[
        "-D",
        &dir,
        "standby",
        "clone",
        "127.0.0.1",
        "-p",
        &port,
        "-U",
        "postgres",
    ])
    .cwd(cwd.path())
    .run()
    .assert_success()
    .assert_stderr_contains("standby clone (using pg_basebackup) complete");
    let host = nix::unistd::gethostname().unwrap();
    let short = host
        .to_string_lossy()
        .split('.')
        .next()
        .unwrap()
        .to_string();
    let auto = auto_conf(&s);
    assert!(
        auto.contains(&format!("application_name={short}")),
        "{auto}"
    );
    start_clone(&s);
    replicates(&p, &s, "t_seed");
}

#[test]
fn refusals_leave_everything_as_it_was() {
    let p = registered_primary();
    let s = clone_target("node2", 2, "");
    // A non-empty directory that is not a data directory.
    fs::create_dir(&s.pg.datadir).unwrap();
    let keep = s.pg.datadir.join("keep.txt");
    fs::write(&keep, "precious").unwrap();
    chown_to_user(&s.pg.datadir);
    chown_to_user(&keep);
    clone_from(&p.pg, &s, &[])
        .assert_code(ExitCode::BadConfig)
        .assert_stderr_contains("exists and is not empty")
        .assert_stderr_contains("HINT:");
    clone_from(&p.pg, &s, &["-F"])
        .assert_code(ExitCode::BadConfig)
        .assert_stderr_contains("is not a PostgreSQL data directory");
    assert_eq!(fs::read_to_string(&keep).unwrap(), "precious");

    // The primary's own, running data directory: refused even with -F.
    let before = entries(&p.pg.datadir);
    let dir = p.pg.datadir.display().to_string();
    for method in [&[][..], &["--rsync-only"][..]] {
        let mut args = vec!["-D", dir.as_str(), "-F"];
        args.extend_from_slice(method);
        clone_from(&p.pg, &s, &args)
            .assert_code(ExitCode::BadConfig)
            .assert_stderr_contains("belongs to a running PostgreSQL server")
            .assert_stderr_contains("not even with -F/--force");
    }
    assert_eq!(entries(&p.pg.datadir), before);
    assert!(p.pg.is_running());
    assert_eq!(p.query("SELECT 1"), "1");

    // An unreachable source: exit 6, nothing created.
    let s3 = clone_target("node3", 3, "");
    s3.repmgr(&[
        "-h",
        "127.0.0.1",
        "-p",
        "1",
        "-U",
        "postgres",
        "standby",
        "clone",
    ])
    .assert_code(ExitCode::DbConn)
    .assert_stderr_contains("unable to connect to the source node");
    assert!(!s3.pg.datadir.exists());

    // An upstream with too few WAL senders and no WAL retention.
    let bad = PgNode::builder("bad")
        .conf("max_wal_senders = 1")
        .conf("wal_keep_size = 0")
        .start();
    let r = clone_from(&bad, &s3, &[]);
    r.assert_code(ExitCode::BadConfig)
        .assert_stderr_contains("not enough free WAL senders")
        .assert_stderr_contains("max_wal_senders")
        .assert_stderr_contains("does not retain WAL")
        .assert_stderr_contains("wal_keep_size");
    assert!(!s3.pg.datadir.exists());
}

#[test]
fn dry_run_changes_nothing() {
    let p = registered_primary();
    let s = clone_target("node2", 2, "use_replication_slots=true");
    for extra in [&[][..], &["--rsync-only"][..]] {
        let mut args = vec!["--dry-run"];
        args.extend_from_slice(extra);
        clone_from(&p.pg, &s, &args)
            .assert_success()
            .assert_stderr_contains("would create data directory")
            .assert_stderr_contains("would create replication slot \"repmgr_slot_2\"")
            .assert_stderr_contains("nothing was changed");
    }
    assert!(!s.pg.datadir.exists());
    assert_eq!(p.query("SELECT count(*) FROM pg_replication_slots"), "0");
    assert_eq!(
        p.query("SELECT count(*) FROM repmgr.events WHERE event = 'standby_clone'"),
        "0"
    );
}

#[test]
fn a_clone_that_would_use_barman_is_refused() {
    let p = registered_primary();
    let s = clone_target("node2", 2, "barman_host='backup1'\nbarman_server='main'");
    // repmgr 5 would clone from Barman: refused, not silently pg_basebackup
    clone_from(&p.pg, &s, &["--dry-run"])
        .assert_code(ExitCode::BadConfig)
        .assert_stderr_contains("parameter \"barman_host\" has no effect")
        .assert_stderr_contains("ERROR: cloning from Barman is not supported")
        .assert_stderr_contains("HINT: add --without-barman");
    clone_from(&p.pg, &s, &["--dry-run", "--without-barman"]).assert_success();
    let s3 = clone_target("node3", 3, "pg_backupapi_host='api1'");
    clone_from(&p.pg, &s3, &["--dry-run"])
        .assert_code(ExitCode::BadConfig)
        .assert_stderr_contains("cloning through pg-backup-api is not supported");
    assert!(!s.pg.datadir.exists() && !s3.pg.datadir.exists());
}

#[test]
fn superuser_option_reads_what_the_clone_user_may_not() {
    let p = registered_primary();
    p.pg.execute("CREATE ROLE cloner LOGIN REPLICATION");
    let s = clone_target("node2", 2, "");
    // An rsync clone needs the source's data_directory: a plain user may
    // not read it, -S/--superuser may (as repmgr)
    let plain = ["--rsync-only", "--dry-run", "-U", "cloner"];
    clone_from(&p.pg, &s, &plain)
        .assert_code(ExitCode::BadConfig)
        .assert_stderr_contains("unable to read the upstream's data_directory")
        .assert_stderr_contains("-S/--superuser");
    let mut with_su = plain.to_vec();
    with_su.extend_from_slice(&["-S", "postgres"]);
    clone_from(&p.pg, &s, &with_su)
        .assert_success()
        .assert_stderr_contains("as superuser \"postgres\"");
    let mut not_su = plain.to_vec();
    not_su.extend_from_slice(&["-S", "cloner"]);
    clone_from(&p.pg, &s, &not_su)
        .assert_code(ExitCode::BadConfig)
        .assert_stderr_contains("is not a superuser connection");
    assert!(!s.pg.datadir.exists());
}

#[test]
fn force_rsync_brings_a_stale_standby_back() {
    let p = registered_primary();
    let s = clone_target("node2", 2, "");
    clone_from(&p.pg, &s, &["-c"]).assert_success();
    start_clone(&s.pg);
    replicates(&p.pg, &s.pg, "t_before");
    s.pg.stop();
    // The primary moves on while the standby is down.
    p.pg.execute("CREATE TABLE t_after AS SELECT generate_series(1, 500) AS i");
    p.pg.execute("SELECT pg_switch_wal()");
    p.pg.execute("CHECKPOINT");
    clone_from(&p.pg, &s, &["--rsync-only"])
        .assert_code(ExitCode::BadConfig)
        .assert_stderr_contains("-F/--force to bring it up to date");
    clone_from(&p.pg, &s, &["-F", "--rsync-only", "-c"])
        .assert_success()
        .assert_stderr_contains("--force: bringing the existing data directory")
        .assert_stderr_contains("standby clone (using rsync) complete");
    start_clone(&s.pg);
    assert_eq!(s.pg.query_one_string("SELECT count(*) FROM t_after"), "500");
    replicates(&p.pg, &s.pg, "t_later");
}

#[test]
fn tablespaces_are_mapped() {
    let p = registered_primary();
    let ts_dir = p.pg.dir.join("ts");
    fs::create_dir(&ts_dir).unwrap();
    chown_to_user(&ts_dir);
    p.pg.execute(&format!(
        "CREATE TABLESPACE extra LOCATION '{}'",
        ts_dir.display()
    ));
    p.pg.execute("CREATE TABLE t_ts (i int) TABLESPACE extra; INSERT INTO t_ts SELECT generate_series(1, 42)");
    for (i, method) in [&[][..], &["--rsync-only"][..]].into_iter().enumerate() {
        let id = i as i32 + 2;
        let name = format!("node{id}");
        let pg = PgNode::empty(&name);
        let new_ts = pg.dir.join("ts");
        let conf = write_conf(
            &pg,
            id,
            &name,
            &pg.conninfo(),
            &format!(
                "tablespace_mapping='{}={}'",
                ts_dir.display(),
                new_ts.display()
            ),
        );
        let s = Node { pg, conf };
        let mut args = vec!["-c"];
        args.extend_from_slice(method);
        clone_from(&p.pg, &s, &args).assert_success();
        start_clone(&s.pg);
        assert_eq!(s.pg.query_one_string("SELECT count(*) FROM t_ts"), "42");
        assert_eq!(
            s.pg.query_one_string(
                "SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'extra'"
            ),
            new_ts.display().to_string()
        );
        // The primary's tablespace is untouched and still its own.
        assert_eq!(p.query("SELECT count(*) FROM t_ts"), "42");
    }
}

#[test]
fn replication_slot_is_created_and_used() {
    let p = registered_primary();
    let s = clone_target("node2", 2, "use_replication_slots=true");
    clone_from(&p.pg, &s, &["-c"])
        .assert_success()
        .assert_stderr_contains("replication slot \"repmgr_slot_2\" created");
    assert!(auto_conf(&s.pg).contains("primary_slot_name = 'repmgr_slot_2'"));
    start_clone(&s.pg);
    poll_until(WAIT, "repmgr_slot_2 active on the primary", || {
        p.pg.try_query_one_string(
            "SELECT active::text FROM pg_replication_slots WHERE slot_name = 'repmgr_slot_2'",
        )
        .ok()
        .flatten()
        .as_deref()
            == Some("true")
    });
}

#[test]
fn failed_basebackup_cleans_up_and_exits_14() {
    let p = registered_primary();
    let s = clone_target(
        "node2",
        2,
        "use_replication_slots=true\npg_basebackup_options='--no-such-option'",
    );
    clone_from(&p.pg, &s, &[])
        .assert_code(ExitCode::BadBasebackup)
        .assert_stderr_contains("pg_basebackup failed")
        .assert_stderr_contains("no-such-option")
        .assert_stderr_contains("removing the partially written data directory")
        .assert_stderr_contains("replication slot \"repmgr_slot_2\" dropped again");
    assert!(!s.pg.datadir.exists());
    assert_eq!(p.query("SELECT count(*) FROM pg_replication_slots"), "0");
    // An empty directory given beforehand stays, empty.
    fs::create_dir(&s.pg.datadir).unwrap();
    chown_to_user(&s.pg.datadir);
    clone_from(&p.pg, &s, &[]).assert_code(ExitCode::BadBasebackup);
    assert!(s.pg.datadir.is_dir());
    assert!(entries(&s.pg.datadir).is_empty());
}

#[test]
fn replication_conf_only_rewrites_a_stopped_standby() {
    let p = registered_primary();
    let s = clone_target("node2", 2, "");
    clone_from(&p.pg, &s, &["-c"]).assert_success();
    start_clone(&s.pg);
    let conninfo = format!("host=127.0.0.1 port={} user=postgres", p.pg.port);
    let upstream = format!("--upstream-conninfo={conninfo}");
    // Refused while the standby runs.
    s.repmgr(&[
        "standby",
        "clone",
        "--recovery-conf-only",
        "--no-upstream-connection",
        &upstream,
    ])
    .assert_code(ExitCode::BadConfig)
    .assert_stderr_contains("is running on data directory");
    s.pg.stop();
    // Without a connection it needs --upstream-conninfo.
    s.repmgr(&[
        "standby",
        "clone",
        "--replication-conf-only",
        "--no-upstream-connection",
    ])
    .assert_code(ExitCode::BadConfig)
    .assert_stderr_contains("needs --upstream-conninfo");
    fs::remove_file(s.pg.datadir.join("standby.signal")).unwrap();
    s.repmgr(&[
        "standby",
        "clone",
        "--recovery-conf-only",
        "--no-upstream-connection",
        &upstream,
        "--recovery-min-apply-delay=1s",
    ])
    .assert_success();
    let auto = auto_conf(&s.pg);
    assert!(
        auto.contains(&format!(
            "primary_conninfo = '{conninfo} application_name=node2'"
        )),
        "{auto}"
    );
    assert!(auto.contains("recovery_min_apply_delay = '1s'"), "{auto}");
    assert!(s.pg.datadir.join("standby.signal").exists());
    // With a connection: the upstream's system identifier must match.
    let port = p.pg.port.to_string();
    s.repmgr(&[
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-U",
        "postgres",
        "standby",
        "clone",
        "--replication-conf-only",
    ])
    .assert_success();
    let other = PgNode::primary("other");
    let oport = other.port.to_string();
    s.repmgr(&[
        "-h",
        "127.0.0.1",
        "-p",
        &oport,
        "-U",
        "postgres",
        "standby",
        "clone",
        "--replication-conf-only",
    ])
    .assert_code(ExitCode::BadConfig)
    .assert_stderr_contains("not a copy of the upstream");
    s.pg.start();
    s.pg.wait_streaming(WAIT);
    replicates(&p.pg, &s.pg, "t_conf_only");
}
