//! repmgr's command grammar: `repmgr [OPTIONS] FAMILY ACTION [ARG]`.
//!
//! One flat option set, as repmgr's own `getopt_long` table: every option is
//! accepted before, between and after the action words (the pre-pass in
//! `getopt.rs` makes that possible), argh does the typed conversion, and the
//! words are resolved to an [`Action`].
//!
//! `opts.rs` holds the option set and its table, `action.rs` the action
//! words; this file puts them together into a [`Command`].

mod action;
pub mod checks;
pub mod getopt;
pub mod help;
mod opts;

use argh::FromArgs;

use crate::error::{Error, Result, Usage};
use action::is_family;
use opts::apply_long_alias;

pub use action::{resolve_action, Action, FAMILIES};
pub use opts::{wants_terse, Opts, OPTIONS};

/// What `main` should do.
#[derive(Debug)]
pub enum Command {
    /// `--help`: the family's help (as typed; None or unknown: the general
    /// help), with the options given for the defaults it shows.
    Help(Option<String>, Box<Opts>),
    Version,
    VersionNumber,
    /// `--dump-config`: the parsed repmgr.conf, no command.
    DumpConfig(Box<Opts>),
    Run(Run),
}

/// An action to run.
#[derive(Debug)]
pub struct Run {
    pub action: Action,
    pub opts: Box<Opts>,
    /// The optional positional word (`standby clone HOST`).
    pub arg: Option<String>,
    /// getopt's complaints and the family: as in repmgr they end the
    /// command (exit 1) only after repmgr.conf and the action's parameters
    /// were checked.
    pub usage: Usage,
}

/// Parses repmgr's command line (without argv[0]) in repmgr's order:
/// getopt, the option values, `--help`, `--dump-config`, then the words.
pub fn parse(args: &[String]) -> Result<Command> {
    let args: Vec<String> = args.iter().map(|a| apply_long_alias(a)).collect();
    let norm = getopt::prepass_all(OPTIONS, &args);
    let mut usage = Usage {
        getopt: norm.errors.clone(),
        family: None,
    };
    let strs: Vec<&str> = norm.args.iter().map(String::as_str).collect();
    let opts = Opts::from_args(&["repmgr"], &strs).map_err(|e| {
        let first = e.output.lines().next().unwrap_or("invalid arguments");
        Error::usage(vec![first.to_string()], usage.clone())
    })?;

    // repmgr prints the version as getopt meets the option, whatever else
    // is wrong.
    if opts.version {
        return Ok(Command::Version);
    }
    if opts.version_number {
        return Ok(Command::VersionNumber);
    }
    let errors = checks::option_values(&opts);
    if !errors.is_empty() {
        return Err(Error::usage(errors, usage));
    }

    let words = &norm.words;
    if norm.help {
        return Ok(Command::Help(words.first().cloned(), Box::new(opts)));
    }
    if opts.dump_config {
        if !words.is_empty() {
            return Err(Error::config(
                "--dump-config cannot be used in combination with a repmgr command",
            ));
        }
        return Ok(Command::DumpConfig(Box::new(opts)));
    }

    usage.family = words.first().filter(|f| is_family(f)).cloned();
    let mut errors = Vec::new();
    let mut arg = None;
    let action = match words.as_slice() {
        [] => {
            errors.push("no repmgr command provided".to_string());
            None
        }
        [family] if is_family(family) => {
            errors.push(format!("no action provided for command '{family}'"));
            None
        }
        [family] => {
            errors.push(format!("unknown repmgr command '{family}'"));
            None
        }
        [family, action, rest @ ..] => {
            let act = resolve_action(family, action);
            if act.is_none() {
                errors.push(format!("unknown repmgr action '{family} {action}'"));
            }
            let mut rest = rest.iter();
            if act.is_some_and(|a| a.takes_host_argument()) && !rest.as_slice().is_empty() {
                match host_option(&opts).filter(|_| act == Some(Action::StandbyClone)) {
                    // repmgr leaves the word unused: it is an extra one too
                    Some(given) => errors.push(format!(
                        "host name provided both with {given} and as an extra parameter"
                    )),
                    None => arg = rest.next().cloned(),
                }
            }
            if let Some(extra) = rest.next() {
                errors.push(format!(
                    "too many command-line arguments (first extra is \"{extra}\")"
                ));
            }
            act
        }
    };
    match action {
        Some(action) if errors.is_empty() => Ok(Command::Run(Run {
            action,
            opts: Box::new(opts),
            arg,
            usage,
        })),
        _ => Err(Error::usage(errors, usage)),
    }
}

