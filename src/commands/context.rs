//! What every action gets: the parsed command line and the configuration
//! ([`Ctx`]), and the checks the register actions share.

use crate::cli::{Action, Opts};
use crate::config::Config;
use crate::config::Loaded;
use crate::conninfo::{looks_like_conninfo, parse_described as parse_conninfo, ConnInfo};
use crate::db::{self, reach::connect_node, Session};
use crate::error::{Error, Result};

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
    pub(super) default_config: Config,
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
            Error::config("no node information was found - please supply a configuration file")
                .hint(
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

    pub fn connect_local(&self) -> Result<Session> {
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

/// repmgr's refusals when registering this node as `as_type`: its node_id
/// taken by a node of another type, its record already there (without
/// -F), or its node_name used by another node. Returns the existing record.
pub fn check_registration(
    c: &mut impl crate::db::Sql,
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
