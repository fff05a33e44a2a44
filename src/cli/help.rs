//! Help texts, written by hand as repmgr's own are (`do_help`, `do_*_help`).

use super::{Action, HelpTopic};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// repmgr's `--version-number`: 5.5.0 → 50500.
pub fn version_number() -> String {
    let mut parts = VERSION.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    let patch = parts.next().unwrap_or(0);
    format!("{}", major * 10000 + minor * 100 + patch)
}

const GENERAL: &str = "\
repmgr: replication management tool for PostgreSQL

Usage:
    repmgr [OPTIONS] primary {register|unregister}
    repmgr [OPTIONS] standby {register|unregister|clone|promote|follow|switchover}
    repmgr [OPTIONS] witness {register|unregister}
    repmgr [OPTIONS] node    {status|check|rejoin|service}
    repmgr [OPTIONS] cluster {show|event|matrix|crosscheck|cleanup}
    repmgr [OPTIONS] service {status|pause|unpause}
    repmgr [OPTIONS] daemon  {start|stop}

  Execute \"repmgr {primary|standby|witness|node|cluster|service|daemon} --help\"
  to see command-specific options. \"master\" is accepted as an alias of \"primary\".

General options:
  -?, --help                          show this help, then exit
  -V, --version                       output version information, then exit
  --version-number                    output version number, then exit

General configuration options:
  -b, --pg_bindir=PATH                path to PostgreSQL binaries (optional)
  -f, --config-file=PATH              path to the repmgr configuration file
                                      (default: ./repmgr.conf, then /etc/repmgr.conf)
  -F, --force                         force potentially dangerous operations to happen

