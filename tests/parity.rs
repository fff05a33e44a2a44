//! repmgr 5.3 and ours side by side (issue 12): one 3-node cluster built
//! and registered by Debian's repmgr 5.3, the same commands run with its
//! binary and with ours against the same repmgr.conf files, compared on
//! exit code and on stdout after normalising what differs between any two
//! runs (timestamps, pids, LSNs, ages). A difference fails the test unless
//! it is listed in [`DOCUMENTED`] (and in man/repmgr.1, DIFFERENCES FROM
//! REPMGR 5.3); a documented difference that no longer shows fails it too,
//! so the list cannot rot. Each failure prints the command, both exit
//! codes and a line diff of both normalised stdouts.
//!
//! Run alone: `cargo test --test integration -- --test-threads=2 parity`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use regex::Regex;

use crate::fixture::{wait_all_replayed, wait_attached, Node};
use crate::harness::{
    harness_path, repmgr_bin, run_as_user, run_with_deadline, user_tempdir, PgNode, Repmgr,
    RunResult, Sshd, PG_ENV_VARS,
};

/// Debian's repmgr 5.3 for PostgreSQL 15.
const REPMGR5: &str = "/usr/lib/postgresql/15/bin/repmgr";

/// Deliberate differences: `[cluster state] who: words`, as the test labels
/// its commands, and
/// why (one line each; man/repmgr.1 says the same to users).
const DOCUMENTED: &[(&str, &str)] = &[
    (
        "[all up] node1: --version",
        "version 5.5.0: every repmgr 5.5 key and option is read",
    ),
    (
        "[all up] node1: -V",
        "version 5.5.0: every repmgr 5.5 key and option is read",
    ),
    (
        "[all up] node1: --version-number",
        "50500: every repmgr 5.5 key and option is read",
    ),
    (
        "[all up] root: --version",
        "version 5.5.0: every repmgr 5.5 key and option is read",
    ),
    (
        "[all up] root: --version-number",
        "50500: every repmgr 5.5 key and option is read",
    ),
    (
        "[all up] node1: cluster --help",
        "the help lists --json, which repmgr 5.3 lacks",
    ),
    (
        "[all up] node1: node check --help",
        "the help lists --json, which repmgr 5.3 lacks",
    ),
    (
        "[all up] node1: node service --list-actions",
        "pg_ctl start/restart add -l <data_directory>/log/repmgr-start.log",
    ),
    (
        "[all up] node2: node service --list-actions",
        "pg_ctl start/restart add -l <data_directory>/log/repmgr-start.log",
    ),
    (
        "[all up] node1: --dump-config",
        "also lists the pg_backupapi_* keys (repmgr 5.4) and this repmgr's own",
    ),
    (
        "[all up] node1: primary register --dry-run",
        "the dry run predicts the real one, which refuses a registered node",
    ),
    (
        "[node3 down] node3: node check --db-connection",
        "the parameters listed are the conninfo's, not libpq's with its defaults",
    ),
    (
        "[node3 down] node3: node check --role --nagios",
        "an unreachable node is a Nagios CRITICAL line with exit 2, not a log line",
    ),
    (
        "[node1, node3 down] node2: node check --upstream --nagios",
        "an unreachable upstream is a Nagios CRITICAL line with exit 2, not a log line",
    ),
];

/// Who runs a command, with which repmgr.conf.
#[derive(Clone, Copy)]
enum Who {
    /// The run user, `-f <that node's repmgr.conf>`.
    Node(usize),
    /// The run user, no `-f` (and no repmgr.conf in the working directory).
    NoConf,
    /// root, no `-f`: config-management tools call --version so.
    Root,
}

struct Case {
    who: Who,
    args: Vec<String>,
}

impl Case {
    fn label(&self) -> String {
        let who = match self.who {
            Who::Node(i) => format!("node{}", i + 1),
            Who::NoConf => "noconf".to_string(),
            Who::Root => "root".to_string(),
        };
        format!("{who}: {}", self.args.join(" "))
    }
}

/// `node: words` cases (words split on spaces).
fn cases(who: Who, commands: &[&str]) -> Vec<Case> {
    commands
        .iter()
        .map(|c| Case {
            who,
            args: c.split_whitespace().map(String::from).collect(),
        })
        .collect()
}

