//! The repmgr CLI: one module per command family, one function per action
//! (repmgr's `do_<family>_<action>`), all returning `Result` to `main`.

pub mod cluster;
pub mod daemon;
pub mod node;
pub mod primary;
pub mod rejoin;
pub mod service;
pub mod standby;
pub mod witness;

use postgres::Client;

use crate::cli::{self, Action, Command, Opts};
use crate::config::{self, Config, Loaded};
use crate::conninfo::ConnInfo;
use crate::db;
use crate::error::{Error, Result};
use crate::logging::{self, RepmgrLevel};

/// The application name repmgr's connections use.
pub const APP_NAME: &str = "repmgr";

/// Everything an action needs: the parsed options and the configuration.
pub struct Ctx {
    pub opts: Opts,
    pub action: Action,
    /// The optional positional word (`standby clone HOST`).
    pub arg: Option<String>,
    pub loaded: Option<Loaded>,
    /// Defaults stand in when no configuration file was found.
    default_config: Config,
}

impl Ctx {
    /// The configuration; defaults when running without a file (clone).
    pub fn config(&self) -> &Config {
        self.loaded
            .as_ref()
            .map(|l| &l.config)
            .unwrap_or(&self.default_config)
    }

    /// The configuration, which this action cannot do without, checked for
    /// the keys that identify the node.
    pub fn node_config(&self, need_data_directory: bool) -> Result<&Config> {
        let loaded = self.loaded.as_ref().ok_or_else(|| {
            Error::config("no configuration file provided and none found").hint(
                "provide one with -f/--config-file, or create ./repmgr.conf or /etc/repmgr.conf",
            )
        })?;
        // Seed-era files (cluster/node/conninfo) never had data_directory.
        loaded
            .config
            .check_required(need_data_directory && !loaded.seed_format)?;
        Ok(&loaded.config)
    }

    /// The local node's conninfo from repmgr.conf.
    pub fn local_conninfo(&self) -> Result<ConnInfo> {
        let cfg = self.node_config(false)?;
        parse_conninfo(&cfg.conninfo, "conninfo in the configuration file")
    }

    pub fn connect_local(&self) -> Result<Client> {
        let ci = self.local_conninfo()?;
        let cfg = self.config();
        connect_node(&ci, &cfg.node_name, cfg.node_id.unwrap_or(0))
    }

    /// The conninfo given with -d/-h/-p/-U, if any: `-d` may be a whole
    /// conninfo string; the configured conninfo's other keys (user, dbname,
    /// passfile…) are the base, as repmgr does.
    pub fn conninfo_from_options(&self) -> Result<Option<ConnInfo>> {
        self.conninfo_for(&self.opts)
    }

    /// [`Ctx::conninfo_from_options`] for options other than the parsed ones
    /// (e.g. with the positional HOST folded into -h).
    pub fn conninfo_for(&self, o: &Opts) -> Result<Option<ConnInfo>> {
        if o.dbname.is_none() && o.host.is_none() && o.port.is_none() && o.username.is_none() {
            return Ok(None);
        }
        let mut ci = match self.loaded.as_ref() {
            Some(l) if !l.config.conninfo.is_empty() => {
                let mut base =
                    parse_conninfo(&l.config.conninfo, "conninfo in the configuration file")?;
                for k in ["host", "hostaddr", "port", "application_name"] {
                    base.remove(k);
                }
                base
            }
            _ => ConnInfo::default(),
        };
        if let Some(d) = &o.dbname {
            if looks_like_conninfo(d) {
                let given = parse_conninfo(d, "-d/--dbname")?;
                for (k, v) in given.iter() {
                    ci.set(k, v);
                }
            } else {
                ci.set("dbname", d);
            }
        }
        if let Some(h) = &o.host {
            ci.remove("hostaddr");
            ci.set("host", h);
        }
        if let Some(p) = &o.port {
            ci.set("port", p);
        }
        if let Some(u) = &o.username {
            ci.set("user", u);
        }
        Ok(Some(ci))
    }
}

/// Whether a -d value is a conninfo string rather than a database name.
pub fn looks_like_conninfo(s: &str) -> bool {
    s.contains('=') || s.starts_with("postgresql://") || s.starts_with("postgres://")
}

pub fn parse_conninfo(s: &str, what: &str) -> Result<ConnInfo> {
    ConnInfo::parse(s).map_err(|e| {
        Error::config(format!("unable to parse the {what}")).detail(format!("{e}: \"{s}\""))
    })
}

