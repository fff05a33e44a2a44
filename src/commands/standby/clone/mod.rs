//! `repmgr standby clone [HOST]`: copy an upstream's data directory (with
//! pg_basebackup, or rsync with `-r/--rsync-only`) and write the standby's
//! replication configuration. The server is not started.
//!
//! Runs with or without a repmgr.conf (the seed's way:
//! `repmgr -D /data standby clone node1`). Without one, `application_name`
//! in `primary_conninfo` is this host's short name (so each host's standby
//! is told apart in `pg_stat_replication`), or "repmgr" if that is unknown.

mod basebackup;
mod checks;
mod rsync;
mod shared;

use shared::{remove_entry, Method};

use std::fs;
use std::io::IsTerminal;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::db::Session;

use checks::{SlotState, TargetState};

use crate::commands::{connect_node, parse_conninfo, Ctx};
use crate::config::Config;
use crate::conninfo::ConnInfo;
use crate::db::{self, replication as repl};
use crate::error::{Error, ExitCode, Result};
use crate::events::{self, Event};
use crate::pgtools::{self, PgBin};
use crate::process;
use crate::replconf::{self, ReplicationConfig};

/// `repmgr standby clone`.
pub fn clone(ctx: &Ctx) -> Result<()> {
    let cfg = ctx.config();
    let o = &ctx.opts;
    let target = target_dir(ctx)?;
    if o.replication_conf_only {
        return conf_only(ctx, &target);
    }
    if o.no_upstream_connection {
        return Err(Error::config(
            "--no-upstream-connection can only be used with --replication-conf-only",
        )
        .detail("cloning from Barman is not supported; a clone always reads from the upstream")
        .hint(
            "drop --no-upstream-connection, or add --replication-conf-only --upstream-conninfo=...",
        ));
    }
    let method = if o.rsync_only {
        Method::Rsync
    } else {
        Method::Basebackup
    };
    let external = external_mode(ctx)?;
    if o.verify_backup && method == Method::Rsync {
        return Err(
            Error::config("--verify-backup needs pg_basebackup's manifest")
                .hint("drop --verify-backup or -r/--rsync-only"),
        );
    }
    let apply_delay = apply_delay(ctx)?;
    let bin = PgBin::new(o.pg_bindir.as_deref(), cfg);
    if method == Method::Rsync {
        checks::rsync_available()?;
    }

    // The target first: nothing is worth connecting for if it is unusable.
    let state = checks::target(&target, o.force, method)?;

    let source_ci = source_conninfo(ctx)?;
    let (host_shown, port_shown) = shown_host_port(&source_ci);
    crate::log_notice!("destination directory \"{}\" provided", target.display());
    crate::log_info!("connecting to source node");
    let mut conn = connect_source(&source_ci)?;
    let version = db::server::version_num(&mut conn)?;
    if version < 100000 {
        return Err(Error::config(format!(
            "the upstream runs PostgreSQL {}; cloning needs PostgreSQL 10 or later",
            version / 10000
        )));
    }
    let files = repl::file_settings(&mut conn)?;
    let source_datadir = files.get("data_directory").cloned();
    let local = is_local_source(&source_ci);
    if local {
        if let Some(sd) = &source_datadir {
            if same_dir(Path::new(sd), &target) {
                return Err(Error::config(format!(
                    "target data directory \"{}\" is the source server's own data directory",
                    target.display()
                ))
                .hint("choose another directory with -D/--pgdata"));
            }
        }
    }

    let slot = crate::ops::follow::slot_name(cfg);
    if cfg.use_replication_slots && cfg.node_id.is_none() {
        return Err(Error::config("use_replication_slots needs node_id")
            .detail("the slot is named repmgr_slot_<node_id>")
            .hint("set node_id in this node's repmgr.conf"));
    }
    let slot_state = match &slot {
        None => SlotState::NotUsed,
        Some(s) => match repl::slot_active(&mut conn, s)? {
            Some(true) => return Err(Error::config(format!(
                "replication slot \"{s}\" on the upstream is in use by another server"
            ))
            .hint(
                "check node_id is unique in the cluster; drop the slot once its standby is gone",
            )),
            Some(false) => SlotState::Exists,
            None => SlotState::Missing,
        },
    };
    let settings = repl::settings(&mut conn, version)?;
    checks::upstream(&settings, cfg, method, slot_state)?;
    let ident = checks::replication_connection(&bin, &with_replication_user(ctx, &source_ci))?;
    crate::log_info!("replication connection works (IDENTIFY_SYSTEM: {ident})");

    let tablespaces = repl::tablespaces(&mut conn)?;
    check_tablespaces(&tablespaces, &cfg.tablespace_mapping, local)?;
    if method == Method::Rsync && source_datadir.is_none() {
        return Err(Error::config("unable to read the upstream's data_directory")
            .detail("an rsync clone copies that directory; reading it needs superuser or pg_read_all_settings")
            .hint("connect as a superuser with -U, or grant pg_read_all_settings to the user"));
    }
    let rc = replication_config(ctx, &mut conn, &source_ci, slot.as_deref(), apply_delay)?;

    if o.dry_run {
        crate::log_info!("all prerequisites for \"standby clone\" are met");
        match state {
            TargetState::Missing => {
                crate::log_info!("would create data directory \"{}\"", target.display())
            }
            TargetState::Empty => {
                crate::log_info!("would use empty directory \"{}\"", target.display())
            }
            TargetState::NonEmpty if method == Method::Basebackup => crate::log_info!(
                "would remove the contents of \"{}\" (-F/--force) before cloning",
                target.display()
            ),
            TargetState::NonEmpty => crate::log_info!(
                "would bring \"{}\" up to date with rsync --delete (-F/--force)",
                target.display()
            ),
        }
        if slot_state == SlotState::Missing {
            crate::log_info!(
                "would create replication slot \"{}\" on the upstream",
                slot.as_deref().unwrap_or("")
            );
        }
        match method {
            Method::Basebackup => crate::log_info!(
                "would execute: {}",
                process::display_command(&basebackup::command(
                    &bin,
                    cfg,
                    &with_replication_user(ctx, &source_ci),
                    &target,
                    o.fast_checkpoint,
                    slot.as_deref(),
                    false
                ))
            ),
            Method::Rsync => crate::log_info!(
                "would copy \"{}\" with rsync inside a backup started on the upstream",
                source_datadir.as_deref().unwrap_or("")
            ),
        }
        crate::log_info!("would write primary_conninfo = '{}'", rc.primary_conninfo);
        crate::log_notice!("dry run complete: nothing was changed");
        return Ok(());
    }

    let created_slot = if slot_state == SlotState::Missing {
        let s = slot.as_deref().unwrap_or_default();
        repl::create_physical_slot(&mut conn, s)?;
        crate::log_notice!("replication slot \"{s}\" created on the upstream");
        true
    } else {
        false
    };
    let progress = std::io::stderr().is_terminal();
    let prepared = match prepare_target(&target, state, method) {
        Ok(p) => p,
        Err(e) => {
            drop_slot_after_failure(&mut conn, created_slot, slot.as_deref());
            return Err(e);
        }
    };
    let copied = match method {
        Method::Basebackup => {
            let cmd = basebackup::command(
                &bin,
                cfg,
                &with_replication_user(ctx, &source_ci),
                &target,
                o.fast_checkpoint,
                slot.as_deref(),
                progress,
            );
            basebackup::run(cmd, &target, progress).and_then(|_| {
                if o.verify_backup {
                    basebackup::verify(&bin, &target)
                } else {
                    Ok(())
                }
            })
        }
        Method::Rsync => {
            let job = rsync::RsyncJob {
                source: rsync::RsyncSource {
                    remote_host: (!local).then(|| host_shown.clone()),
                    remote_user: o.remote_user.clone(),
                    ssh_options: cfg.ssh_options.clone(),
                    rsync_options: cfg.rsync_options.clone(),
                },
                source_datadir: source_datadir.clone().unwrap_or_default(),
                target: &target,
                tablespaces: &tablespaces,
                mapping: &cfg.tablespace_mapping,
                force: state == TargetState::NonEmpty,
                fast: o.fast_checkpoint,
                progress,
            };
            rsync::run(&mut conn, version, &job).map(|stop| {
                crate::log_info!("backup ended at {}", stop.lsn);
            })
        }
    };
    if let Err(e) = copied {
        prepared.undo(&target);
        drop_slot_after_failure(&mut conn, created_slot, slot.as_deref());
        return Err(e);
    }
    drop(conn);

    if let Some(mode) = external {
        copy_external_files(ctx, &files, &target, mode, local, &host_shown)?;
    }
    replconf::write(&target, version, &rc)?;
    crate::log_info!(
        "replication configuration written to \"{}\"",
        target.display()
    );

    record_event(ctx, &source_ci, &host_shown, &port_shown, method);
    crate::log_notice!("standby clone (using {}) complete", method.name());
    crate::log_notice!("you can now start your PostgreSQL server");
    let start = if cfg.service_start_command.trim().is_empty() {
        format!(
            "{} -D '{}' start",
            bin.path("pg_ctl").display(),
            target.display()
        )
    } else {
        cfg.service_start_command.trim().to_string()
    };
    crate::log_hint!("for example: {start}");
    if ctx.loaded.is_some() {
        crate::log_hint!("after starting the server, you need to register this standby with \"repmgr standby register\"");
    } else {
        crate::log_hint!("after starting the server, register this standby with \"repmgr standby register\" (it needs a repmgr.conf for this node)");
    }
    Ok(())
}