/// One side's result, normalised.
struct Seen {
    code: i32,
    stdout: String,
    /// Not compared (messages may be worded differently), shown to help.
    stderr: String,
}

/// A command whose two results differ.
struct Difference {
    label: String,
    theirs: Seen,
    ours: Seen,
}

/// The cluster both binaries run against, and how to compare their output.
struct Parity {
    nodes: Vec<Node>,
    norm: Normaliser,
    /// A working directory with no repmgr.conf in it: repmgr 5.3 looks for
    /// ./repmgr.conf when -f is absent.
    cwd: tempfile::TempDir,
    /// The cluster's state, part of each label: one command may differ in
    /// one state only.
    phase: &'static str,
    ran: Vec<String>,
    differences: Vec<Difference>,
}

impl Parity {
    /// node1 (primary), node2 and node3 (standbys of node1), registered by
    /// repmgr 5.3 (which creates its extension; its library preloaded so
    /// that its functions answer), each repmgr.conf with `extra`.
    fn new(extra: &str) -> Parity {
        assert!(
            Path::new(REPMGR5).is_file(),
            "{REPMGR5} is missing: this test needs Debian's repmgr 5.3 \
             (apt-get install postgresql-15-repmgr)"
        );
        let preload = "shared_preload_libraries = 'repmgr'";
        let primary = Node::configure(PgNode::builder("node1").conf(preload).start(), 1, extra);
        let mut p = Parity {
            norm: Normaliser::new(),
            nodes: vec![],
            cwd: user_tempdir(),
            phase: "all up",
            ran: vec![],
            differences: vec![],
        };
        p.theirs(&primary, &["primary", "register"])
            .assert_success();
        p.nodes.push(primary);
        for id in 2..=3 {
            let pg = PgNode::standby_of_builder(&format!("node{id}"))
                .conf(preload)
                .standby_of(&p.nodes[0].pg);
            let s = Node::configure(pg, id, extra);
            p.theirs(&s, &["standby", "register"]).assert_success();
            wait_attached(&p.nodes[0], &s);
            p.nodes.push(s);
        }
        wait_all_replayed(&p.nodes);
        p.norm = Normaliser::for_nodes(&p.nodes);
        p
    }

    fn theirs(&self, node: &Node, args: &[&str]) -> RunResult {
        let mut cmd = Command::new(REPMGR5);
        cmd.arg("-f").arg(&node.conf).args(args);
        self.run5(cmd, true, args)
    }

    fn run5(&self, mut cmd: Command, as_user: bool, args: &[&str]) -> RunResult {
        for v in PG_ENV_VARS {
            cmd.env_remove(v);
        }
        cmd.env("LC_ALL", "C")
            .env("LANG", "C")
            .env("PATH", harness_path())
            .stdin(Stdio::null())
            .current_dir(self.cwd.path());
        if as_user {
            run_as_user(&mut cmd);
        }
        run_with_deadline(cmd, format!("repmgr 5.3 {args:?}"), Duration::from_secs(60))
    }

    /// Runs `case` with both binaries (repmgr 5.3 first) and records a
    /// difference in exit code or normalised stdout.
    fn compare(&mut self, case: &Case) {
        let args: Vec<&str> = case.args.iter().map(String::as_str).collect();
        let (theirs, ours) = match case.who {
            Who::Node(i) => {
                let n = &self.nodes[i];
                let theirs = self.theirs(n, &args);
                let ours = n.cmd(&args).cwd(self.cwd.path()).run();
                (theirs, ours)
            }
            Who::NoConf => {
                let mut cmd = Command::new(REPMGR5);
                cmd.args(&args);
                let theirs = self.run5(cmd, true, &args);
                (theirs, Repmgr::new(&args).cwd(self.cwd.path()).run())
            }
            Who::Root => {
                let mut cmd = Command::new(REPMGR5);
                cmd.args(&args);
                let theirs = self.run5(cmd, false, &args);
                let mut cmd = Command::new(repmgr_bin());
                cmd.args(&args);
                (theirs, self.run5(cmd, false, &args))
            }
        };
        let seen = |r: &RunResult| Seen {
            code: r.status,
            stdout: self.norm.apply(&r.stdout),
            stderr: self.norm.apply(&r.stderr),
        };
        let (theirs, ours) = (seen(&theirs), seen(&ours));
        let label = format!("[{}] {}", self.phase, case.label());
        // Every command and its exit, for a reader of --nocapture.
        eprintln!(
            "parity: exit {:>2} / {:>2}  {label}",
            theirs.code, ours.code
        );
        if theirs.code != ours.code || theirs.stdout != ours.stdout {
            self.differences.push(Difference {
                label: label.clone(),
                theirs,
                ours,
            });
        }
        self.ran.push(label);
    }

