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
pub mod getopt;
pub mod help;
mod opts;

use argh::FromArgs;

use crate::error::{Error, ExitCode, Result};
use action::{missing_action, unknown_command};
use opts::apply_long_alias;

pub use action::{resolve_action, Action, FAMILIES};
pub use opts::{wants_terse, Opts, OPTIONS};

/// What `main` should do.
#[derive(Debug)]
pub enum Command {
    Help(Option<HelpTopic>),
    Version,
    VersionNumber,
    /// `--dump-config`: the parsed repmgr.conf, no command.
    DumpConfig(Box<Opts>),
    Run(Action, Box<Opts>, Option<String>),
}

/// Help for everything, a family, or one action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelpTopic {
    Family(String),
    Action(Action),
}

/// A one-line usage error: exit 1 with a hint, as repmgr.
fn usage_error(msg: String) -> Error {
    Error::new(ExitCode::BadConfig, msg).hint("Try \"repmgr --help\" for more information.")
}

/// Parses repmgr's command line (without argv[0]).
pub fn parse(args: &[String]) -> Result<Command> {
    let args: Vec<String> = args.iter().map(|a| apply_long_alias(a)).collect();
    let norm = getopt::prepass(OPTIONS, &args).map_err(usage_error)?;
    let strs: Vec<&str> = norm.args.iter().map(String::as_str).collect();
    let opts = Opts::from_args(&["repmgr"], &strs).map_err(|e| {
        let first = e
            .output
            .lines()
            .next()
            .unwrap_or("invalid arguments")
            .to_string();
        usage_error(first)
    })?;

    if opts.version {
        return Ok(Command::Version);
    }
    if opts.version_number {
        return Ok(Command::VersionNumber);
    }

    let words = &norm.words;
    if opts.dump_config && !norm.help {
        if !words.is_empty() {
            return Err(Error::new(
                ExitCode::BadConfig,
                "--dump-config cannot be used in combination with a repmgr command",
            ));
        }
        return Ok(Command::DumpConfig(Box::new(opts)));
    }
    if norm.help
        || words
            .first()
            .is_some_and(|w| w.eq_ignore_ascii_case("help"))
    {
        let rest: &[String] = if norm.help { words } else { &words[1..] };
        return Ok(Command::Help(help_topic(rest)));
    }

    match words.as_slice() {
        [] => Err(usage_error("no command provided".into())),
        [family] => Err(missing_action(family)),
        [family, action, rest @ ..] => {
            let act =
                resolve_action(family, action).ok_or_else(|| unknown_command(family, action))?;
            json_conflicts(act, &opts)?;
            let max_extra = usize::from(act.takes_host_argument());
            if rest.len() > max_extra {
                return Err(usage_error(format!(
                    "too many command-line arguments (first extra is \"{}\")",
                    rest[max_extra]
                )));
            }
            Ok(Command::Run(act, Box::new(opts), rest.first().cloned()))
        }
    }
}

/// Whether root may run this command line: as repmgr 5, only the
/// `--help`/`-?` options and `--version`/`--version-number` (the `help` word
/// is not an option there, so root is refused for it).
pub fn allowed_as_root(args: &[String]) -> bool {
    match parse(args) {
        Ok(Command::Version | Command::VersionNumber) => true,
        Ok(Command::Help(_)) => args.iter().any(|a| a == "--help" || a == "-?"),
        _ => false,
    }
}

/// `--json` is one output format of five actions: with another format,
/// or for another action, it is a usage error (exit 1), so stdout is never
/// anything but the JSON document asked for.
fn json_conflicts(act: Action, opts: &Opts) -> Result<()> {
    if !opts.json {
        return Ok(());
    }
    let other = [
        (opts.csv, "--csv"),
        (opts.nagios, "--nagios"),
        (opts.optformat, "--optformat"),
    ];
    if let Some((_, name)) = other.iter().find(|(on, _)| *on) {
        return Err(usage_error(format!(
            "--json and {name} cannot be used together"
        )));
    }
    if !act.has_json() {
        return Err(usage_error(format!(
            "--json is not available for \"repmgr {}\"",
            act.name()
        )));
    }
    Ok(())
}