/// `-D`, else `data_directory`, made absolute.
fn target_dir(ctx: &Ctx) -> Result<PathBuf> {
    let given = ctx
        .opts
        .pgdata
        .clone()
        .filter(|d| !d.is_empty())
        .or_else(|| {
            let d = &ctx.config().data_directory;
            (!d.is_empty()).then(|| d.clone())
        })
        .ok_or_else(|| {
            Error::config("no target data directory provided")
                .hint("provide it with -D/--pgdata, or set data_directory in repmgr.conf")
        })?;
    let p = PathBuf::from(&given);
    Ok(if p.is_absolute() {
        p
    } else {
        std::env::current_dir()
            .map_err(|e| {
                Error::config("unable to determine the current directory").detail(e.to_string())
            })?
            .join(p)
    })
}

/// The source: -h/-p/-U/-d or the positional HOST, on top of the configured
/// conninfo's other keys (user, passfile…), as repmgr does.
fn source_conninfo(ctx: &Ctx) -> Result<ConnInfo> {
    let o = &ctx.opts;
    let mut ci = match ctx.conninfo_from_options()? {
        Some(ci) => ci,
        None => match ctx.loaded.as_ref() {
            Some(l) if !l.config.conninfo.is_empty() => {
                let mut base =
                    parse_conninfo(&l.config.conninfo, "conninfo in the configuration file")?;
                for k in ["host", "hostaddr", "port", "application_name"] {
                    base.remove(k);
                }
                base
            }
            _ => ConnInfo::default(),
        },
    };
    if let Some(h) = ctx.arg.as_deref().filter(|h| !h.is_empty()) {
        if let Some(given) = o.host.as_deref() {
            if given != h {
                return Err(Error::config(format!(
                    "two source hosts given: -h \"{given}\" and \"{h}\""
                ))
                .hint("give the upstream host once, with -h/--host or as the last argument"));
            }
        }
        ci.remove("hostaddr");
        ci.set("host", h);
    }
    let named = ctx.arg.is_some()
        || o.host.is_some()
        || o.port.is_some()
        || o.username.is_some()
        || o.dbname.is_some();
    if !named {
        return Err(Error::config("no upstream node to clone from")
            .hint("give the upstream's host with -h/--host or as the last argument (\"repmgr -D /data standby clone node1\"), or a conninfo with -d"));
    }
    Ok(ci)
}

