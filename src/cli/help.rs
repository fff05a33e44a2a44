//! Help texts: repmgr 5.3's own (`do_help`, `do_*_help`), byte for byte,
//! with one line for each option this repmgr adds (`--json`,
//! `-r/--rsync-only`). As in repmgr, `FAMILY ACTION --help` shows the
//! family's help, and the defaults shown for -d/-h/-p/-U (and -R) are those
//! a connection would use.

use super::Opts;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// repmgr's `--version-number`: 5.5.0 → 50500.
pub fn version_number() -> String {
    let mut parts = VERSION.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    let patch = parts.next().unwrap_or(0);
    format!("{}", major * 10000 + minor * 100 + patch)
}

const HEADER: &str = "repmgr: replication management tool for PostgreSQL\n\n";

/// repmgr's warning when root asks for help (root may, nothing else).
const ROOT_BANNER: &str = "\t**************************************************\n\
                           \t*** repmgr must be executed by a non-superuser ***\n\
                           \t**************************************************\n\n";

const FOOTER: &str = "\nrepmgr home page: <https://repmgr.org/>\n";

const GENERAL: &str = r#"Usage:
    repmgr [OPTIONS] primary {register|unregister}
    repmgr [OPTIONS] standby {register|unregister|clone|promote|follow|switchover}
    repmgr [OPTIONS] node    {status|check|rejoin|service}
    repmgr [OPTIONS] cluster {show|event|matrix|crosscheck|cleanup}
    repmgr [OPTIONS] witness {register|unregister}
    repmgr [OPTIONS] service {status|pause|unpause}
    repmgr [OPTIONS] daemon  {start|stop}

  Execute "repmgr {primary|standby|node|cluster|witness|service} --help" to see command-specific options

General options:
  -?, --help                          show this help, then exit
  -V, --version                       output version information, then exit
  --version-number                    output version number, then exit

General configuration options:
  -b, --pg_bindir=PATH                path to PostgreSQL binaries (optional)
  -f, --config-file=PATH              path to the repmgr configuration file
  -F, --force                         force potentially dangerous operations to happen

Database connection options:
  -d, --dbname=DBNAME                 database to connect to (default: "{dbname}")
  -h, --host=HOSTNAME                 database server host{host}
  -p, --port=PORT                     database server port (default: "{port}")
  -U, --username=USERNAME             database user name to connect as (default: "{user}")

Node-specific options:
  -D, --pgdata=DIR                    location of the node's data directory 
  --node-id                           specify a node by id (only available for some operations)
  --node-name                         specify a node by name (only available for some operations)

Logging options:
  --dry-run                           show what would happen for action, but don't execute it
  -L, --log-level                     set log level (overrides configuration file; default: NOTICE)
  --log-to-file                       log to file (or logging facility) defined in repmgr.conf
  -q, --quiet                         suppress all log output apart from errors
  -t, --terse                         don't display detail, hints and other non-critical output
  -v, --verbose                       display additional log output (useful for debugging)
"#;

const PRIMARY: &str = r#"Usage:
    repmgr [OPTIONS] primary register
    repmgr [OPTIONS] primary unregister

  Note: "repmgr master ..." can be used as an alias

PRIMARY REGISTER

  "primary register" initialises the repmgr cluster and registers the primary node.

  --dry-run                           check that the prerequisites are met for registering the primary
                                      (including availability of the repmgr extension)
  -F, --force                         overwrite an existing node record

PRIMARY UNREGISTER

  "primary unregister" unregisters an inactive primary node.

  --dry-run                           check what would happen, but don't actually unregister the primary
  --node-id                           ID of the inactive primary node to unregister.
  -F, --force                         force removal of an active record
"#;

const STANDBY: &str = r#"Usage:
    repmgr [OPTIONS] standby clone
    repmgr [OPTIONS] standby register
    repmgr [OPTIONS] standby unregister
    repmgr [OPTIONS] standby promote
    repmgr [OPTIONS] standby follow
    repmgr [OPTIONS] standby switchover

