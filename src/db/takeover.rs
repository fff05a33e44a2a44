//! A cluster built by repmgr 5, taken over without re-registering.
//!
//! repmgr 5's schema is made by its C extension (`CREATE EXTENSION
//! repmgr`): the tables of schema version 1 and C functions reading the
//! shared memory its repmgrd writes (pid, pause flag, upstream last seen).
//! What this implementation adds (its repmgrd table, the peer channel's
//! secret, the version table) is created beside the extension's objects
//! when the connected user may, never by altering them; when it may not,
//! callers go on without, having checked for each object before using it.
//! The extension's functions are called only where its library is
//! preloaded: only then can a repmgr 5 repmgrd run on that server, and only
//! then is the library known to load (a removed package would otherwise put
//! an ERROR in the server log at every call).

use super::schema::{self, SchemaChange};
use super::session::{query_error, RowExt, Session, Sql};
use crate::error::Result;

/// What [`complete`] found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// Nothing missing (or no schema at all: not ours to make here).
    Complete,
    /// The missing objects were created; the schema had version `from`
    /// (1: made by repmgr 5's extension).
    Created { from: i32, extension: bool },
    /// Some are missing and this user may not create them (`why`).
    NotPermitted { why: String, extension: bool },
}

/// Whether repmgr 5's extension is installed in this database.
pub fn extension_installed(c: &mut impl Sql) -> Result<bool> {
    const FACT: &str = "the repmgr extension is installed";
    if c.knows(FACT) {
        return Ok(true);
    }
    let row = c
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'repmgr')",
            &[],
        )
        .map_err(|e| query_error("checking for the repmgr extension", &e))?;
    let installed: bool = row.val(0)?;
    if installed {
        c.learn(FACT);
    }
    Ok(installed)
}

/// Whether `shared_preload_libraries` (its value) names repmgr's library.
pub fn preloads_repmgr(setting: &str) -> bool {
    setting
        .split(',')
        .map(|s| s.trim().trim_matches('"'))
        .any(|s| s == "repmgr" || s.ends_with("/repmgr") || s.ends_with("/repmgr.so"))
}

/// The extension is installed and its library preloaded: its shared-memory
/// functions answer (and a repmgr 5 repmgrd can run on this server).
pub fn extension_loaded(c: &mut impl Sql) -> Result<bool> {
    const FACT: &str = "the repmgr extension is loaded";
    if c.knows(FACT) {
        return Ok(true);
    }
    if !extension_installed(c)? {
        return Ok(false);
    }
    // pg_settings rather than current_setting(): a user without
    // pg_read_all_settings gets no row instead of an ERROR in the server
    // log; then the extension's package is taken to be there (it made the
    // schema) and its functions are asked.
    let row = c
        .query_opt(
            "SELECT setting FROM pg_catalog.pg_settings WHERE name = 'shared_preload_libraries'",
            &[],
        )
        .map_err(|e| query_error("reading shared_preload_libraries", &e))?;
    let setting: Option<String> = row.map(|r| r.val(0)).transpose()?;
    let loaded = setting.as_deref().is_none_or(preloads_repmgr);
    if loaded {
        c.learn(FACT);
    }
    Ok(loaded)
}

/// What repmgr 5's shared memory says of its repmgrd on this server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyDaemon {
    pub pid: i32,
    /// The pid is alive (the extension asks the kernel from the backend).
    pub running: bool,
    pub paused: bool,
    /// Seconds since it last saw its upstream; None when unknown.
    pub upstream_last_seen: Option<i64>,
}

