//! The repmgr CLI: one module per command family, one function per action
//! (repmgr's `do_<family>_<action>`), all returning `Result` to `main`.

pub mod cluster;
mod context;
pub mod daemon;
pub mod node;
pub mod primary;
pub mod rejoin;
pub mod service;
pub mod standby;
pub mod witness;

use crate::cli::{self, Action, Command, Opts};
use crate::config::{self, Config, Loaded};
use crate::db;
use crate::error::{Error, Result, Usage};
use crate::logging::{self, RepmgrLevel};

pub use crate::conninfo::{looks_like_conninfo, parse_described as parse_conninfo};
pub use crate::db::reach::{connect_node, connect_record, find_primary, reach_all, Reached};
pub use context::{check_registration, Ctx, APP_NAME};

/// Parses, checks and runs one repmgr command line. Only `main` exits.
pub fn main(args: &[String]) -> Result<()> {
    logging::set_terse(cli::wants_terse(args));
    let command = cli::parse(args)?;
    let run = match command {
        Command::Help(family, opts) => {
            print!("{}", cli::help::text(family.as_deref(), &opts));
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
        Command::DumpConfig(opts) => {
            // as repmgr: a missing file is no error here, the defaults show
            let text = match config::locate(opts.config_file.as_deref())? {
                Some(p) => config::load_file(&p)?.dump(),
                None => config::dump_defaults(),
            };
            print!("{text}");
            return Ok(());
        }
        Command::Run(run) => run,
    };
    let (action, opts, arg) = (run.action, *run.opts, run.arg);
    // getopt complains as it reads, before anything else is said
    cli::print_getopt_errors(&run.usage.getopt);
    let getopt_failed = !run.usage.getopt.is_empty();
    let usage = Usage {
        getopt: Vec::new(),
        ..run.usage
    };

    let cli_level = opts.log_level.as_deref().and_then(RepmgrLevel::parse);
    logging::init(effective_level(&opts, cli_level, RepmgrLevel::Info), false);
    logging::set_terse(opts.terse);

    let loaded = load_config(&opts, action)?;
    if let Some(l) = &loaded {
        logging::set_level(effective_level(&opts, cli_level, l.config.log_level));
        for w in &l.warnings {
            crate::log_warning!("{w}");
        }
        if opts.log_to_file {
            // as repmgr: --log-to-file logs as repmgrd does, syslog included
            logging::set_facility(&l.config.log_facility, c"repmgr");
        }
        if opts.log_to_file && !l.config.log_file.is_empty() {
            logging::sink().open(&l.config.log_file).map_err(|e| {
                Error::config(format!("unable to open log file \"{}\"", l.config.log_file))
                    .detail(e.to_string())
            })?;
        }
    }

    let checked = cli::checks::parameters(
        action,
        &opts,
        loaded.as_ref().map(|l| &l.config),
        arg.as_deref(),
    );
    if !checked.errors.is_empty() {
        return Err(Error::usage(checked.errors, usage));
    }
    if getopt_failed {
        return Err(Error::usage(Vec::new(), usage));
    }
    if !checked.warnings.is_empty() && !opts.terse {
        crate::log_warning!("following problems with command line parameters detected:");
        for w in &checked.warnings {
            eprintln!("  {w}");
        }
    }

    // Every query of this command waits at most this long for its answer
    // (a frozen server never answers; see db::session).
    let bound = loaded
        .as_ref()
        .map_or(Config::default().async_query_timeout, |l| {
            l.config.async_query_timeout
        });
    db::connect::set_query_bound(std::time::Duration::from_secs(bound.max(1) as u64));

    let ctx = Ctx {
        opts,
        action,
        arg,
        loaded,
        default_config: Config::default(),
    };
    check_named_node(&ctx)?;
    dispatch(&ctx)
}

/// As repmgr, before the action: a node named with --node-id (or
/// --node-name), for the actions that take one, must have a record.
fn check_named_node(ctx: &Ctx) -> Result<()> {
    use Action::*;
    let takes_id = matches!(
        ctx.action,
        PrimaryUnregister
            | StandbyUnregister
            | WitnessUnregister
            | ClusterCleanup
            | ClusterEvent
            | ClusterMatrix
            | ClusterCrosscheck
    );
    let id = match takes_id {
        true => cli::parse_int_option("node-id", &ctx.opts.node_id)?,
        false => None,
    };
    let name = match matches!(ctx.action, StandbyUnregister | ClusterEvent) && id.is_none() {
        true => ctx.opts.node_name.as_deref(),
        false => None,
    };
    if id.is_none() && name.is_none() {
        return Ok(());
    }
    let mut c = match ctx
        .loaded
        .as_ref()
        .filter(|l| !l.config.conninfo.is_empty())
    {
        Some(_) => ctx.connect_local()?,
        None => match ctx.conninfo_from_options()? {
            Some(ci) => connect_node(&ci, "", 0)?,
            None => return Ok(()),
        },
    };
    // without the metadata the action says so itself
    if !db::schema::exists(&mut c)? {
        return Ok(());
    }
    match (id, name) {
        (Some(id), _) if db::nodes::get(&mut c, id)?.is_none() => Err(Error::config(format!(
            "node {id} (specified with --node-id) not found"
        ))),
        (None, Some(n)) if db::nodes::get_by_name(&mut c, n)?.is_none() => Err(Error::config(
            format!("node \"{n}\" (specified with --node-name) not found"),
        )),
        _ => Ok(()),
    }
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
        // as repmgr: cluster show needs no file when given where to connect
        None if action == Action::ClusterShow && connection_params_given(opts) => Ok(None),
        None => Err(Error::config(
            "no node information was found - please supply a configuration file",
        )
        .hint("provide one with -f/--config-file, or create ./repmgr.conf or /etc/repmgr.conf")),
    }
}

/// Any of -h/-p/-U/-d given (repmgr's `connection_param_provided`).
fn connection_params_given(opts: &Opts) -> bool {
    opts.host.is_some() || opts.port.is_some() || opts.username.is_some() || opts.dbname.is_some()
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