fn help_topic(words: &[String]) -> Option<HelpTopic> {
    match words {
        [] => None,
        [family] => Some(HelpTopic::Family(family.to_ascii_lowercase())),
        [family, action, ..] => match resolve_action(family, action) {
            Some(a) => Some(HelpTopic::Action(a)),
            None => Some(HelpTopic::Family(family.to_ascii_lowercase())),
        },
    }
}

/// Parses a numeric option value, naming the option on error.
pub fn parse_int_option(name: &str, value: &Option<String>) -> Result<Option<i32>> {
    match value {
        None => Ok(None),
        Some(v) => v.trim().parse::<i32>().map(Some).map_err(|_| {
            usage_error(format!(
                "invalid value provided for option \"--{name}\": \"{v}\" (expected an integer)"
            ))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> Result<Command> {
        let v: Vec<String> = s.split_whitespace().map(String::from).collect();
        parse(&v)
    }

    fn run(s: &str) -> (Action, Opts, Option<String>) {
        match parse_str(s).unwrap() {
            Command::Run(a, o, h) => (a, *o, h),
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
        assert!(matches!(parse_str("--help").unwrap(), Command::Help(None)));
        assert!(matches!(
            parse_str("standby clone --help").unwrap(),
            Command::Help(Some(HelpTopic::Action(Action::StandbyClone)))
        ));
        assert!(matches!(
            parse_str("standby -?").unwrap(),
            Command::Help(Some(HelpTopic::Family(_)))
        ));
        assert!(matches!(parse_str("-V").unwrap(), Command::Version));
        assert!(matches!(
            parse_str("--version-number").unwrap(),
            Command::VersionNumber
        ));
        assert!(matches!(
            parse_str("-f /x --dump-config").unwrap(),
            Command::DumpConfig(_)
        ));
        let e = parse_str("--dump-config cluster show").unwrap_err();
        assert_eq!(e.code, ExitCode::BadConfig);
    }

    #[test]
    fn json_for_five_actions_and_alone() {
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
        for (bad, msg) in [
            (
                "cluster show --json --csv",
                "--json and --csv cannot be used together",
            ),
            ("node check --role --json --nagios", "--json and --nagios"),
            ("node check --json --optformat", "--json and --optformat"),
            (
                "standby clone --json",
                "--json is not available for \"repmgr standby clone\"",
            ),
            ("cluster matrix --json", "not available"),
        ] {
            let e = parse_str(bad).unwrap_err();
            assert_eq!(e.code, ExitCode::BadConfig, "{bad}");
            assert!(
                e.messages.join("\n").contains(msg),
                "{bad}: {:?}",
                e.messages
            );
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
        assert!(!ok("cluster show"));
        assert!(!ok("--bogus"));
    }

    #[test]
    fn usage_errors_exit_1_with_hint() {
        for bad in [
            "",
            "primary",
            "primary frobnicate",
            "frob nicate",
            "cluster show extra",
            "standby clone a b",
            "--bogus cluster show",
            "-x cluster show",
        ] {
            let e = parse_str(bad).unwrap_err();
            assert_eq!(e.code, ExitCode::BadConfig, "{bad}");
            assert!(e.hint.is_some(), "{bad}: no hint");
            assert_eq!(e.messages.len(), 1, "{bad}");
        }
        let e = parse_str("cluster show extra").unwrap_err();
        assert!(e.messages[0].contains("first extra is \"extra\""));
        let e = parse_str("primary frobnicate").unwrap_err();
        assert!(e.messages[0].contains("unknown command \"primary frobnicate\""));
    }

    #[test]
    fn int_options() {
        assert_eq!(
            parse_int_option("node-id", &Some("3".into())).unwrap(),
            Some(3)
        );
        assert!(parse_int_option("node-id", &Some("x".into())).is_err());
    }
}