/// repmgr 5's repmgrd on this server, when one ever registered its pid
/// since the server started; None where the extension is not loaded.
pub fn legacy_daemon(c: &mut impl Sql) -> Result<Option<LegacyDaemon>> {
    if !extension_loaded(c)? {
        return Ok(None);
    }
    let row = c
        .query_one(
            "SELECT repmgr.get_repmgrd_pid(), repmgr.repmgrd_is_running(),
                    repmgr.repmgrd_is_paused(), repmgr.get_upstream_last_seen()",
            &[],
        )
        .map_err(|e| query_error("reading repmgr 5's repmgrd state", &e))?;
    let pid: Option<i32> = row.val(0)?;
    let Some(pid) = pid.filter(|p| *p > 0) else {
        return Ok(None);
    };
    let seen: Option<i32> = row.val(3)?;
    Ok(Some(LegacyDaemon {
        pid,
        running: row.val::<Option<bool>>(1)?.unwrap_or(false),
        paused: row.val::<Option<bool>>(2)?.unwrap_or(false),
        upstream_last_seen: seen.filter(|s| *s >= 0).map(i64::from),
    }))
}

/// Sets repmgr 5's pause flag in this server's shared memory, as its
/// `service pause` does on each node. False where the extension is not
/// loaded (nothing to pause there).
pub fn legacy_pause(c: &mut impl Sql, paused: bool) -> Result<bool> {
    if !extension_loaded(c)? {
        return Ok(false);
    }
    c.execute("SELECT repmgr.repmgrd_pause($1)", &[&paused])
        .map_err(|e| query_error("setting repmgr 5's repmgrd pause flag", &e))?;
    Ok(true)
}

/// Why the connected user may not create what is missing, if it may not:
/// it needs CREATE on the schema, and to own (a role owning) our repmgrd
/// table if that is already there (later versions add columns to it).
fn refusal(c: &mut impl Sql) -> Result<Option<String>> {
    let row = c
        .query_one(
            "SELECT pg_catalog.pg_is_in_recovery(),
                    pg_catalog.has_schema_privilege('repmgr', 'CREATE'),
                    COALESCE((SELECT pg_catalog.pg_has_role(relowner, 'USAGE')
                                FROM pg_catalog.pg_class
                               WHERE oid = pg_catalog.to_regclass('repmgr.repmgrd_status')), TRUE),
                    current_user::TEXT",
            &[],
        )
        .map_err(|e| query_error("checking the privileges on the repmgr schema", &e))?;
    let (in_recovery, create, owns): (bool, bool, bool) = (row.val(0)?, row.val(1)?, row.val(2)?);
    let user: String = row.val(3)?;
    Ok(if in_recovery {
        Some("the server is in recovery (read-only)".to_string())
    } else if !create {
        Some(format!(
            "user \"{user}\" has no CREATE privilege on schema \"repmgr\""
        ))
    } else if !owns {
        Some(format!(
            "user \"{user}\" does not own table \"repmgr.repmgrd_status\""
        ))
    } else {
        None
    })
}

/// On the primary, at first contact: brings a schema that lacks objects
/// (one made by repmgr 5's extension, or by an older version of this one)
/// up to this version when the user may; the privileges are checked first
/// so that a user who may not leaves no ERROR in the server log.
pub fn complete(c: &mut Session) -> Result<Completion> {
    let Some(version) = schema::installed_version(c)? else {
        return Ok(Completion::Complete);
    };
    if version >= schema::SCHEMA_VERSION {
        return Ok(Completion::Complete);
    }
    let extension = extension_installed(c)?;
    if let Some(why) = refusal(c)? {
        return Ok(Completion::NotPermitted { why, extension });
    }
    Ok(match schema::ensure_schema(c)? {
        SchemaChange::UpToDate => Completion::Complete,
        SchemaChange::Created => Completion::Complete,
        SchemaChange::Upgraded { from } => Completion::Created { from, extension },
    })
}

/// The objects a schema made by repmgr 5's extension lacks, for messages.
pub const ADDED_OBJECTS: &str =
    "repmgr.repmgrd_status, repmgr.daemon_secret, repmgr.schema_version";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preload_list_is_read_as_postgresql_does() {
        assert!(preloads_repmgr("repmgr"));
        assert!(preloads_repmgr("pg_stat_statements, repmgr"));
        assert!(preloads_repmgr("\"$libdir/repmgr\""));
        assert!(!preloads_repmgr(""));
        assert!(!preloads_repmgr("pg_stat_statements"));
        assert!(!preloads_repmgr("repmgr_other"));
    }
}
