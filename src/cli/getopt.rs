//! A getopt_long-like pre-pass in front of argh.
//!
//! repmgr users write `--host=node1`, `-p5432`, `-vF`, `--pg_bindir`,
//! `--copy-external-config-files[=pgdata]`, options after the action words,
//! and repeat options expecting the last one to win. argh accepts none of
//! these, so this pass rewrites the argument list into the one plain form
//! argh does accept (`--long value`, each option once, words in order).

use std::collections::HashSet;

/// Whether an option takes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg {
    /// A switch: `--force`, `-F`.
    No,
    /// A required value: `--host node1`, `--host=node1`, `-hnode1`.
    Req,
    /// An optional value, only attached: `--wait-sync` / `--wait-sync=30`.
    /// The string is what argh receives when no value is attached.
    Opt(&'static str),
}

/// One row of an option table, kept in step with the argh struct by a test.
#[derive(Debug, Clone, Copy)]
pub struct OptSpec {
    pub short: Option<char>,
    pub long: &'static str,
    pub arg: Arg,
}

pub const fn opt(short: Option<char>, long: &'static str, arg: Arg) -> OptSpec {
    OptSpec { short, long, arg }
}

/// The normalised argument list, and whether help was asked for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Normalized {
    pub args: Vec<String>,
    pub words: Vec<String>,
    pub help: bool,
    /// getopt's complaints, in order (each option in error is skipped, as
    /// getopt does, and parsing goes on).
    pub errors: Vec<String>,
}

/// Rewrites `args` (without argv[0]) for argh; the first error ends it.
pub fn prepass(table: &[OptSpec], args: &[String]) -> Result<Normalized, String> {
    let norm = prepass_all(table, args);
    match norm.errors.first() {
        Some(e) => Err(e.clone()),
        None => Ok(norm),
    }
}

/// Rewrites `args` (without argv[0]) for argh, as getopt_long reads them:
/// errors (getopt's wording) are collected and the option in error skipped.
/// `--help` and `-?` anywhere set `help`; words are returned separately too.
pub fn prepass_all(table: &[OptSpec], args: &[String]) -> Normalized {
    let mut toks: Vec<Token> = Vec::new();
    let mut words = Vec::new();
    let mut errors = Vec::new();
    let mut help = false;
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "--" {
            for w in &args[i..] {
                words.push(w.clone());
            }
            break;
        }
        if a == "--help" || a == "-?" {
            help = true;
            continue;
        }
        if let Some(body) = a.strip_prefix("--") {
            match long_option(table, a, body, args, &mut i) {
                Ok(t) => toks.push(t),
                Err(e) => errors.push(e),
            }
            continue;
        }
        if a.len() > 1 && a.starts_with('-') {
            short_options(table, &a[1..], args, &mut i, &mut toks, &mut errors);
            continue;
        }
        words.push(a.clone());
    }

    let mut out: Vec<String> = last_wins(toks).into_iter().flatten().collect();
    if !words.is_empty() {
        // Words after `--` so a word starting with '-' is not taken for an option.
        out.push("--".into());
        out.extend(words.iter().cloned());
    }
    Normalized {
        args: out,
        words,
        help,
        errors,
    }
}

/// One option as argh will get it: its long name, and `--long [value]`.
type Token = (Option<&'static str>, Vec<String>);

/// `--name`, `--name=value` or `--name value` (`a` as given, `body`
/// without the dashes); `i` moves past a value taken from the next argument.
fn long_option(
    table: &[OptSpec],
    a: &str,
    body: &str,
    args: &[String],
    i: &mut usize,
) -> Result<Token, String> {
    let (name, inline) = match body.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (body, None),
    };
    let name = name.replace('_', "-");
    let spec = find_long(table, &name).ok_or_else(|| format!("unrecognized option '{a}'"))?;
    let mut t = vec![format!("--{}", spec.long)];
    match (spec.arg, inline) {
        (Arg::No, Some(_)) => {
            return Err(format!(
                "option '--{}' doesn't allow an argument",
                spec.long
            ))
        }
        (Arg::No, None) => {}
        (_, Some(v)) => t.push(v.to_string()),
        (Arg::Opt(dflt), None) => t.push(dflt.to_string()),
        (Arg::Req, None) => {
            let v = args
                .get(*i)
                .ok_or_else(|| format!("option '--{}' requires an argument", spec.long))?;
            t.push(v.clone());
            *i += 1;
        }
    }
    Ok((Some(spec.long), t))
}

/// A cluster of short options (`-vF`, `-p5432`, `-p 5432`; `body` without
/// the dash): switches until one that takes a value, which gets the rest
/// of the cluster or the next argument. An unknown letter is reported and
/// skipped, as getopt does.
fn short_options(
    table: &[OptSpec],
    body: &str,
    args: &[String],
    i: &mut usize,
    toks: &mut Vec<Token>,
    errors: &mut Vec<String>,
) {
    for (pos, c) in body.char_indices() {
        let Some(spec) = table.iter().find(|o| o.short == Some(c)) else {
            errors.push(format!("invalid option -- '{c}'"));
            continue;
        };
        let mut t = vec![format!("--{}", spec.long)];
        let rest = &body[pos + c.len_utf8()..];
        match spec.arg {
            Arg::No => {
                toks.push((Some(spec.long), t));
                continue;
            }
            Arg::Opt(dflt) => t.push(if rest.is_empty() { dflt } else { rest }.to_string()),
            Arg::Req if !rest.is_empty() => t.push(rest.to_string()),
            Arg::Req => match args.get(*i) {
                Some(v) => {
                    t.push(v.clone());
                    *i += 1;
                }
                None => {
                    errors.push(format!("option requires an argument -- '{c}'"));
                    return;
                }
            },
        }
        toks.push((Some(spec.long), t));
        return;
    }
}