/// How a host was given besides the HOST word, in repmgr's words.
fn host_option(opts: &Opts) -> Option<&'static str> {
    if opts.host.is_some() {
        return Some("-h/--host");
    }
    let d = opts.dbname.as_deref()?;
    let ci = crate::conninfo::ConnInfo::parse(d).ok()?;
    (crate::conninfo::looks_like_conninfo(d) && ci.get("host").is_some()).then_some("host=")
}

/// Prints a command-line error as repmgr does (see [`Usage`]).
pub fn report_usage(messages: &[String], usage: &Usage) {
    print_getopt_errors(&usage.getopt);
    let try_line = match &usage.family {
        Some(f) => format!("Try \"repmgr --help\" or \"repmgr {f} --help\" for more information."),
        None => "Try \"repmgr --help\" for more information.".to_string(),
    };
    if messages.is_empty() {
        // getopt's complaints alone: repmgr puts this line on stdout
        println!("{try_line}");
        return;
    }
    let mut out = String::from("The following command line errors were encountered:\n");
    for m in messages {
        out.push_str(&format!("  {m}\n"));
    }
    eprintln!("{out}{try_line}");
}

/// getopt's complaints, prefixed with argv[0] as given, as getopt does.
pub fn print_getopt_errors(errors: &[String]) {
    let argv0 = std::env::args().next().unwrap_or_else(|| "repmgr".into());
    for e in errors {
        eprintln!("{argv0}: {e}");
    }
}

/// Whether root may run this command line: as repmgr 5, only the
/// `--help`/`-?` options and `--version`/`--version-number`.
pub fn allowed_as_root(args: &[String]) -> bool {
    matches!(
        parse(args),
        Ok(Command::Version | Command::VersionNumber | Command::Help(..))
    )
}