fn connect_source(ci: &ConnInfo) -> Result<Session> {
    connect_node(ci, "", 0).map_err(|mut e| {
        e.messages = vec!["unable to connect to the source node".into()];
        e.with_code(ExitCode::DbConn)
    })
}

/// The source conninfo with `--replication-user` / `replication_user`.
fn with_replication_user(ctx: &Ctx, ci: &ConnInfo) -> ConnInfo {
    let mut ci = ci.clone();
    if let Some(u) = replication_user(ctx) {
        ci.set("user", &u);
    }
    ci
}

fn replication_user(ctx: &Ctx) -> Option<String> {
    ctx.opts
        .replication_user
        .clone()
        .filter(|u| !u.is_empty())
        .or_else(|| {
            let u = &ctx.config().replication_user;
            (!u.is_empty()).then(|| u.clone())
        })
}

/// Host and port as shown in messages and the event.
fn shown_host_port(ci: &ConnInfo) -> (String, String) {
    let host = ci
        .host()
        .or(ci.get("hostaddr"))
        .map(str::to_string)
        .or_else(|| std::env::var("PGHOST").ok())
        .unwrap_or_else(|| "localhost".into());
    let port = ci
        .port()
        .map(str::to_string)
        .or_else(|| std::env::var("PGPORT").ok())
        .unwrap_or_else(|| "5432".into());
    (host, port)
}