STANDBY CLONE

  "standby clone" clones a standby from the primary or an upstream node.

  -d, --dbname=conninfo               conninfo of the upstream node to use for cloning.
  -c, --fast-checkpoint               force fast checkpoint
  -r, --rsync-only                    clone with rsync instead of pg_basebackup
  --copy-external-config-files[={samepath|pgdata}]
                                      copy configuration files located outside the 
                                        data directory to the same path on the standby (default) or to the
                                        PostgreSQL data directory
  --dry-run                           perform checks but don't actually clone the standby
  --no-upstream-connection            when using Barman, do not connect to upstream node
  -R, --remote-user=USERNAME          database server username for SSH operations (default: "{user}")
  --replication-user                  user to make replication connections with (optional, not usually required)
  -S, --superuser=USERNAME            superuser to use, if repmgr user is not superuser
  --upstream-conninfo                 "primary_conninfo" value to write in recovery.conf
                                        when the intended upstream server does not yet exist
  --upstream-node-id                  ID of the upstream node to replicate from (optional, defaults to primary node)
  --verify-backup                     verify a cloned node using the "pg_verifybackup" utility
  --without-barman                    do not clone from Barman even if configured
  --replication-conf-only             generate replication configuration for a previously cloned instance
  --recovery-min-apply-delay          set PostgreSQL configuration parameter "recovery_min_apply_delay"
                                      (overrides any setting in repmgr.conf)

STANDBY REGISTER

  "standby register" registers the standby node.

  -F, --force                         overwrite an existing node record, or if primary connection
                                        parameters supplied, create record even if standby offline
  --upstream-node-id                  ID of the upstream node to replicate from (optional)
  --wait-start=VALUE                  wait for the standby to start (timeout in seconds, default 30)
  --wait-sync[=VALUE]                 wait for the node record to synchronise to the standby
                                        (optional timeout in seconds)

STANDBY UNREGISTER

  "standby unregister" unregisters an inactive standby node.

  --node-id                           ID of node to unregister (optional, used when the node to
                                         unregister is offline)

STANDBY PROMOTE

  "standby promote" promotes a standby node to primary.

  --dry-run                           perform checks etc. but don't actually promote the node
  -F, --force                         ignore warnings and continue anyway
  --siblings-follow                   have other standbys follow new primary

STANDBY FOLLOW

  "standby follow" instructs a standby node to follow a new primary.

  --dry-run                           perform checks but don't actually follow the new primary
  --upstream-node-id                  node ID of the new primary
  -W, --wait                          wait for a primary to appear

STANDBY SWITCHOVER

  "standby switchover" promotes a standby node to primary, and demotes the previous primary to a standby.

  --always-promote                    promote standby even if behind original primary
  --dry-run                           perform checks etc. but don't actually execute switchover
  -F, --force                         ignore warnings and continue anyway
  --force-rewind[=VALUE]              use "pg_rewind" to reintegrate the old primary if necessary
                                        (PostgreSQL 9.4 - provide "pg_rewind" path)
  -R, --remote-user=USERNAME          database server username for SSH operations (default: "{user}")
  -S, --superuser=USERNAME            superuser to use, if repmgr user is not superuser
  --repmgrd-no-pause                  don't pause repmgrd
  --siblings-follow                   have other standbys follow new primary
"#;

const NODE: &str = r#"Usage:
    repmgr [OPTIONS] node status
    repmgr [OPTIONS] node check
    repmgr [OPTIONS] node rejoin
    repmgr [OPTIONS] node service

NODE STATUS

  "node status" displays an overview of a node's basic information and replication status.

  Configuration file required, runs on local node only.

    --csv                 emit output as CSV
    --json                emit output as JSON

NODE CHECK

  "node check" performs some health checks on a node from a replication perspective.

  Configuration file required, runs on local node only.

  Connection options:
    -S, --superuser=USERNAME  superuser to use, if repmgr user is not superuser

  Output options:
    --csv                     emit output as CSV (not available for individual check output)
    --nagios                  emit output in Nagios format (individual check output only)
    --json                    emit output as JSON

  Following options check an individual status:
    --archive-ready           number of WAL files ready for archiving
    --downstream              whether all downstream nodes are connected
    --upstream                whether the node is connected to its upstream
    --replication-lag         replication lag in seconds (standbys only)
    --role                    check node has expected role
    --slots                   check for inactive replication slots
    --missing-slots           check for missing replication slots
    --repmgrd                 check if repmgrd is running
    --data-directory-config   check repmgr's data directory configuration

