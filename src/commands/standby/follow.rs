//! `repmgr standby follow [HOST]`.

use crate::commands::Ctx;
use crate::error::{Error, ExitCode, Result};

pub fn follow(ctx: &Ctx) -> Result<()> {
    Err(Error::new(
        ExitCode::BadConfig,
        format!(
            "\"{}\" is not implemented in this release yet",
            ctx.action.name()
        ),
    ))
}