/// Whether the source server runs on this host: a unix socket, loopback,
/// localhost, or this host's own name.
pub fn is_local_source(ci: &ConnInfo) -> bool {
    if let Some(a) = ci.get("hostaddr") {
        return a
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    }
    let host = ci
        .host()
        .map(str::to_string)
        .or_else(|| std::env::var("PGHOST").ok())
        .unwrap_or_default();
    is_local_host(&host)
}

pub fn is_local_host(host: &str) -> bool {
    if host.is_empty() || host.starts_with('/') || host.starts_with('@') || host == "localhost" {
        return true;
    }
    if let Ok(ip) = host
        .trim_matches(|c| c == '[' || c == ']')
        .parse::<std::net::IpAddr>()
    {
        return ip.is_loopback();
    }
    let me = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    !me.is_empty()
        && (host.eq_ignore_ascii_case(&me)
            || host.eq_ignore_ascii_case(me.split('.').next().unwrap_or("")))
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// A local clone must put every tablespace somewhere else than the source's
/// own directory; mappings naming no tablespace are reported.
fn check_tablespaces(
    ts: &[repl::Tablespace],
    mapping: &[(String, String)],
    local: bool,
) -> Result<()> {
    for (old, _) in mapping {
        if !ts
            .iter()
            .any(|t| t.location.trim_end_matches('/') == old.trim_end_matches('/'))
        {
            crate::log_warning!(
                "tablespace_mapping: no tablespace on the upstream is at \"{old}\""
            );
        }
    }
    for t in ts {
        let dest = rsync::mapped(&t.location, mapping);
        if local && dest == t.location {
            return Err(Error::config(format!(
                "tablespace \"{}\" at \"{}\" would be cloned onto itself",
                t.name, t.location
            ))
            .detail("the upstream runs on this host and the tablespace has no mapping")
            .hint(format!(
                "add tablespace_mapping='{}=/new/path' to this node's repmgr.conf",
                t.location
            )));
        }
        let dest = Path::new(&dest);
        if dest.is_dir() && fs::read_dir(dest).is_ok_and(|mut d| d.next().is_some()) && !local {
            crate::log_info!(
                "tablespace directory \"{}\" exists and is not empty",
                dest.display()
            );
        }
    }
    Ok(())
}

/// `--copy-external-config-files[=samepath|pgdata]` (no value: samepath).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum External {
    SamePath,
    PgData,
}