/// Parses a numeric option value already checked by [`checks::option_values`]
/// (so C's `strtol` reading: "3x" is 3).
pub fn parse_int_option(name: &str, value: &Option<String>) -> Result<Option<i32>> {
    match value {
        None => Ok(None),
        Some(v) => checks::atoi(v, &format!("--{name}"), i32::MIN)
            .map(Some)
            .map_err(|e| Error::usage(vec![e], Usage::default())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ExitCode;

    fn parse_str(s: &str) -> Result<Command> {
        let v: Vec<String> = s.split_whitespace().map(String::from).collect();
        parse(&v)
    }

    fn run(s: &str) -> (Action, Opts, Option<String>) {
        match parse_str(s).unwrap() {
            Command::Run(r) => (r.action, *r.opts, r.arg),
            other => panic!("{s}: expected Run, got {other:?}"),
        }
    }

    #[test]
    fn master_is_primary_and_options_anywhere() {
        let (a, o, _) = run("--host=node1 -p5432 -vF master register");
        assert_eq!(a, Action::PrimaryRegister);
        assert_eq!(o.host.as_deref(), Some("node1"));
        assert_eq!(o.port.as_deref(), Some("5432"));
        assert!(o.verbose && o.force);
        let (a, o, _) = run("primary -f /x.conf register --dry-run");
        assert_eq!(a, Action::PrimaryRegister);
        assert_eq!(o.config_file.as_deref(), Some("/x.conf"));
        assert!(o.dry_run);
    }

    #[test]
    fn clone_takes_a_host_word() {
        let (a, o, host) = run("-D /data standby clone node1 --fast-checkpoint");
        assert_eq!(a, Action::StandbyClone);
        assert_eq!(host.as_deref(), Some("node1"));
        assert_eq!(o.pgdata.as_deref(), Some("/data"));
        assert!(o.fast_checkpoint);
    }

    #[test]
    fn case_insensitive_and_aliases() {
        assert_eq!(run("CLUSTER Show").0, Action::ClusterShow);
        assert_eq!(run("cluster events").0, Action::ClusterEvent);
        assert_eq!(run("primary check").0, Action::NodeCheck);
        assert_eq!(run("daemon status").0, Action::ServiceStatus);
        let (_, o, _) = run("standby clone --recovery-conf-only");
        assert!(o.replication_conf_only);
    }

    #[test]
    fn last_occurrence_wins() {
        let (_, o, _) = run("-L DEBUG cluster show --log-level=ERROR");
        assert_eq!(o.log_level.as_deref(), Some("ERROR"));
    }

    #[test]
    fn optional_values() {
        let (_, o, _) = run("standby register --wait-sync");
        assert_eq!(o.wait_sync.as_deref(), Some(""));
        let (_, o, _) = run("standby register --wait-sync=15");
        assert_eq!(o.wait_sync.as_deref(), Some("15"));
        let (_, o, _) = run("standby clone --copy-external-config-files");
        assert_eq!(o.copy_external_config_files.as_deref(), Some("samepath"));
    }

    #[test]
    fn help_and_version() {
        assert!(matches!(
            parse_str("--help").unwrap(),
            Command::Help(None, _)
        ));
        assert!(matches!(
            parse_str("standby clone --help").unwrap(),
            Command::Help(Some(f), _) if f == "standby"
        ));
        assert!(matches!(
            parse_str("standby -?").unwrap(),
            Command::Help(Some(_), _)
        ));
        assert!(matches!(parse_str("-V").unwrap(), Command::Version));
        assert!(matches!(
            parse_str("--bogus --version-number").unwrap(),
            Command::VersionNumber
        ));
        assert!(matches!(
            parse_str("-f /x --dump-config").unwrap(),
            Command::DumpConfig(_)
        ));
        let e = parse_str("--dump-config cluster show").unwrap_err();
        assert_eq!(e.code, ExitCode::BadConfig);
        // the help word is no command in repmgr
        let e = parse_str("help standby").unwrap_err();
        assert_eq!(e.messages, ["unknown repmgr action 'help standby'"]);
    }

    #[test]
    fn json_for_five_actions() {
        for ok in [
            "cluster show --json",
            "--json cluster event",
            "node status --json",
            "node check --role --json",
            "service status --json",
            "daemon status --json",
        ] {
            assert!(run(ok).1.json, "{ok}");
        }
    }

    #[test]
    fn root_may_only_ask_for_help_and_version() {
        let ok =
            |s: &str| allowed_as_root(&s.split_whitespace().map(String::from).collect::<Vec<_>>());
        assert!(ok("--version"));
        assert!(ok("-V"));
        assert!(ok("--version-number"));
        assert!(ok("--help"));
        assert!(ok("standby clone --help"));
        assert!(!ok("help standby"));
        assert!(!ok("--node-id=x --help"));
        assert!(!ok("cluster show"));
        assert!(!ok("--bogus"));
    }

    #[test]
    fn usage_errors_in_repmgrs_words() {
        for (bad, msg, family) in [
            ("", "no repmgr command provided", None),
            (
                "primary",
                "no action provided for command 'primary'",
                Some("primary"),
            ),
            ("frob", "unknown repmgr command 'frob'", None),
            (
                "primary frobnicate",
                "unknown repmgr action 'primary frobnicate'",
                Some("primary"),
            ),
            ("frob nicate", "unknown repmgr action 'frob nicate'", None),
            (
                "cluster show extra",
                "too many command-line arguments (first extra is \"extra\")",
                Some("cluster"),
            ),
            (
                "-h x standby clone y",
                "host name provided both with -h/--host and as an extra parameter",
                Some("standby"),
            ),
            (
                "--node-id=abc cluster show",
                "\"--node-id\": invalid value (provided: \"abc\")",
                None,
            ),
        ] {
            let e = parse_str(bad).unwrap_err();
            assert_eq!(e.code, ExitCode::BadConfig, "{bad}");
            assert_eq!(e.messages[0], msg, "{bad}");
            let usage = e.usage.expect(bad);
            assert_eq!(usage.family.as_deref(), family, "{bad}");
        }
        // as repmgr, the HOST word not taken is an extra one as well
        let e = parse_str("-h x standby clone y").unwrap_err();
        assert_eq!(
            e.messages[1],
            "too many command-line arguments (first extra is \"y\")"
        );
    }

    #[test]
    fn getopt_errors_wait_for_the_configuration() {
        match parse_str("--bogus -x cluster show").unwrap() {
            Command::Run(r) => {
                assert_eq!(r.action, Action::ClusterShow);
                assert_eq!(
                    r.usage.getopt,
                    ["unrecognized option '--bogus'", "invalid option -- 'x'"]
                );
                assert_eq!(r.usage.family.as_deref(), Some("cluster"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn int_options() {
        assert_eq!(
            parse_int_option("node-id", &Some("3".into())).unwrap(),
            Some(3)
        );
        assert!(parse_int_option("node-id", &Some("x".into())).is_err());
        assert_eq!(
            parse_int_option("node-id", &Some("3x".into())).unwrap(),
            Some(3)
        );
    }
}