/// Connects to a node, with an error naming the node.
pub fn connect_node(ci: &ConnInfo, node_name: &str, node_id: i32) -> Result<Client> {
    db::connect::connect(ci, APP_NAME).map_err(|e| {
        let what = if node_name.is_empty() {
            "unable to connect to the database".to_string()
        } else {
            format!("unable to connect to node \"{node_name}\" (ID: {node_id})")
        };
        let detail = e.detail.clone().unwrap_or_else(|| e.message().to_string());
        let hint = e
            .hint
            .unwrap_or_else(|| "check the node is running and its conninfo is correct".into());
        Error::new(e.code, what).detail(detail).hint(hint)
    })
}

/// Connects to a registered node by its record.
pub fn connect_record(n: &db::nodes::NodeRecord) -> Result<Client> {
    let ci = parse_conninfo(
        &n.conninfo,
        &format!("conninfo of node \"{}\"", n.node_name),
    )?;
    connect_node(&ci, &n.node_name, n.node_id)
}

/// Finds the current primary from a node's metadata: the registered active
/// primary if it answers and is not in recovery, else any registered node
/// that answers out of recovery. All nodes are asked at once, so a hung
/// node costs one connect deadline in total. Returns its record and
/// connection.
pub fn find_primary(meta: &mut Client) -> Result<Option<(db::nodes::NodeRecord, Client)>> {
    use db::nodes::NodeType;
    let nodes: Vec<_> = db::nodes::all(meta)?
        .into_iter()
        .filter(|n| n.node_type != NodeType::Witness)
        .collect();
    let mut primaries: Vec<Reached> = reach_all(&nodes)
        .into_iter()
        .filter(|r| r.in_recovery == Some(false) && r.conn.is_some())
        .collect();
    // The registered active primary first, then by node_id.
    primaries.sort_by_key(|r| {
        (
            !(r.node.node_type == NodeType::Primary && r.node.active),
            r.node.node_id,
        )
    });
    Ok(primaries
        .into_iter()
        .next()
        .and_then(|r| r.conn.map(|c| (r.node, c))))
}

/// repmgr's refusals when registering this node as `as_type`: its node_id
/// taken by a node of another type, its record already there (without
/// -F), or its node_name used by another node. Returns the existing record.
pub fn check_registration(
    c: &mut impl postgres::GenericClient,
    cfg: &Config,
    as_type: db::nodes::NodeType,
    force: bool,
) -> Result<Option<db::nodes::NodeRecord>> {
    let node_id = cfg.node_id.unwrap_or_default();
    let existing = db::nodes::get(c, node_id)?;
    if let Some(e) = &existing {
        if e.node_type != as_type {
            return Err(Error::config(format!(
                "node ID {node_id} is already registered as a {} (\"{}\")",
                e.node_type, e.node_name
            ))
            .hint("node_id must be unique in the cluster; unregister that node first"));
        }
        if !force {
            return Err(Error::config("this node is already registered")
                .detail(format!(
                    "node \"{}\" (ID: {node_id}) is registered as {as_type}",
                    e.node_name
                ))
                .hint("use -F/--force to overwrite the existing node record"));
        }
    }
    if let Some(other) = db::nodes::get_by_name(c, &cfg.node_name)? {
        if other.node_id != node_id {
            return Err(Error::config(format!(
                "node name \"{}\" is already in use by node ID {}",
                cfg.node_name, other.node_id
            ))
            .hint(
                "node_name must be unique in the cluster: set another node_name in repmgr.conf",
            ));
        }
    }
    Ok(existing)
}

/// A registered node, connected to if it answered within its deadline.
pub struct Reached {
    pub node: db::nodes::NodeRecord,
    pub conn: Option<Client>,
    /// Some(false) for a node running as primary.
    pub in_recovery: Option<bool>,
}

/// Connects to every node at once (one deadline in total, not one per
/// node) and asks each whether it is in recovery.
pub fn reach_all(nodes: &[db::nodes::NodeRecord]) -> Vec<Reached> {
    let handles: Vec<_> = nodes
        .iter()
        .cloned()
        .map(|node| {
            std::thread::spawn(move || {
                let mut conn = connect_record(&node).ok();
                let in_recovery = conn.as_mut().and_then(|c| db::server::in_recovery(c).ok());
                Reached {
                    node,
                    conn,
                    in_recovery,
                }
            })
        })
        .collect();
    nodes
        .iter()
        .zip(handles)
        .map(|(n, h)| {
            h.join().unwrap_or_else(|_| Reached {
                node: n.clone(),
                conn: None,
                in_recovery: None,
            })
        })
        .collect()
}

