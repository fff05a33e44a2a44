//! The target data directory: which one (-D or data_directory), getting
//! it ready for the copy, and undoing that when the copy fails.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use super::checks::{self, TargetState};
use super::shared::{remove_entry, Method};
use crate::commands::Ctx;
use crate::error::{Error, Result};

/// `-D`, else `data_directory`, made absolute.
pub fn target_dir(ctx: &Ctx) -> Result<PathBuf> {
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

/// What was done to the target, so a failed copy can be undone.
pub struct Prepared {
    created: bool,
    emptied: bool,
}

impl Prepared {
    /// Removes what a failed copy left: the whole directory if we created
    /// it; its new contents if it was empty or -F had emptied it. An rsync over an existing
    /// copy is left as it is (it was there before).
    pub fn undo(&self, target: &Path) {
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
                crate::log_warning!("{}", e.reason());
            }
        }
    }
}

pub fn prepare_target(target: &Path, state: TargetState, method: Method) -> Result<Prepared> {
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