NODE REJOIN

  "node rejoin" enables a dormant (stopped) node to be rejoined to the replication cluster.

  Configuration file required, runs on local node only.

    --dry-run               check that the prerequisites are met for rejoining the node
                              (including usability of "pg_rewind" if requested)
    --force-rewind[=VALUE]  execute "pg_rewind" if necessary
                              (PostgreSQL 9.4 - provide full "pg_rewind" path)
    --config-files          comma-separated list of configuration files to retain
                            after executing "pg_rewind"
    --config-archive-dir    directory to temporarily store retained configuration files
                              (default: /tmp)
    -W, --no-wait           don't wait for the node to rejoin cluster

NODE SERVICE

  "node service" executes a system service command to stop/start/restart/reload a node
                   or optionally display which command would be executed

  Configuration file required, runs on local node only.

    --dry-run                 show what action would be performed, but don't execute it
    --action                  action to perform (one of "start", "stop", "restart" or "reload")
    --list-actions            show what command would be performed for each action
    --checkpoint              issue a CHECKPOINT before stopping or restarting the node
    -S, --superuser=USERNAME  superuser to use, if repmgr user is not superuser
"#;

const CLUSTER: &str = r#"Usage:
    repmgr [OPTIONS] cluster show
    repmgr [OPTIONS] cluster matrix
    repmgr [OPTIONS] cluster crosscheck
    repmgr [OPTIONS] cluster event
    repmgr [OPTIONS] cluster cleanup

CLUSTER SHOW

  "cluster show" displays a list showing the status of each node in the cluster.

  Configuration file or database connection required.

    --csv                     emit output as CSV (with a subset of fields)
    --compact                 display only a subset of fields
    --json                    emit output as JSON

CLUSTER MATRIX

  "cluster matrix" displays a matrix showing connectivity between nodes, seen from this node.

  Configuration file or database connection required.

    --csv                     emit output as CSV

CLUSTER CROSSCHECK

  "cluster crosscheck" displays a matrix showing connectivity between nodes, seen from all nodes.

  Configuration file or database connection required.

    --csv                     emit output as CSV

CLUSTER EVENT

  "cluster event" lists recent events logged in the "repmgr.events" table.

    --limit                   maximum number of events to display (default: 20)
    --all                     display all events (overrides --limit)
    --event                   filter specific event
    --node-id                 restrict entries to node with this ID
    --node-name               restrict entries to node with this name
    --compact                 omit "Details" column    --csv                     emit output as CSV
    --json                    emit output as JSON

CLUSTER CLEANUP

  "cluster cleanup" purges records from the "repmgr.monitoring_history" table.

    -k, --keep-history=VALUE  retain indicated number of days of history (default: 0)
"#;

const WITNESS: &str = r#"Usage:
    repmgr [OPTIONS] witness register
    repmgr [OPTIONS] witness unregister

WITNESS REGISTER

  "witness register" registers a witness node.

  Requires provision of connection information for the primary node,
  typically usually just the host name.

  -h/--host                host name of the primary node
  --dry-run                check prerequisites but don't make any changes
  -F, --force              overwrite an existing node record

WITNESS UNREGISTER

  "witness unregister" unregisters a witness node.

  --dry-run                check prerequisites but don't make any changes
  -F, --force              unregister when witness node not running
  --node-id                node ID of the witness node (provide if executing on
                             another node)
"#;

const SERVICE: &str = r#"Usage:
    repmgr [OPTIONS] service status
    repmgr [OPTIONS] service pause
    repmgr [OPTIONS] service unpause

SERVICE STATUS

  "service status" shows the status of repmgrd on each node in the cluster

    --csv                     emit output as CSV
    --detail                  show additional detail
    --json                    emit output as JSON
    --verbose                 show text of database connection error messages

SERVICE PAUSE

  "service pause" instructs repmgrd on each node to pause failover detection

    --dry-run               check if nodes are reachable but don't pause repmgrd