fn external_mode(ctx: &Ctx) -> Result<Option<External>> {
    match ctx.opts.copy_external_config_files.as_deref() {
        None => Ok(None),
        Some("" | "samepath") => Ok(Some(External::SamePath)),
        Some("pgdata") => Ok(Some(External::PgData)),
        Some(other) => Err(Error::config(format!(
            "invalid value \"{other}\" for --copy-external-config-files"
        ))
        .hint("use --copy-external-config-files=samepath or =pgdata")),
    }
}

/// `--recovery-min-apply-delay` overrides the configured value.
fn apply_delay(ctx: &Ctx) -> Result<String> {
    let Some(v) = ctx.opts.recovery_min_apply_delay.as_deref() else {
        return Ok(ctx.config().recovery_min_apply_delay.clone());
    };
    let v = v.trim();
    let digits = v.chars().take_while(|c| c.is_ascii_digit()).count();
    let unit = v[digits..].trim();
    if digits == 0 || !["", "ms", "s", "min", "h", "d"].contains(&unit) {
        return Err(Error::config(format!(
            "invalid value \"{v}\" for --recovery-min-apply-delay"
        ))
        .hint("give a number with an optional unit: ms, s, min, h or d (e.g. 5min)"));
    }
    Ok(v.to_string())
}