Database connection options:
  -d, --dbname=DBNAME                 database to connect to (default: \"repmgr\")
  -h, --host=HOSTNAME                 database server host
  -p, --port=PORT                     database server port (default: \"5432\")
  -U, --username=USERNAME             database user name to connect as (default: \"repmgr\")
  -S, --superuser=USERNAME            superuser to use, if repmgr user is not superuser

Node-specific options:
  -D, --pgdata=DIR                    location of the node's data directory
  --node-id                           specify a node by id (only available for some operations)
  --node-name                         specify a node by name (only available for some operations)

Logging options:
  --dry-run                           show what would happen for action, but don't execute it
  -L, --log-level                     set log level (overrides configuration file; default: INFO)
  --log-to-file                       log to file (or logging facility) defined in repmgr.conf
  -q, --quiet                         suppress all log output apart from errors
  -t, --terse                         don't display detail, hints and other non-critical output
  -v, --verbose                       display additional log output (useful for debugging)

Exit codes are repmgr's: 0 success, 1 bad configuration or usage, 6 database
connection failed, 7 query failed, 25 node or cluster status issue; see repmgr(1).
";

fn family_help(family: &str) -> Option<&'static str> {
    Some(match family {
        "primary" | "master" => {
            "\
repmgr primary: register or unregister the primary node

Usage:
    repmgr [OPTIONS] primary register
    repmgr [OPTIONS] primary unregister

  Execute \"repmgr primary {register|unregister} --help\" for details.
"
        }
        "standby" => {
            "\
repmgr standby: manage standby nodes

Usage:
    repmgr [OPTIONS] standby clone [HOST]
    repmgr [OPTIONS] standby register
    repmgr [OPTIONS] standby unregister
    repmgr [OPTIONS] standby promote
    repmgr [OPTIONS] standby follow [HOST]
    repmgr [OPTIONS] standby switchover

  Execute \"repmgr standby ACTION --help\" for details.
"
        }
        "witness" => {
            "\
repmgr witness: manage a witness node

Usage:
    repmgr [OPTIONS] witness register
    repmgr [OPTIONS] witness unregister
"
        }
        "node" => {
            "\
repmgr node: operations on the local node

Usage:
    repmgr [OPTIONS] node status
    repmgr [OPTIONS] node check
    repmgr [OPTIONS] node rejoin
    repmgr [OPTIONS] node service
"
        }
        "cluster" => {
            "\
repmgr cluster: cluster-wide information and maintenance

Usage:
    repmgr [OPTIONS] cluster show
    repmgr [OPTIONS] cluster event
    repmgr [OPTIONS] cluster matrix
    repmgr [OPTIONS] cluster crosscheck
    repmgr [OPTIONS] cluster cleanup

  Execute \"repmgr cluster ACTION --help\" for details.
"
        }
        "service" | "daemon" => {
            "\
repmgr service / daemon: control repmgrd

Usage:
    repmgr [OPTIONS] service status
    repmgr [OPTIONS] service pause
    repmgr [OPTIONS] service unpause
    repmgr [OPTIONS] daemon start
    repmgr [OPTIONS] daemon stop
"
        }
        _ => return None,
    })
}

// A table (one help text per action), not a workflow: long by nature.
fn action_help(action: Action) -> &'static str {
    use Action::*;
    match action {
        PrimaryRegister => {
            "\
repmgr primary register: register the primary node

Usage:
    repmgr [OPTIONS] primary register

  Creates the \"repmgr\" metadata schema (plain SQL: no extension and no
  shared_preload_libraries needed) and registers this node as primary.
  Must be run on a server which is not in recovery.

Options:
  --dry-run                 check prerequisites but don't make any changes
  -F, --force               overwrite an existing node record
"
        }
        PrimaryUnregister => {
            "\
repmgr primary unregister: unregister an inactive primary node

Usage:
    repmgr [OPTIONS] primary unregister

Options:
  --dry-run                 check what would happen, but don't unregister
  --node-id                 ID of the inactive primary node to unregister
  -F, --force               force removal of an active record
"
        }
        StandbyRegister => {
            "\
repmgr standby register: add a standby's information to the repmgr metadata

Usage:
    repmgr [OPTIONS] standby register

  The primary is found from the local copy of the metadata, or given with
  -h/-p/-U/-d.

Options:
  --dry-run                 check prerequisites but don't make any changes
  -F, --force               overwrite an existing node record, or register
                            a standby which is not running
  --upstream-node-id        ID of the upstream node to replicate from (optional)
  --wait-start=VALUE        wait for the standby to start (timeout in seconds, default 30)
  --wait-sync[=VALUE]       wait for the node record to synchronise to the standby
                            (optional timeout in seconds)
"
        }
        StandbyUnregister => {
            "\
repmgr standby unregister: remove a standby's information from the repmgr metadata

Usage:
    repmgr [OPTIONS] standby unregister

Options:
  --node-id                 ID of the standby to unregister (default: this node)
"
        }
        StandbyClone => {
            "\
repmgr standby clone: clone a PostgreSQL standby server from another node

Usage:
    repmgr [OPTIONS] standby clone [HOST]

Copies the upstream's data directory and writes the replication
configuration; the server is not started. No repmgr.conf is needed:
    repmgr -D /var/lib/postgresql/15/main standby clone node1

Options:
  -D, --pgdata=DIR          target data directory (default: data_directory)
  -h, --host=HOST           upstream host (or give HOST as the last argument)
  -p, --port=PORT           upstream port
  -U, --username=USER       upstream database user
  -d, --dbname=conninfo     conninfo of the upstream node to use for cloning
  -c, --fast-checkpoint     force fast checkpoint
  --copy-external-config-files[={samepath|pgdata}]
                            copy configuration files located outside the data directory
  --dry-run                 perform checks but don't actually clone the standby
  -F, --force               use a non-empty data directory (pg_basebackup: its
                            contents are removed first; --rsync-only: it is
                            brought up to date); never a running server's
  --no-upstream-connection  with --replication-conf-only: do not connect to the
                            upstream (needs --upstream-conninfo)
  -R, --remote-user=USERNAME database server username for SSH operations
  -r, --rsync-only          clone with rsync instead of pg_basebackup
  --recovery-min-apply-delay=DELAY
                            set recovery_min_apply_delay (overrides repmgr.conf)
  --replication-user        user to make replication connections with
  --replication-conf-only   create the replication configuration only
                            (alias: --recovery-conf-only)
  --upstream-conninfo       \"primary_conninfo\" value to write
  --upstream-node-id        ID of the upstream node to replicate from (optional)
  --verify-backup           check the copy with pg_verifybackup (pg_basebackup only)
"
        }
        StandbyPromote => {
            "\
repmgr standby promote: promote a standby to primary

Usage:
    repmgr [OPTIONS] standby promote

Options:
  --dry-run                 perform checks but don't actually promote the standby
  -F, --force               promote even though a primary appears reachable
  --siblings-follow         have other standbys follow the new primary (over ssh)
"
        }
        StandbyFollow => {
            "\
repmgr standby follow: have a standby follow the current primary

Usage:
    repmgr [OPTIONS] standby follow [HOST]

Options:
  --dry-run                 perform checks but don't actually follow the new primary
  --upstream-node-id        node ID of the new primary
  -w, --wait                wait for a primary to appear
"
        }
        StandbySwitchover => {
            "\
repmgr standby switchover: promote a standby and demote the current primary

Usage:
    repmgr [OPTIONS] standby switchover

Options:
  --always-promote          promote the standby even if behind the primary
  --dry-run                 perform checks but don't execute the switchover
  -F, --force               ignore warnings and continue anyway
  --force-rewind[=VALUE]    use pg_rewind to reintegrate the old primary if necessary
  -R, --remote-user=USERNAME database server username for SSH operations
  --repmgrd-no-pause        don't pause repmgrd
  --repmgrd-force-unpause   unpause all repmgrd instances after the switchover
  --siblings-follow         have other standbys follow the new primary
"
        }
        WitnessRegister => {
            "\
repmgr witness register: register a witness node

Usage:
    repmgr [OPTIONS] witness register

Options:
  -h, --host                host of the primary node
  -p, --port                port of the primary node
  -U, --username            user to connect to the primary as
  -d, --dbname              database (or conninfo) of the primary
  --dry-run                 perform checks but don't actually register the witness
  -F, --force               overwrite an existing node record
"
        }
        WitnessUnregister => {
            "\
repmgr witness unregister: unregister a witness node

Usage:
    repmgr [OPTIONS] witness unregister

Options:
  --dry-run                 perform checks but don't actually unregister the witness
  --node-id                 node ID of the witness node (default: this node)
  -h, --host                host of the primary node (needed when the witness is down)
"
        }
        NodeStatus => {
            "\
repmgr node status: show an overview of a node's status

Usage:
    repmgr [OPTIONS] node status

Options:
  --csv                     emit output as CSV
  --json                    emit output as one JSON document (see repmgr(1), JSON OUTPUT)
  --verbose                 also show the system identifier
  --is-shutdown-cleanly     print the node's shutdown state without connecting:
                            --state=UP|DOWN|SHUTTING_DOWN|UNCLEAN_SHUTDOWN|UNKNOWN
                            (DOWN adds --last-checkpoint-lsn=X/Y; used by switchover)

Exit status: 0, or 25 if issues were detected (role mismatch, downstream nodes
not attached, missing or inactive replication slots).
"
        }
        NodeCheck => {
            "\
repmgr node check: perform checks on a node (for monitoring, cron and Nagios)

Usage:
    repmgr [OPTIONS] node check

Connection options:
  -S, --superuser=USERNAME  superuser to use if repmgr user is not superuser

Output options:
  --csv                     emit output as CSV (not available for individual check output)
  --nagios                  emit output in Nagios format (individual check output only)
  --json                    emit output as one JSON document, also for an individual
                            check (see repmgr(1), JSON OUTPUT)

Following options check an individual status:
  --archive-ready           number of WAL files ready for archiving
  --downstream              whether all downstream nodes are connected
  --upstream                whether the node is connected to its upstream
  --replication-lag         replication lag in seconds (standbys only)
  --role                    check node has expected role
  --slots                   check for inactive replication slots
  --missing-slots           check for missing replication slots
  --repmgrd                 check if repmgrd is running (paused: WARNING)
  --data-directory-config   check repmgr's data directory configuration

Diagnostics (used by standby switchover, with --optformat):
  --optformat               emit \"--status=OK --files=0\" style output
  --db-connection           check the database connection (also without --optformat)
  --replication-config-owner  check the owner of the replication configuration file
  --replication-connection  with --remote-node-id=ID: can this node open a
                            replication connection to that node?
  --has-passfile            exit 0 if a password file is present, 1 otherwise

Exit status: a full run exits 0, or 25 if any check is not OK; an individual
check exits 0 (OK), 1 (WARNING), 2 (CRITICAL) or 3 (UNKNOWN), with or
without --nagios. With --nagios, an unreachable server gives a CRITICAL line.
"
        }
        NodeRejoin => {
            "\
repmgr node rejoin: rejoin a node to a replication cluster

Usage:
    repmgr [OPTIONS] node rejoin

Options:
  --dry-run                 check that the prerequisites are met
  -d, --dbname=conninfo     conninfo of any node in the cluster
  --force-rewind[=VALUE]    execute pg_rewind if necessary (VALUE: path to pg_rewind)
  --config-files            comma-separated list of configuration files to retain
                            (postgresql.conf, postgresql.auto.conf, pg_hba.conf and
                            pg_ident.conf are always retained)
  --config-archive-dir      directory to temporarily store retained configuration files
                            (default: /tmp)
  -W, --no-wait             don't wait for the node to rejoin the cluster
"
        }
        NodeService => {
            "\
repmgr node service: stop, start, restart, reload or promote the local node

Usage:
    repmgr [OPTIONS] node service

Options:
  --dry-run                 show what action would be performed, but don't execute it
  --action                  action to perform (one of \"start\", \"stop\", \"restart\",
                            \"reload\" or \"promote\")
  --list-actions            show what command would be performed for each action
  --checkpoint              issue a CHECKPOINT before stopping or restarting the node
  -S, --superuser=USERNAME  superuser to issue the CHECKPOINT as

Commands are the service_*_command settings, else pg_ctl on the data directory
(or config_directory). Exit status: 0, or 5 if the command failed.
"
        }
        NodeControl => {
            "\
repmgr node control: low-level node control (undocumented in repmgr)

Usage:
    repmgr [OPTIONS] node control {--disable-wal-receiver|--enable-wal-receiver}
"
        }
        ClusterShow => {
            "\
repmgr cluster show: display information about each registered node

Usage:
    repmgr [OPTIONS] cluster show

Options:
  --csv                     emit output as CSV (with a subset of fields)
  --json                    emit output as one JSON document (see repmgr(1), JSON OUTPUT)
  --compact                 display only a subset of fields
  --terse                   only display the warnings, not hints and connection errors
  --verbose                 display connection error messages

Exit status: 0 if no issues were detected, 25 otherwise.
"
        }
        ClusterEvent => {
            "\
repmgr cluster event: display event information for the registered nodes

Usage:
    repmgr [OPTIONS] cluster event

Options:
  --csv                     emit output as CSV
  --json                    emit output as one JSON document (see repmgr(1), JSON OUTPUT)
  --limit                   maximum number of events to display (default: 20)
  --all                     display all events (overrides --limit)
  --event                   filter specific event
  --node-id                 restrict entries to node with this ID
  --node-name               restrict entries to node with this name
  --compact                 omit the Details column
"
        }
        ClusterMatrix => {
            "\
repmgr cluster matrix: display a matrix showing connectivity between nodes, seen from this node

Usage:
    repmgr [OPTIONS] cluster matrix

  This node's row: whether this node can connect to each node. Every other
  node's row: \"repmgr cluster show --csv --terse\" run on that node over ssh
  (ssh_options, -R/--remote-user; the remote repmgr.conf from
  repmgr.nodes.config_file). \"*\" connected, \"x\" failed, \"?\" unknown (the
  node's PostgreSQL or ssh did not answer). Passwordless ssh between all
  nodes is required.

Options:
  --csv                     emit output as CSV: from_id,to_id,status
                            (0 connected, -1 failed, -2 unknown)
  -t, --terse               omit the list of problems
  -R, --remote-user=USER    ssh user on the other nodes

Exit status: 0 if every connection works; 25 if a connection failed (with
--csv also when a cell is unknown); 12 if a node could not be reached over
ssh (25 takes precedence); 15 if a node's output could not be parsed.
"
        }
        ClusterCrosscheck => {
            "\
repmgr cluster crosscheck: display a matrix showing connectivity between nodes, seen from all nodes

Usage:
    repmgr [OPTIONS] cluster crosscheck

  Runs \"repmgr cluster matrix --csv --terse\" on every node (over ssh; this
  node's in-process) and merges the views: a cell is \"*\" if any view saw
  the connection work, else \"x\" if any saw it fail, else \"?\".

Options:
  --csv                     emit output as CSV: from_id,to_id,status
                            (0 connected, -1 failed, -2 unknown)
  -t, --terse               omit the list of problems
  -R, --remote-user=USER    ssh user on the other nodes

Exit status: 0 if every connection works; 25 if a connection failed; 12 if
a node could not be reached over ssh (25 takes precedence); 15 if a node's
output could not be parsed.
"
        }
        ClusterCleanup => {
            "\
repmgr cluster cleanup: purge monitoring history

Usage:
    repmgr [OPTIONS] cluster cleanup

Options:
  -k, --keep-history=VALUE  retain indicated number of days of history (default: 0)
  --node-id                 only delete monitoring records for the specified node

Runs on the primary (found from this node's metadata) and records the event
\"cluster_cleanup\". Exit status: 0, 6 if the primary cannot be reached,
7 if the records cannot be deleted.
"
        }
        ServiceStatus => {
            "\
repmgr service status: display the status of repmgrd on each node

Usage:
    repmgr [OPTIONS] service status
    repmgr [OPTIONS] daemon status

  Shows, for every registered node, whether PostgreSQL answers and whether
  its repmgrd is running (its heartbeat in repmgr.repmgrd_status is fresher
  than three monitoring intervals), with its PID, whether it is paused, and
  when it last saw its upstream. Exits 0 unless the metadata cannot be read.

Options:
  --csv                     emit output as CSV:
                            id,name,type,pg_running,repmgrd_running,pid,paused,
                            priority,upstream_last_seen_secs,location
                            (-1 where unknown)
  --json                    emit output as one JSON document (see repmgr(1), JSON OUTPUT)
  --detail                  show additional detail (location and priority)
  --compact                 shorter column headers
  --verbose                 show text of database connection error messages
"
        }
        ServicePause | ServiceUnpause => {
            "\
repmgr service pause / unpause: instruct all repmgrd instances to pause or resume failover

Usage:
    repmgr [OPTIONS] service pause
    repmgr [OPTIONS] service unpause

  Sets the pause flag of every registered node on the primary (found from
  the local node's metadata); each repmgrd obeys its own node's replicated
  copy. Upgrades a version 1 metadata schema on the primary first.
  Exits 26 if the flag cannot be written on the primary.

Options:
  --dry-run                 check if the primary and nodes are reachable but
                            don't pause or unpause
"
        }
        DaemonStart | DaemonStop => {
            "\
repmgr daemon start / stop: start or stop repmgrd on the local node

Usage:
    repmgr [OPTIONS] daemon start
    repmgr [OPTIONS] daemon stop

  Runs \"repmgrd_service_start_command\" / \"repmgrd_service_stop_command\"
  when set; otherwise \"daemon start\" runs \"repmgrd -f <config file>\"
  (which detaches itself) and \"daemon stop\" sends SIGTERM to the PID in
  repmgrd's pid file (\"repmgrd_pid_file\", default $TMPDIR/repmgrd.pid).
  Exits 0 with a notice if repmgrd is already running / stopped, 27 if the
  command fails or repmgrd does not start / stop in time.

Options:
  --dry-run                 check prerequisites and show the command, but
                            don't start or stop repmgrd
  -w, --wait[=VALUE]        wait for repmgrd to start or stop (default: 15
                            seconds; this is the default behaviour)
  -W, --no-wait             don't wait
"
        }
    }
}

/// The help text for a topic (None: general help).
/// repmgr's help header gains a warning banner when root runs it.
pub fn for_user(text: &'static str) -> std::borrow::Cow<'static, str> {
    const HEADER: &str = "repmgr: replication management tool for PostgreSQL\n\n";
    match text.strip_prefix(HEADER) {
        Some(body) if nix::unistd::Uid::effective().is_root() => format!(
            "{HEADER}\t**************************************************\n\
             \t*** repmgr must be executed by a non-superuser ***\n\
             \t**************************************************\n\n{body}"
        )
        .into(),
        _ => text.into(),
    }
}

pub fn text(topic: Option<&HelpTopic>) -> &'static str {
    match topic {
        None => GENERAL,
        Some(HelpTopic::Action(a)) => action_help(*a),
        Some(HelpTopic::Family(f)) => family_help(f).unwrap_or(GENERAL),
    }
}

/// repmgrd's help.
pub const REPMGRD: &str = "\
repmgrd: replication management daemon for PostgreSQL

Usage:
    repmgrd [OPTIONS]

Options:
  -?, --help                show this help, then exit
  -V, --version             output version information, then exit
  --version-number          output version number, then exit

General configuration options:
  -v, --verbose             output verbose activity information
  -f, --config-file=PATH    path to the configuration file
  -L, --log-level=LEVEL     set log level (overrides configuration file)

Daemon options:
  -d, --daemonize[=true|false]
                            detach process from foreground (default: true)
  -p, --pid-file=PATH       use the specified PID file
  -s, --show-pid-file       show PID file which would be used by the current configuration
  --no-pid-file             don't write a PID file

repmgrd monitors a cluster of servers and optionally performs failover.
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_number_is_repmgrs_format() {
        assert_eq!(version_number(), "50500");
    }

    #[test]
    fn every_action_and_family_has_help() {
        for (family, actions) in super::super::FAMILIES {
            assert!(family_help(family).is_some(), "{family}");
            for a in *actions {
                let act = super::super::resolve_action(family, a).unwrap();
                assert!(action_help(act).contains("Usage:"), "{family} {a}");
            }
        }
    }
}