SERVICE UNPAUSE

  "service unpause"  instructs repmgrd on each node to resume failover detection

    --dry-run               check if nodes are reachable but don't unpause repmgrd

"#;

const DAEMON: &str = r#"Usage:
    repmgr [OPTIONS] daemon start
    repmgr [OPTIONS] daemon stop

DAEMON START

  "daemon start" attempts to start repmgrd on the local node

    --dry-run               check prerequisites but don't start repmgrd
    -w/--wait               wait for repmgrd to start (default: 15 seconds)
    --no-wait               don't wait for repmgrd to start

DAEMON STOP

  "daemon stop" attempts to stop repmgrd on the local node

    --dry-run               check prerequisites but don't stop repmgrd
    -w/--wait               wait for repmgrd to stop (default: 15 seconds)
    --no-wait               don't wait for repmgrd to stop

"#;

/// The defaults repmgr's help shows: what the options given so far, the
/// `PG*` variables and the OS user make of -d, -h, -p and -U (libpq's
/// defaults, with the OS user always the user, as repmgr sets it).
struct Defaults {
    dbname: String,
    host: Option<String>,
    port: String,
    user: String,
}

impl Defaults {
    fn new(opts: &Opts) -> Self {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let os_user = nix::unistd::User::from_uid(nix::unistd::Uid::effective())
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_default();
        let user = opts.username.clone().unwrap_or(os_user);
        Defaults {
            dbname: opts
                .dbname
                .clone()
                .or_else(|| env("PGDATABASE"))
                .unwrap_or_else(|| user.clone()),
            host: opts
                .host
                .clone()
                .or_else(|| env("PGHOST"))
                .or_else(|| env("PGHOSTADDR")),
            port: opts
                .port
                .clone()
                .or_else(|| env("PGPORT"))
                .unwrap_or_else(|| "5432".into()),
            user,
        }
    }
}

/// The help for `family` (as typed; None or an unknown family: the general
/// help), as the running user should see it.
pub fn text(family: Option<&str>, opts: &Opts) -> String {
    let d = Defaults::new(opts);
    let body = match family.map(str::to_ascii_lowercase).as_deref() {
        Some("primary" | "master") => PRIMARY.to_string(),
        Some("standby") => STANDBY.replace("{user}", &d.user),
        Some("node") => NODE.to_string(),
        Some("cluster") => CLUSTER.to_string(),
        Some("witness") => WITNESS.to_string(),
        Some("service") => SERVICE.to_string(),
        Some("daemon") => DAEMON.to_string(),
        _ => GENERAL
            .replace("{dbname}", &d.dbname)
            .replace(
                "{host}",
                &d.host
                    .map(|h| format!(" (default: \"{h}\")"))
                    .unwrap_or_default(),
            )
            .replace("{port}", &d.port)
            .replace("{user}", &d.user),
    };
    let banner = if nix::unistd::Uid::effective().is_root() {
        ROOT_BANNER
    } else {
        ""
    };
    format!("{HEADER}{banner}{body}{FOOTER}")
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
    fn every_family_has_its_own_help() {
        let o = Opts::default();
        let general = text(None, &o);
        assert!(general.contains("General options:"));
        for (family, _) in super::super::FAMILIES {
            let t = text(Some(family), &o);
            assert_ne!(t, general, "{family}");
            assert!(t.ends_with("repmgr home page: <https://repmgr.org/>\n"));
        }
        assert_eq!(text(Some("MASTER"), &o), text(Some("primary"), &o));
        assert_eq!(text(Some("frob"), &o), general);
    }

    #[test]
    fn defaults_follow_the_options_given() {
        let o = Opts {
            username: Some("alice".into()),
            port: Some("6000".into()),
            host: Some("db1".into()),
            ..Opts::default()
        };
        let t = text(None, &o);
        assert!(
            t.contains("database server host (default: \"db1\")\n"),
            "{t}"
        );
        assert!(t.contains("(default: \"6000\")"), "{t}");
        assert!(t.contains("connect as (default: \"alice\")"), "{t}");
        assert!(text(Some("standby"), &o).contains("SSH operations (default: \"alice\")"));
    }
}
