//! `--copy-external-config-files`: the upstream's configuration files
//! that live outside its data directory, copied next to the clone.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::commands::Ctx;
use crate::error::{Error, ExitCode, Result};
use crate::process;

/// `--copy-external-config-files[=samepath|pgdata]` (no value: samepath).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum External {
    SamePath,
    PgData,
}

pub fn external_mode(ctx: &Ctx) -> Result<Option<External>> {
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

/// `--copy-external-config-files`: the upstream's config_file, hba_file
/// and ident_file that live outside its data directory.
pub fn copy_external_files(
    ctx: &Ctx,
    files: &HashMap<String, String>,
    target: &Path,
    mode: External,
    local: bool,
    host: &str,
) -> Result<()> {
    let Some(datadir) = files.get("data_directory") else {
        return Err(Error::config("unable to read the upstream's file locations")
            .detail("--copy-external-config-files needs config_file, hba_file and ident_file, readable by superusers or pg_read_all_settings")
            .hint("provide a superuser with -S/--superuser, or grant pg_read_all_settings to the user"));
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
            cmd.args(["--archive", "-e", ssh.trim(), "--"])
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