/// application_name for primary_conninfo: node_name, else this host's name.
fn application_name(cfg: &Config) -> String {
    if !cfg.node_name.is_empty() {
        return cfg.node_name.clone();
    }
    nix::unistd::gethostname()
        .ok()
        .map(|h| {
            h.to_string_lossy()
                .split('.')
                .next()
                .unwrap_or("")
                .to_string()
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "repmgr".into())
}

/// The replication configuration to write. primary_conninfo comes from
/// --upstream-conninfo (as given, application_name added if missing), the
/// upstream node's record (--upstream-node-id), or the source parameters.
fn replication_config(
    ctx: &Ctx,
    conn: &mut Session,
    source: &ConnInfo,
    slot: Option<&str>,
    apply_delay: String,
) -> Result<ReplicationConfig> {
    let cfg = ctx.config();
    let app = application_name(cfg);
    let conninfo = if let Some(given) = ctx.opts.upstream_conninfo.as_deref() {
        let mut ci = parse_conninfo(given, "--upstream-conninfo")?;
        ci.set_if_absent("application_name", &app);
        ci
    } else {
        let upstream = match upstream_record(ctx, conn)? {
            Some(rec) => {
                crate::log_info!(
                    "using the conninfo of upstream node \"{}\" (ID: {})",
                    rec.node_name,
                    rec.node_id
                );
                parse_conninfo(
                    &rec.conninfo,
                    &format!("conninfo of node \"{}\"", rec.node_name),
                )?
            }
            None => source.clone(),
        };
        replconf::primary_conninfo(
            &upstream,
            &app,
            replication_user(ctx).as_deref(),
            &cfg.passfile,
            cfg.use_primary_conninfo_password,
        )
    };
    Ok(ReplicationConfig {
        primary_conninfo: conninfo.to_string(),
        primary_slot_name: slot.map(str::to_string),
        restore_command: cfg.restore_command.clone(),
        archive_cleanup_command: cfg.archive_cleanup_command.clone(),
        recovery_min_apply_delay: apply_delay,
    })
}

/// The node named by --upstream-node-id, from the source's metadata.
fn upstream_record(ctx: &Ctx, conn: &mut Session) -> Result<Option<db::nodes::NodeRecord>> {
    let Some(id) = crate::cli::parse_int_option("upstream-node-id", &ctx.opts.upstream_node_id)?
    else {
        return Ok(None);
    };
    if let Some(me) = ctx.config().node_id {
        if me == id {
            return Err(
                Error::config("a node cannot be its own upstream").hint("check --upstream-node-id")
            );
        }
    }
    if !db::schema::exists(conn)? {
        return Err(Error::config(format!(
            "--upstream-node-id={id} given but the source has no repmgr metadata"
        ))
        .hint("register the cluster first, or give the upstream with --upstream-conninfo"));
    }
    match db::nodes::get(conn, id)? {
        Some(r) => Ok(Some(r)),
        None => Err(
            Error::config(format!("upstream node {id} is not registered"))
                .hint("check the node ID with \"repmgr cluster show\""),
        ),
    }
}

/// What was done to the target, so a failed copy can be undone.
struct Prepared {
    created: bool,
    emptied: bool,
}

impl Prepared {
    /// Removes what a failed copy left: the whole directory if we created
    /// it; its new contents if it was empty or -F had emptied it. An rsync over an existing
    /// copy is left as it is (it was there before).
    fn undo(&self, target: &Path) {
        if self.created {
            crate::log_notice!(
                "removing the partially written data directory \"{}\"",
                target.display()
            );
            if let Err(e) = fs::remove_dir_all(target) {
                crate::log_warning!("unable to remove \"{}\": {e}", target.display());
            }
        } else if self.emptied {
            crate::log_notice!("removing the partial copy in \"{}\"", target.display());
            if let Err(e) = empty_dir(target) {
                crate::log_warning!("{}", e.detail.as_deref().unwrap_or(e.message()));
            }
        }
    }
}

fn prepare_target(target: &Path, state: TargetState, method: Method) -> Result<Prepared> {
    let io = |what: &str, e: std::io::Error| {
        Error::config(format!("unable to {what} \"{}\"", target.display()))
            .detail(e.to_string())
            .hint("check the parent directory exists and belongs to the user running repmgr")
    };
    match state {
        TargetState::Missing => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(target)
                .map_err(|e| io("create", e))?;
            crate::log_info!("created data directory \"{}\"", target.display());
            Ok(Prepared {
                created: true,
                emptied: false,
            })
        }
        // It was empty: emptying it again after a failure loses nothing.
        TargetState::Empty => {
            set_mode_0700(target)?;
            Ok(Prepared {
                created: false,
                emptied: true,
            })
        }
        TargetState::NonEmpty if method == Method::Basebackup => {
            let names: Vec<String> = fs::read_dir(target)
                .map_err(|e| io("read", e))?
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            crate::log_notice!(
                "-F/--force: removing the existing contents of \"{}\": {}",
                target.display(),
                checks::listing(&names)
            );
            empty_dir(target)?;
            set_mode_0700(target)?;
            Ok(Prepared {
                created: false,
                emptied: true,
            })
        }
        TargetState::NonEmpty => {
            crate::log_notice!(
                "-F/--force: bringing the existing data directory \"{}\" up to date with rsync",
                target.display()
            );
            set_mode_0700(target)?;
            Ok(Prepared {
                created: false,
                emptied: false,
            })
        }
    }
}

fn set_mode_0700(p: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(0o700)).map_err(|e| {
        Error::config(format!("unable to set permissions of \"{}\"", p.display()))
            .detail(e.to_string())
            .hint("the data directory must belong to the user running repmgr")
    })
}

fn empty_dir(dir: &Path) -> Result<()> {
    let rd = fs::read_dir(dir).map_err(|e| {
        Error::config(format!("unable to read \"{}\"", dir.display())).detail(e.to_string())
    })?;
    for e in rd.flatten() {
        remove_entry(&e.path())?;
    }
    Ok(())
}

