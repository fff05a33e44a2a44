//! The multi-call entry point: `repmgr` or `repmgrd` by argv[0].
//! This is the only place that ends the process.

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let prog = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|s| s.to_str())
        .unwrap_or("repmgr")
        .to_string();

    let rest = args.get(1..).unwrap_or(&[]);
    let is_daemon = prog.starts_with("repmgrd");
    // repmgr lets root ask for --help, --version and --version-number
    // (configuration-management tools call them as root); repmgrd refuses
    // root outright, as repmgr 5 does.
    let root_may_run = !is_daemon && repmgr::cli::allowed_as_root(rest);
    if nix::unistd::Uid::effective().is_root() && !root_may_run {
        eprintln!(
            "{prog}: cannot be run as root\n\
             Please log in (using, e.g., \"su\") as the (unprivileged) user that owns the data directory."
        );
        return ExitCode::from(1);
    }

    let result = if is_daemon {
        repmgr::daemon::main(rest)
    } else {
        repmgr::commands::main(rest)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(usage) = &e.usage {
                repmgr::cli::report_usage(&e.messages, usage);
            } else if !e.silent {
                repmgr::logging::init(repmgr::logging::RepmgrLevel::Info, false);
                repmgr::logging::log_error_report(&e);
            }
            ExitCode::from(e.code.code() as u8)
        }
    }
}