    fn compare_all(&mut self, cases: &[Case]) {
        for c in cases {
            self.compare(c);
        }
    }

    /// Fails on an undocumented difference, and on a documented one (of
    /// the commands run here) that no longer shows.
    fn verdict(&self) {
        let mut report = String::new();
        let mut failed = 0;
        for d in &self.differences {
            match DOCUMENTED.iter().find(|(k, _)| *k == d.label) {
                Some((_, why)) => {
                    report.push_str(&format!("\n== {} (documented: {why})\n", d.label))
                }
                None => {
                    failed += 1;
                    report.push_str(&format!("\n== {} (UNDOCUMENTED)\n", d.label));
                }
            }
            report.push_str(&render(d));
        }
        for (key, _) in DOCUMENTED {
            let ran = self.ran.iter().any(|l| l == key);
            if ran && !self.differences.iter().any(|d| d.label == *key) {
                failed += 1;
                report.push_str(&format!(
                    "\n== {key}: documented as different, but the same now: drop it from DOCUMENTED and man/repmgr.1\n"
                ));
            }
        }
        eprintln!(
            "parity: {} commands, {} differences, {failed} failing{report}",
            self.ran.len(),
            self.differences.len()
        );
        assert_eq!(
            failed, 0,
            "parity with repmgr 5.3 broken: {failed} failing (report above)"
        );
    }
}

/// Both exit codes, then a line diff of both stdouts: ` ` both, `-`
/// repmgr 5.3 only, `+` ours only.
fn render(d: &Difference) -> String {
    let mut out = format!(
        "exit: repmgr 5.3 {}, ours {}{}\n--- repmgr 5.3\n+++ ours\n",
        d.theirs.code,
        d.ours.code,
        if d.theirs.code == d.ours.code {
            ""
        } else {
            "  <-- differs"
        }
    );
    for (tag, line) in line_diff(&d.theirs.stdout, &d.ours.stdout) {
        out.push_str(&format!("{tag}{line}\n"));
    }
    for (who, err) in [("repmgr 5.3", &d.theirs.stderr), ("ours", &d.ours.stderr)] {
        out.push_str(&format!("stderr of {who} (not compared):\n"));
        for l in err.lines().take(6) {
            out.push_str(&format!("    {l}\n"));
        }
    }
    out
}

/// A longest-common-subsequence line diff (outputs are short).
fn line_diff<'a>(a: &'a str, b: &'a str) -> Vec<(char, &'a str)> {
    let a: Vec<&str> = a.lines().collect();
    let b: Vec<&str> = b.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, vec![]);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push((' ', a[i]));
            (i, j) = (i + 1, j + 1);
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push(('+', b[j]));
            j += 1;
        } else {
            out.push(('-', a[i]));
            i += 1;
        }
    }
    out
}

/// Replaces what differs between any two runs of the same command, by
/// either binary: the values, never the shape around them (column widths
/// stay, so a value printed in another format still shows).
struct Normaliser {
    /// Literal replacements: node directories and ports (for readable
    /// diffs; they are the same for both binaries).
    literals: Vec<(String, String)>,
    patterns: Vec<(Regex, String)>,
}