/// getopt semantics: the last occurrence of an option wins.
fn last_wins(toks: Vec<Token>) -> Vec<Vec<String>> {
    let mut seen = HashSet::new();
    let mut kept = Vec::new();
    for (k, t) in toks.into_iter().rev() {
        if let Some(k) = k {
            if !seen.insert(k) {
                continue;
            }
        }
        kept.push(t);
    }
    kept.reverse();
    kept
}

fn find_long<'a>(table: &'a [OptSpec], name: &str) -> Option<&'a OptSpec> {
    if let Some(exact) = table.iter().find(|o| o.long == name) {
        return Some(exact);
    }
    // getopt_long accepts any unambiguous prefix of a long option.
    let mut matches = table.iter().filter(|o| o.long.starts_with(name));
    match (matches.next(), matches.next()) {
        (Some(only), None) if !name.is_empty() => Some(only),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &[OptSpec] = &[
        opt(Some('h'), "host", Arg::Req),
        opt(Some('p'), "port", Arg::Req),
        opt(Some('v'), "verbose", Arg::No),
        opt(Some('F'), "force", Arg::No),
        opt(Some('b'), "pg-bindir", Arg::Req),
        opt(None, "copy-external-config-files", Arg::Opt("samepath")),
        opt(None, "wait-sync", Arg::Opt("")),
        opt(None, "dry-run", Arg::No),
    ];

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn long_forms_short_forms_and_bundles() {
        let n = prepass(
            T,
            &s(&["--host=node1", "-p5432", "-vF", "primary", "register"]),
        )
        .unwrap();
        assert_eq!(
            n.args,
            s(&[
                "--host",
                "node1",
                "--port",
                "5432",
                "--verbose",
                "--force",
                "--",
                "primary",
                "register"
            ])
        );
        assert_eq!(n.words, s(&["primary", "register"]));
    }

    #[test]
    fn options_anywhere_and_last_wins() {
        let n = prepass(
            T,
            &s(&["-p", "1", "standby", "--port=2", "clone", "-p3", "node1"]),
        )
        .unwrap();
        assert_eq!(
            n.args,
            s(&["--port", "3", "--", "standby", "clone", "node1"])
        );
    }

    #[test]
    fn optional_values_and_underscore_names() {
        let n = prepass(
            T,
            &s(&[
                "--pg_bindir=/x",
                "--copy-external-config-files",
                "--wait-sync=5",
            ]),
        )
        .unwrap();
        assert_eq!(
            n.args,
            s(&[
                "--pg-bindir",
                "/x",
                "--copy-external-config-files",
                "samepath",
                "--wait-sync",
                "5"
            ])
        );
    }

    #[test]
    fn help_anywhere() {
        let n = prepass(T, &s(&["standby", "-?", "clone"])).unwrap();
        assert!(n.help);
        let n = prepass(T, &s(&["--help"])).unwrap();
        assert!(n.help);
    }

    #[test]
    fn getopt_errors() {
        assert_eq!(
            prepass(T, &s(&["-x"])).unwrap_err(),
            "invalid option -- 'x'"
        );
        assert_eq!(
            prepass(T, &s(&["--bogus"])).unwrap_err(),
            "unrecognized option '--bogus'"
        );
        assert_eq!(
            prepass(T, &s(&["--dry-run=yes"])).unwrap_err(),
            "option '--dry-run' doesn't allow an argument"
        );
        assert_eq!(
            prepass(T, &s(&["--host"])).unwrap_err(),
            "option '--host' requires an argument"
        );
        assert_eq!(
            prepass(T, &s(&["-h"])).unwrap_err(),
            "option requires an argument -- 'h'"
        );
    }

    #[test]
    fn getopt_goes_on_after_an_error() {
        let n = prepass_all(T, &s(&["-xv", "--bogus", "cluster", "show", "-p"]));
        assert_eq!(
            n.errors,
            s(&[
                "invalid option -- 'x'",
                "unrecognized option '--bogus'",
                "option requires an argument -- 'p'"
            ])
        );
        assert_eq!(n.words, s(&["cluster", "show"]));
        assert_eq!(n.args, s(&["--verbose", "--", "cluster", "show"]));
    }

    #[test]
    fn unambiguous_prefixes() {
        let n = prepass(T, &s(&["--dry"])).unwrap();
        assert_eq!(n.args, s(&["--dry-run"]));
        // "--p" matches port and pg-bindir: ambiguous.
        assert!(prepass(T, &s(&["--p", "1"])).is_err());
    }

    #[test]
    fn words_starting_with_dash_after_double_dash() {
        let n = prepass(T, &s(&["cluster", "show", "--", "-odd"])).unwrap();
        assert_eq!(n.words, s(&["cluster", "show", "-odd"]));
    }
}