/// Parses, checks and runs one repmgr command line. Only `main` exits.
pub fn main(args: &[String]) -> Result<()> {
    logging::set_terse(cli::wants_terse(args));
    let command = cli::parse(args)?;
    let (action, opts, arg) = match command {
        Command::Help(topic) => {
            print!("{}", cli::help::text(topic.as_ref()));
            return Ok(());
        }
        Command::Version => {
            println!("repmgr {}", cli::help::VERSION);
            return Ok(());
        }
        Command::VersionNumber => {
            println!("{}", cli::help::version_number());
            return Ok(());
        }
        Command::Run(a, o, arg) => (a, *o, arg),
    };

    let cli_level = match &opts.log_level {
        Some(l) => Some(RepmgrLevel::parse(l).ok_or_else(|| {
            Error::config(format!("invalid log level \"{l}\" provided")).hint(
                "valid log levels are DEBUG, INFO, NOTICE, WARNING, ERROR, ALERT, CRIT or EMERG",
            )
        })?),
        None => None,
    };
    logging::init(effective_level(&opts, cli_level, RepmgrLevel::Info), false);
    logging::set_terse(opts.terse);

    let loaded = load_config(&opts, action)?;
    if let Some(l) = &loaded {
        logging::set_level(effective_level(&opts, cli_level, l.config.log_level));
        for w in &l.warnings {
            crate::log_warning!("{w}");
        }
        if opts.log_to_file && !l.config.log_file.is_empty() {
            logging::sink().open(&l.config.log_file).map_err(|e| {
                Error::config(format!("unable to open log file \"{}\"", l.config.log_file))
                    .detail(e.to_string())
            })?;
        }
    }

    let ctx = Ctx {
        opts,
        action,
        arg,
        loaded,
        default_config: Config::default(),
    };
    dispatch(&ctx)
}

fn effective_level(opts: &Opts, cli: Option<RepmgrLevel>, configured: RepmgrLevel) -> RepmgrLevel {
    if opts.quiet {
        return RepmgrLevel::Error;
    }
    let level = cli.unwrap_or(configured);
    if opts.verbose && level > RepmgrLevel::Info {
        RepmgrLevel::Info
    } else {
        level
    }
}

/// Loads repmgr.conf in repmgr's search order. `standby clone` may run
/// without one, as the seed says; other actions need it.
fn load_config(opts: &Opts, action: Action) -> Result<Option<Loaded>> {
    let path = config::locate(opts.config_file.as_deref())?;
    match path {
        Some(p) => {
            crate::log_debug!("using configuration file \"{}\"", p.display());
            Ok(Some(config::load_file(&p)?))
        }
        None if action == Action::StandbyClone => Ok(None),
        None => Err(
            Error::config("no configuration file provided and none found").hint(
                "provide one with -f/--config-file, or create ./repmgr.conf or /etc/repmgr.conf",
            ),
        ),
    }
}

fn dispatch(ctx: &Ctx) -> Result<()> {
    use Action::*;
    match ctx.action {
        PrimaryRegister => primary::register(ctx),
        PrimaryUnregister => primary::unregister(ctx),
        StandbyRegister => standby::register(ctx),
        StandbyUnregister => standby::unregister(ctx),
        StandbyClone => standby::clone(ctx),
        StandbyPromote => standby::promote(ctx),
        StandbyFollow => standby::follow(ctx),
        StandbySwitchover => standby::switchover(ctx),
        ClusterShow => cluster::show(ctx),
        ClusterEvent => cluster::event(ctx),
        ClusterCleanup => cluster::cleanup(ctx),
        ClusterMatrix => cluster::matrix(ctx),
        ClusterCrosscheck => cluster::crosscheck(ctx),
        NodeStatus => node::status(ctx),
        NodeCheck => node::check(ctx),
        NodeService => node::service(ctx),
        ServiceStatus => service::status(ctx),
        ServicePause => service::pause(ctx, true),
        ServiceUnpause => service::pause(ctx, false),
        DaemonStart => daemon::start(ctx),
        DaemonStop => daemon::stop(ctx),
        NodeRejoin => rejoin::rejoin(ctx),
        WitnessRegister => witness::register(ctx),
        WitnessUnregister => witness::unregister(ctx),
        NodeControl => node::control(ctx),
    }
}