fn drop_slot_after_failure(conn: &mut Session, created: bool, slot: Option<&str>) {
    let (true, Some(s)) = (created, slot) else {
        return;
    };
    // A slot nobody uses keeps WAL on the upstream forever.
    match repl::drop_slot(conn, s) {
        Ok(()) => crate::log_notice!("replication slot \"{s}\" dropped again on the upstream"),
        Err(e) => crate::log_warning!(
            "unable to drop replication slot \"{s}\" on the upstream: {}",
            e.detail.as_deref().unwrap_or(e.message())
        ),
    }
}

/// `--copy-external-config-files`: the upstream's config_file, hba_file
/// and ident_file that live outside its data directory.
fn copy_external_files(
    ctx: &Ctx,
    files: &std::collections::HashMap<String, String>,
    target: &Path,
    mode: External,
    local: bool,
    host: &str,
) -> Result<()> {
    let Some(datadir) = files.get("data_directory") else {
        return Err(Error::config("unable to read the upstream's file locations")
            .detail("--copy-external-config-files needs config_file, hba_file and ident_file, readable by superusers or pg_read_all_settings")
            .hint("connect as a superuser with -U, or copy the files yourself"));
    };
    let inside = |f: &str| Path::new(f).starts_with(Path::new(datadir));
    for key in ["config_file", "hba_file", "ident_file"] {
        let Some(src) = files.get(key).filter(|f| !f.is_empty() && !inside(f)) else {
            continue;
        };
        let dest = match mode {
            External::SamePath => PathBuf::from(src),
            External::PgData => target.join(Path::new(src).file_name().unwrap_or_default()),
        };
        if local && mode == External::SamePath {
            crate::log_info!("{key} \"{src}\" is on this host already; not copied onto itself");
            continue;
        }
        if let Some(parent) = dest.parent() {
            let _ = fs::create_dir_all(parent);
        }
        crate::log_notice!("copying {key} \"{src}\" to \"{}\"", dest.display());
        if local {
            fs::copy(src, &dest).map_err(|e| {
                Error::config(format!(
                    "unable to copy \"{src}\" to \"{}\"",
                    dest.display()
                ))
                .detail(e.to_string())
            })?;
        } else {
            let remote = match ctx.opts.remote_user.as_deref() {
                Some(u) => format!("{u}@{host}:{src}"),
                None => format!("{host}:{src}"),
            };
            let mut cmd = std::process::Command::new("rsync");
            let ssh = format!("ssh {}", ctx.config().ssh_options.trim());
            cmd.args(["--archive", "-e", ssh.trim()])
                .arg(remote)
                .arg(&dest);
            process::run_checked(
                cmd,
                Duration::from_secs(300),
                "rsync of a configuration file",
                ExitCode::BadRsync,
            )?;
        }
    }
    Ok(())
}

/// `standby_clone` on the source when it is a primary with the repmgr
/// schema and this node has a node_id; otherwise only the hook runs.
fn record_event(ctx: &Ctx, source: &ConnInfo, host: &str, port: &str, method: Method) {
    let cfg = ctx.config();
    let details = format!(
        "cloned from host \"{host}\", port {port}; backup method: {}; --force: {}",
        method.name(),
        if ctx.opts.force { "Y" } else { "N" }
    );
    let ev = Event::for_node(cfg, "standby_clone", details);
    let mut conn = None;
    if ctx.loaded.is_some() && cfg.node_id.is_some() {
        if let Ok(mut c) = connect_source(source) {
            let writable = matches!(db::server::in_recovery(&mut c), Ok(false))
                && matches!(db::schema::exists(&mut c), Ok(true));
            if writable {
                conn = Some(c);
            }
        }
    }
    events::record(conn.as_mut(), cfg, &ev);
}