impl Normaliser {
    fn new() -> Normaliser {
        let patterns = [
            // Timestamps, with or without fraction and zone.
            (
                r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}(:?\d{2})?)?",
                "<TIME>",
            ),
            // LSNs.
            (r"\b[0-9A-F]{1,8}/[0-9A-F]{1,8}\b", "<LSN>"),
            // Process ids.
            (
                r"(PID|pid|process ID|postmaster)( is|:|=)? *\d+",
                "$1$2 <PID>",
            ),
            // Ages, lag and durations.
            (r"\b\d+ (second|minute|hour|day)s?\b", "<N> $1(s)"),
            (r"\b\d+ bytes\b", "<N> bytes"),
            (r"(lag|time)=\d+s?", "$1=<N>"),
        ];
        Normaliser {
            literals: vec![],
            patterns: patterns
                .iter()
                .map(|(re, to)| (regex(re), to.to_string()))
                .collect(),
        }
    }

    fn for_nodes(nodes: &[Node]) -> Normaliser {
        let mut n = Normaliser::new();
        for node in nodes {
            let name = &node.pg.name;
            n.literals
                .push((node.pg.dir.display().to_string(), format!("<DIR:{name}>")));
        }
        n.patterns.extend(nodes.iter().map(|node| {
            (
                regex(&format!(r"\b{}\b", node.pg.port)),
                format!("<PORT:{}>", node.pg.name),
            )
        }));
        n
    }

    fn apply(&self, text: &str) -> String {
        let mut s = text.to_string();
        for (from, to) in &self.literals {
            s = s.replace(from.as_str(), to);
        }
        for (re, to) in &self.patterns {
            s = re.replace_all(&s, to.as_str()).into_owned();
        }
        s
    }
}

fn regex(re: &str) -> Regex {
    Regex::new(re).unwrap_or_else(|e| panic!("{re}: {e}"))
}

/// Every check of `node check`, as repmgr 5.3 names them.
const CHECKS: &[&str] = &[
    "--role",
    "--replication-lag",
    "--archive-ready",
    "--downstream",
    "--upstream",
    "--slots",
    "--missing-slots",
    "--data-directory-config",
    "--replication-config-owner",
    "--db-connection",
    "--repmgrd",
    "--has-passfile",
    "--replication-connection",
];

/// What monitoring and scripts read: version, node status and check, the
/// cluster views, service status (no repmgrd), the service actions.
#[test]
fn parity_reporting_commands_match_repmgr_5_3() {
    let mut p = Parity::new("");
    let mut all = cases(Who::Node(0), &["--version", "--version-number", "-V"]);
    if nix::unistd::geteuid().is_root() {
        all.extend(cases(Who::Root, &["--version", "--version-number"]));
    }
    all.extend(cases(
        Who::Node(0),
        &["cluster --help", "node check --help"],
    ));
    for i in [0, 1] {
        all.extend(cases(
            Who::Node(i),
            &[
                "node status",
                "node status --csv",
                "node status --is-shutdown-cleanly",
                "node check",
                "node check --csv",
                "node check --nagios",
            ],
        ));
        for c in CHECKS {
            let variants = [
                c.to_string(),
                format!("{c} --nagios"),
                format!("{c} --csv"),
                format!("{c} --optformat"),
            ];
            for v in variants {
                all.extend(cases(Who::Node(i), &[&format!("node check {v}")]));
            }
        }
        all.extend(cases(
            Who::Node(i),
            &[
                "cluster show",
                "cluster show --csv",
                "cluster show --compact",
                "cluster show --terse",
                "cluster show --verbose",
                "cluster event",
                "cluster event --csv",
                "cluster event --limit=2",
                "cluster event --event=standby_register",
                "cluster event --event=standby_register --csv",
                "service status",
                "service status --csv",
                "service status --detail",
                "node service --list-actions",
                "node service --list-actions --action=stop",
                "node service --action=restart --checkpoint --dry-run",
            ],
        ));
    }
    all.extend(cases(
        Who::Node(0),
        &[
            "node check --role --nagios --csv",
            "node check --role --downstream",
            "node status --node-id=2",
            "cluster event --node-id=2",
            "cluster event --node-name=node3 --limit=1",
            "cluster event --all",
            "cluster event --limit=0",
            "--dump-config",
        ],
    ));
    p.compare_all(&all);
    p.verdict();
}

