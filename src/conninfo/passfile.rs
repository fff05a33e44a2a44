//! The password file (libpq's passwordFromFile): whether a file is to be
//! trusted, and which of its lines matches. `resolve.rs` picks the file.

use std::path::Path;

/// The file's text, unless it is missing, unreadable, not a plain file, or
/// readable by group or others (libpq ignores it then, with a warning).
pub(super) fn read_passfile(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).ok()?;
    let shown = path.display();
    if !meta.is_file() {
        crate::log_warning!("password file \"{shown}\" is not a plain file");
        return None;
    }
    if meta.permissions().mode() & 0o077 != 0 {
        crate::log_warning!(
            "password file \"{shown}\" has group or world access; permissions should be u=rw (0600) or less"
        );
        return None;
    }
    std::fs::read_to_string(path).ok()
}

/// The password of the first `host:port:database:username:password` line
/// matching; `*` matches anything, `\:` and `\\` are escapes, `#` starts a
/// comment line.
pub fn lookup_passfile(
    contents: &str,
    host: &str,
    port: &str,
    dbname: &str,
    user: &str,
) -> Option<String> {
    contents
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .find_map(|line| {
            let rest = match_passfile_field(line, host)?;
            let rest = match_passfile_field(rest, port)?;
            let rest = match_passfile_field(rest, dbname)?;
            let rest = match_passfile_field(rest, user)?;
            Some(unescape_passfile_password(rest))
        })
}

/// Matches one field against `token`; returns the rest of the line after the
/// field's ':' (libpq's pwdfMatchesString).
fn match_passfile_field<'a>(line: &'a str, token: &str) -> Option<&'a str> {
    if let Some(rest) = line.strip_prefix("*:") {
        return Some(rest);
    }
    let mut chars = line.char_indices();
    let mut tok = token.chars().peekable();
    loop {
        let (i, c) = chars.next()?;
        let (c, escaped) = if c == '\\' {
            (chars.next()?.1, true)
        } else {
            (c, false)
        };
        if c == ':' && !escaped && tok.peek().is_none() {
            return Some(&line[i + 1..]);
        }
        if tok.next() != Some(c) {
            return None;
        }
    }
}

/// The password field ends at the first unescaped ':'.
fn unescape_passfile_password(field: &str) -> String {
    let mut out = String::new();
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        match c {
            ':' => break,
            '\\' => match chars.next() {
                Some(n) => out.push(n),
                None => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conninfo::tests::{resolve_in, write_passfile};

    #[test]
    fn passfile_matching_rules() {
        let file = "# comment\n\
                    other:5432:*:*:wrong\n\
                    db1:5433:*:*:notthisport\n\
                    db1:5432:app:u:first\n\
                    db1:5432:app:u:second\n\
                    *:*:*:special:p\\:w\\\\x:ignored\n\
                    h\\:6:5432:*:*:escaped-host\n";
        assert_eq!(
            lookup_passfile(file, "db1", "5432", "app", "u").as_deref(),
            Some("first")
        );
        assert_eq!(
            lookup_passfile(file, "any", "1", "d", "special").as_deref(),
            Some("p:w\\x")
        );
        assert_eq!(
            lookup_passfile(file, "h:6", "5432", "d", "v").as_deref(),
            Some("escaped-host")
        );
        assert_eq!(lookup_passfile(file, "db1", "5432", "other", "u"), None);
        // '*' is a wildcard only as a whole field.
        assert_eq!(lookup_passfile("db*:*:*:*:x\n", "db1", "1", "d", "u"), None);
        assert_eq!(
            lookup_passfile("a:1:d:u:x\r\n", "a", "1", "d", "u").as_deref(),
            Some("x")
        );
    }

    #[test]
    fn group_readable_passfile_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let pf = write_passfile(dir.path(), "pf", "*:*:*:*:x\n", 0o640);
        let t = resolve_in(&format!("host=h user=u passfile={}", pf.display()), &[]).unwrap();
        assert_eq!(t.password(), None);
        let t = resolve_in(
            &format!("host=h user=u passfile={}", dir.path().display()),
            &[],
        )
        .unwrap();
        assert_eq!(t.password(), None, "a directory is not a password file");
    }
}