/// `--replication-conf-only` (`--recovery-conf-only`): write the replication
/// configuration into an existing, stopped data directory.
fn conf_only(ctx: &Ctx, target: &Path) -> Result<()> {
    let cfg = ctx.config();
    let o = &ctx.opts;
    let pg_version = fs::read_to_string(target.join("PG_VERSION")).map_err(|e| {
        Error::config(format!("\"{}\" is not a PostgreSQL data directory", target.display()))
            .detail(format!("PG_VERSION: {e}"))
            .hint("--replication-conf-only writes into an existing data directory; give it with -D/--pgdata")
    })?;
    let major: i32 = pg_version.trim().parse().unwrap_or(0);
    let local_version = if major >= 10 { major * 10000 } else { 0 };
    pgtools::ensure_not_running(target, "writing its replication configuration")?;
    let slot = crate::ops::follow::slot_name(cfg);
    let apply_delay = apply_delay(ctx)?;
    let rc = if o.no_upstream_connection {
        let Some(given) = o.upstream_conninfo.as_deref() else {
            return Err(
                Error::config("--no-upstream-connection needs --upstream-conninfo")
                    .hint("give the primary_conninfo to write with --upstream-conninfo"),
            );
        };
        let mut ci = parse_conninfo(given, "--upstream-conninfo")?;
        ci.set_if_absent("application_name", &application_name(cfg));
        ReplicationConfig {
            primary_conninfo: ci.to_string(),
            primary_slot_name: slot.clone(),
            restore_command: cfg.restore_command.clone(),
            archive_cleanup_command: cfg.archive_cleanup_command.clone(),
            recovery_min_apply_delay: apply_delay,
        }
    } else {
        let source = source_conninfo(ctx)?;
        let mut conn = connect_source(&source)?;
        let version = db::server::version_num(&mut conn)?;
        if version / 10000 != major {
            return Err(Error::config(format!(
                "the upstream runs PostgreSQL {}, the data directory is for {major}",
                version / 10000
            ))
            .hint("a standby must run the same PostgreSQL major version as its upstream"));
        }
        let bin = PgBin::new(o.pg_bindir.as_deref(), cfg);
        if let Ok(cd) = pgtools::control_data(&bin, target) {
            let sysid = repl::system_identifier(&mut conn)?;
            if !cd.system_identifier.is_empty() && cd.system_identifier != sysid {
                return Err(
                    Error::config("the data directory is not a copy of the upstream")
                        .detail(format!(
                            "system identifier {} here, {sysid} on the upstream",
                            cd.system_identifier
                        ))
                        .hint("clone the standby again (-F) instead"),
                );
            }
        }
        let rc = replication_config(ctx, &mut conn, &source, slot.as_deref(), apply_delay)?;
        if let Some(s) = &slot {
            if repl::slot_active(&mut conn, s)?.is_none() {
                if o.dry_run {
                    crate::log_info!("would create replication slot \"{s}\" on the upstream");
                } else {
                    repl::create_physical_slot(&mut conn, s)?;
                    crate::log_notice!("replication slot \"{s}\" created on the upstream");
                }
            }
        }
        rc
    };
    if o.dry_run {
        crate::log_info!(
            "would write primary_conninfo = '{}' into \"{}\"",
            rc.primary_conninfo,
            target.display()
        );
        crate::log_notice!("dry run complete: nothing was changed");
        return Ok(());
    }
    replconf::write(target, local_version, &rc)?;
    crate::log_notice!(
        "replication configuration written to \"{}\"",
        target.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_hosts() {
        for h in [
            "",
            "/tmp",
            "localhost",
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
        ] {
            assert!(is_local_host(h), "{h}");
        }
        for h in ["10.1.2.3", "node1.example.invalid"] {
            assert!(!is_local_host(h), "{h}");
        }
    }

    #[test]
    fn replication_conninfo_moves_password_out() {
        let ci = ConnInfo::parse("host=a port=5 user=u dbname=d password=p").unwrap();
        let (r, pw) = shared::replication_conninfo(&ci);
        assert_eq!(pw.as_deref(), Some("p"));
        assert_eq!(r.get("password"), None);
        assert_eq!(r.get("dbname"), None);
        assert_eq!(r.get("replication"), Some("true"));
    }
}