/// Over ssh, dry runs, refusals, bad input, and a standby down.
#[test]
fn parity_actions_bad_input_and_a_node_down_match_repmgr_5_3() {
    let sshd = Sshd::start();
    let mut p = Parity::new(&format!("ssh_options='{}'", sshd.ssh_options()));
    let mut all = cases(
        Who::Node(0),
        &[
            "cluster matrix",
            "cluster matrix --csv",
            "cluster crosscheck",
            "cluster crosscheck --csv",
            "primary register --dry-run",
        ],
    );
    all.extend(cases(
        Who::Node(1),
        &[
            "cluster matrix",
            "cluster crosscheck --csv",
            "standby register --dry-run",
            "standby switchover --dry-run",
            "standby switchover --siblings-follow --dry-run",
            "standby promote --dry-run",
            "standby promote",
            "standby follow --dry-run",
            "standby follow --dry-run --upstream-node-id=3",
            "standby switchover --dry-run --force-rewind",
            "standby switchover --dry-run --always-promote",
            "node rejoin --dry-run",
            "node service --action=stop --checkpoint --dry-run",
            "daemon status",
            "daemon status --csv",
        ],
    ));
    all.extend(cases(
        Who::Node(0),
        &[
            "primary unregister --dry-run",
            "-L ERROR cluster show",
            "--log-level=DEBUG cluster show --csv",
        ],
    ));
    // Bad input.
    all.extend(cases(
        Who::Node(0),
        &[
            "frobnicate",
            "cluster frobnicate",
            "cluster",
            "",
            "--bogus cluster show",
            "-x cluster show",
            "cluster show extra",
            "cluster event --limit=abc",
            "node status --node-id=abc",
            "cluster event --node-id=99",
            "cluster event --node-name=nosuchnode",
            "-L LOUD cluster show",
            "-p abc cluster show",
            "daemon start --wait --no-wait",
            "node control --enable-wal-receiver --disable-wal-receiver",
            "node check --role --bogus",
            "standby clone --dry-run",
            "witness register --dry-run",
        ],
    ));
    all.extend(cases(
        Who::NoConf,
        &[
            "cluster show",
            "node status",
            "-f /nonexistent/repmgr.conf cluster show",
            "-f /nonexistent/repmgr.conf node check",
        ],
    ));
    let dsn = format!(
        "-h 127.0.0.1 -p {} -U postgres -d postgres cluster show",
        p.nodes[0].pg.port
    );
    all.extend(cases(Who::NoConf, &[&dsn]));
    p.compare_all(&all);

    // node3 down, as monitoring sees a failed standby.
    p.nodes[2].pg.stop();
    p.phase = "node3 down";
    let mut down = cases(
        Who::Node(0),
        &[
            "cluster show",
            "cluster show --csv",
            "cluster show --terse",
            "cluster show --verbose",
            "cluster show --compact",
            "cluster matrix",
            "cluster crosscheck --csv",
            "node check --downstream",
            "node check --downstream --nagios",
            "service status",
            "service status --csv",
        ],
    );
    down.extend(cases(
        Who::Node(2),
        &[
            "node status",
            "node check",
            "node check --nagios",
            "node check --role --nagios",
            "node check --role --csv",
            "node check --role --optformat",
            "node check --db-connection",
            "node status --is-shutdown-cleanly",
        ],
    ));
    // The words of this one hold spaces (a conninfo).
    let rejoin = [
        "node",
        "rejoin",
        "-d",
        &p.nodes[0].pg.conninfo(),
        "--dry-run",
    ];
    down.push(Case {
        who: Who::Node(2),
        args: rejoin.iter().map(|s| s.to_string()).collect(),
    });
    p.compare_all(&down);

    // The primary down too, as before a manual failover: what may be
    // promoted, and what the standby sees.
    p.nodes[0].pg.stop();
    p.phase = "node1, node3 down";
    let failover = cases(
        Who::Node(1),
        &[
            "cluster show",
            "cluster show --csv",
            "node check --upstream",
            "node check --upstream --nagios",
            "node status",
            "standby promote --dry-run",
            "standby follow --dry-run",
            "service status --csv",
        ],
    );
    p.compare_all(&failover);
    p.verdict();
}
