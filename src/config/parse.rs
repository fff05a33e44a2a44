//! The GUC-style reader: turns repmgr.conf text (and the files it includes)
//! into `key = value` entries, each with the file and line it came from.
//!
//! It follows PostgreSQL's `guc-file.l` as repmgr copied it: `name [=] value`
//! per line, `#` comments outside quotes, single-quoted values with `''` and
//! `\'` escapes, and `include`, `include_if_exists` and `include_dir`. It is
//! lenient about unquoted values (any run of characters without blanks, `#`
//! or quotes), so `data_directory = /var/lib/pg` works as it always did.
//! Nothing here knows what the keys mean; errors are collected, not returned
//! early, so the user sees every mistake at once.

use std::fs;
use std::path::{Path, PathBuf};

/// PostgreSQL's `CONF_FILE_MAX_DEPTH`; also stops include loops.
pub const MAX_INCLUDE_DEPTH: usize = 10;

/// Longest excerpt of the input quoted back in a syntax error.
const EXCERPT_CHARS: usize = 40;

const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";

/// One `key = value` line, after unquoting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Lowercased, as GUC names are case-insensitive.
    pub key: String,
    pub value: String,
    pub file: PathBuf,
    pub line: usize,
}

impl Entry {
    /// `file:line`, the prefix of every message about this entry.
    pub fn location(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }
}

/// Everything read so far: entries in file order, and every error met.
#[derive(Debug, Default)]
pub struct Reading {
    pub entries: Vec<Entry>,
    pub errors: Vec<String>,
}

/// What one line holds.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    Blank,
    Setting { key: String, value: String },
}

/// Why one line could not be read.
#[derive(Debug, PartialEq, Eq)]
enum LineError {
    Unterminated,
    SyntaxNear(String),
    MissingValue(String),
}

/// Reads a top-level file; an unreadable file is an error without a line.
pub fn read_file(path: &Path, reading: &mut Reading) {
    match fs::read(path) {
        Ok(bytes) => read_bytes(&bytes, path, 0, reading),
        Err(e) => reading.errors.push(format!(
            "could not open configuration file \"{}\": {e}",
            path.display()
        )),
    }
}

/// Reads the contents of `origin`, which sits `depth` includes deep.
pub fn read_bytes(bytes: &[u8], origin: &Path, depth: usize, reading: &mut Reading) {
    // Some editors start UTF-8 files with a byte order mark.
    let bytes = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line_number = index + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let (text, valid_utf8) = match std::str::from_utf8(raw) {
            Ok(s) => (s.to_string(), true),
            Err(_) => (String::from_utf8_lossy(raw).into_owned(), false),
        };
        let here = format!("{}:{line_number}", origin.display());
        match lex_line(&text) {
            Ok(Line::Blank) => {}
            Ok(Line::Setting { key, .. }) if !valid_utf8 => reading.errors.push(format!(
                "{here}: invalid UTF-8 byte sequence in the line of parameter \"{key}\""
            )),
            Ok(Line::Setting { key, value }) => {
                let entry = Entry {
                    key,
                    value,
                    file: origin.to_path_buf(),
                    line: line_number,
                };
                read_setting(entry, depth, reading);
            }
            Err(e) => reading.errors.push(describe_line_error(&here, e)),
        }
    }
}

fn describe_line_error(here: &str, error: LineError) -> String {
    match error {
        LineError::Unterminated => format!("{here}: unterminated quoted string"),
        LineError::SyntaxNear(token) => format!("{here}: syntax error near \"{token}\""),
        LineError::MissingValue(key) => {
            format!("{here}: missing value for parameter \"{key}\" (use '' for an empty value)")
        }
    }
}

/// Include directives are followed here; anything else is kept for `mod.rs`.
fn read_setting(entry: Entry, depth: usize, reading: &mut Reading) {
    match entry.key.as_str() {
        "include" => include_file(&entry, depth, false, reading),
        "include_if_exists" => include_file(&entry, depth, true, reading),
        "include_dir" => include_dir(&entry, depth, reading),
        _ => reading.entries.push(entry),
    }
}

/// Resolves an include target against the directory of the including file.
fn include_target(entry: &Entry, reading: &mut Reading, depth: usize) -> Option<PathBuf> {
    if entry.value.is_empty() {
        reading.errors.push(format!(
            "{}: empty file name in \"{}\"",
            entry.location(),
            entry.key
        ));
        return None;
    }
    let target = match entry.file.parent() {
        Some(dir) => dir.join(&entry.value),
        None => PathBuf::from(&entry.value),
    };
    if depth + 1 > MAX_INCLUDE_DEPTH {
        reading.errors.push(format!(
            "{}: could not open configuration file \"{}\": maximum nesting depth ({MAX_INCLUDE_DEPTH}) exceeded",
            entry.location(),
            target.display()
        ));
        return None;
    }
    Some(target)
}

fn include_file(entry: &Entry, depth: usize, if_exists: bool, reading: &mut Reading) {
    let Some(target) = include_target(entry, reading, depth) else {
        return;
    };
    match fs::read(&target) {
        Ok(bytes) => read_bytes(&bytes, &target, depth + 1, reading),
        Err(e) if if_exists && e.kind() == std::io::ErrorKind::NotFound => {
            crate::log_debug!(
                "skipping missing configuration file \"{}\"",
                target.display()
            );
        }
        Err(e) => reading.errors.push(format!(
            "{}: could not open configuration file \"{}\": {e}",
            entry.location(),
            target.display()
        )),
    }
}

fn include_dir(entry: &Entry, depth: usize, reading: &mut Reading) {
    let Some(dir) = include_target(entry, reading, depth) else {
        return;
    };
    match conf_files_in(&dir) {
        Ok(files) => {
            for file in files {
                match fs::read(&file) {
                    Ok(bytes) => read_bytes(&bytes, &file, depth + 1, reading),
                    Err(e) => reading.errors.push(format!(
                        "{}: could not open configuration file \"{}\": {e}",
                        entry.location(),
                        file.display()
                    )),
                }
            }
        }
        Err(e) => reading.errors.push(format!(
            "{}: could not open configuration directory \"{}\": {e}",
            entry.location(),
            dir.display()
        )),
    }
}

/// The `*.conf` files of `dir` in name order, skipping hidden files as
/// PostgreSQL does (editors leave `.foo.conf.swp`-like files behind).
fn conf_files_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for item in fs::read_dir(dir)? {
        let path = item?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.starts_with('.') || !name.ends_with(".conf") || !path.is_file() {
            continue;
        }
        files.push(path);
    }
    files.sort();
    Ok(files)
}

/// Reads one line: `name [=] value [# comment]`.
fn lex_line(line: &str) -> Result<Line, LineError> {
    let rest = line.trim_start();
    if rest.is_empty() || rest.starts_with('#') {
        return Ok(Line::Blank);
    }
    let key_len = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .unwrap_or(rest.len());
    let key = &rest[..key_len];
    if !key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        return Err(LineError::SyntaxNear(excerpt(rest)));
    }
    let key = key.to_ascii_lowercase();
    let after_key = rest[key_len..].trim_start();
    let after_equals = after_key
        .strip_prefix('=')
        .unwrap_or(after_key)
        .trim_start();
    if after_equals.is_empty() || after_equals.starts_with('#') {
        return Err(LineError::MissingValue(key));
    }
    let (value, tail) = match after_equals.strip_prefix('\'') {
        Some(quoted) => unquote(quoted)?,
        None => split_unquoted(after_equals),
    };
    let tail = tail.trim_start();
    if !(tail.is_empty() || tail.starts_with('#')) {
        return Err(LineError::SyntaxNear(excerpt(tail)));
    }
    Ok(Line::Setting { key, value })
}

/// An unquoted value runs to the first blank, `#` or quote.
fn split_unquoted(text: &str) -> (String, &str) {
    let end = text
        .find(|c: char| c.is_whitespace() || c == '#' || c == '\'')
        .unwrap_or(text.len());
    (text[..end].to_string(), &text[end..])
}

/// Reads a quoted value (after the opening quote) and returns it with the
/// text after the closing quote. `''` and `\x` both yield the quoted
/// character, so `'it''s'` and `'it\'s'` are both `it's`.
fn unquote(text: &str) -> Result<(String, &str), LineError> {
    let mut value = String::new();
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '\'' if chars.peek().map(|&(_, n)| n) == Some('\'') => {
                chars.next();
                value.push('\'');
            }
            '\'' => return Ok((value, &text[i + 1..])),
            '\\' => match chars.next() {
                Some((_, escaped)) => value.push(escaped),
                None => return Err(LineError::Unterminated),
            },
            other => value.push(other),
        }
    }
    Err(LineError::Unterminated)
}

/// The first word of `text`, shortened, for "syntax error near".
fn excerpt(text: &str) -> String {
    let word = text.split_whitespace().next().unwrap_or(text);
    let mut short: String = word.chars().take(EXCERPT_CHARS).collect();
    if word.chars().count() > EXCERPT_CHARS {
        short.push_str("...");
    }
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(key: &str, value: &str) -> Result<Line, LineError> {
        Ok(Line::Setting {
            key: key.to_string(),
            value: value.to_string(),
        })
    }

    #[test]
    fn blank_and_comment_lines() {
        for line in ["", "   ", "\t", "# c", "   # indented", "\t#x = 'y"] {
            assert_eq!(lex_line(line), Ok(Line::Blank), "{line:?}");
        }
    }

    #[test]
    fn equals_sign_is_optional() {
        assert_eq!(lex_line("node_id = 3"), setting("node_id", "3"));
        assert_eq!(lex_line("node_id=3"), setting("node_id", "3"));
        assert_eq!(lex_line("node_id 3"), setting("node_id", "3"));
        assert_eq!(lex_line("  node_id\t3  "), setting("node_id", "3"));
    }

    #[test]
    fn keys_are_case_insensitive() {
        assert_eq!(lex_line("Node_ID = 3"), setting("node_id", "3"));
    }

    #[test]
    fn inline_comments_outside_quotes() {
        assert_eq!(
            lex_line("failover=automatic # note"),
            setting("failover", "automatic")
        );
        assert_eq!(
            lex_line("failover=automatic#note"),
            setting("failover", "automatic")
        );
        assert_eq!(
            lex_line("log_file='/tmp/x#y.log' # c"),
            setting("log_file", "/tmp/x#y.log")
        );
    }

    #[test]
    fn quoted_values_and_escapes() {
        assert_eq!(lex_line("node_name 'it''s'"), setting("node_name", "it's"));
        assert_eq!(lex_line(r"node_name 'it\'s'"), setting("node_name", "it's"));
        assert_eq!(lex_line("x = ''"), setting("x", ""));
        assert_eq!(
            lex_line("conninfo='host=a user=b'"),
            setting("conninfo", "host=a user=b")
        );
    }

    #[test]
    fn lenient_unquoted_values() {
        assert_eq!(
            lex_line("data_directory=/var/lib/pg"),
            setting("data_directory", "/var/lib/pg")
        );
        assert_eq!(lex_line("priority = -5"), setting("priority", "-5"));
        assert_eq!(lex_line("x = 5min"), setting("x", "5min"));
    }

    #[test]
    fn syntax_errors() {
        assert_eq!(lex_line("x = 'abc"), Err(LineError::Unterminated));
        assert_eq!(lex_line(r"x = 'abc\"), Err(LineError::Unterminated));
        assert_eq!(
            lex_line("conninfo = host=a port=5"),
            Err(LineError::SyntaxNear("port=5".into()))
        );
        assert_eq!(lex_line("= 5"), Err(LineError::SyntaxNear("=".into())));
        assert_eq!(
            lex_line("x = 'a' junk"),
            Err(LineError::SyntaxNear("junk".into()))
        );
        assert_eq!(
            lex_line("node_id ="),
            Err(LineError::MissingValue("node_id".into()))
        );
        assert_eq!(
            lex_line("node_id # c"),
            Err(LineError::MissingValue("node_id".into()))
        );
    }

    #[test]
    fn long_junk_is_shortened() {
        let junk = "!".repeat(10_000);
        match lex_line(&junk) {
            Err(LineError::SyntaxNear(t)) => assert_eq!(t.chars().count(), EXCERPT_CHARS + 3),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut reading = Reading::default();
        let mut bytes: Vec<u8> = (0..=255u8).collect();
        bytes.extend_from_slice(b"\nkey = '\xff\xfe'\n\r\n\0\0\n'''\n\\\n");
        read_bytes(&bytes, Path::new("/x.conf"), 0, &mut reading);
        assert!(!reading.errors.is_empty());
    }

    #[test]
    fn non_utf8_in_a_comment_is_fine_in_a_value_is_not() {
        let mut reading = Reading::default();
        read_bytes(
            b"# caf\xe9\nnode_name='caf\xe9'\n",
            Path::new("/x.conf"),
            0,
            &mut reading,
        );
        assert_eq!(
            reading.errors,
            vec!["/x.conf:2: invalid UTF-8 byte sequence in the line of parameter \"node_name\""]
        );
    }

    #[test]
    fn byte_order_mark_is_skipped() {
        let mut reading = Reading::default();
        read_bytes(
            b"\xef\xbb\xbfnode_id=1\n",
            Path::new("/x.conf"),
            0,
            &mut reading,
        );
        assert!(reading.errors.is_empty(), "{:?}", reading.errors);
        assert_eq!(reading.entries[0].key, "node_id");
    }

    #[test]
    fn crlf_and_line_numbers() {
        let mut reading = Reading::default();
        read_bytes(
            b"a=1\r\n\r\nb = 'x'\r\n",
            Path::new("/x.conf"),
            0,
            &mut reading,
        );
        assert!(reading.errors.is_empty());
        let got: Vec<(String, String, usize)> = reading
            .entries
            .into_iter()
            .map(|e| (e.key, e.value, e.line))
            .collect();
        assert_eq!(
            got,
            vec![("a".into(), "1".into(), 1), ("b".into(), "x".into(), 3)]
        );
    }

    #[test]
    fn errors_name_file_and_line() {
        let mut reading = Reading::default();
        read_bytes(
            b"a=1\nb='x\n\n9 junk\n",
            Path::new("/etc/r.conf"),
            0,
            &mut reading,
        );
        assert_eq!(
            reading.errors,
            vec![
                "/etc/r.conf:2: unterminated quoted string",
                "/etc/r.conf:4: syntax error near \"9\"",
            ]
        );
    }

    #[test]
    fn includes_are_relative_to_the_including_file() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        fs::create_dir(&sub).unwrap();
        fs::write(sub.join("b.conf"), "b = 2\ninclude '../c.conf'\n").unwrap();
        fs::write(dir.path().join("c.conf"), "c = 3\n").unwrap();
        let main = dir.path().join("main.conf");
        fs::write(
            &main,
            "a = 1\ninclude 'sub/b.conf'\ninclude_if_exists 'nope.conf'\nd = 4\n",
        )
        .unwrap();
        let mut reading = Reading::default();
        read_file(&main, &mut reading);
        assert!(reading.errors.is_empty(), "{:?}", reading.errors);
        let keys: Vec<&str> = reading.entries.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["a", "b", "c", "d"]);
        assert_eq!(reading.entries[2].file, sub.join("../c.conf"));
    }

    #[test]
    fn missing_include_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("main.conf");
        fs::write(&main, "\ninclude 'nope.conf'\n").unwrap();
        let mut reading = Reading::default();
        read_file(&main, &mut reading);
        assert_eq!(reading.errors.len(), 1);
        assert!(reading.errors[0].starts_with(&format!("{}:2: could not open", main.display())));
        assert!(reading.errors[0].contains("nope.conf"));
    }

    #[test]
    fn include_dir_reads_conf_files_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        let confd = dir.path().join("conf.d");
        fs::create_dir(&confd).unwrap();
        fs::write(confd.join("20-b.conf"), "b = 2\n").unwrap();
        fs::write(confd.join("10-a.conf"), "a = 1\n").unwrap();
        fs::write(confd.join(".hidden.conf"), "h = 1\n").unwrap();
        fs::write(confd.join("notes.txt"), "t = 1\n").unwrap();
        let main = dir.path().join("main.conf");
        fs::write(&main, "include_dir 'conf.d'\n").unwrap();
        let mut reading = Reading::default();
        read_file(&main, &mut reading);
        assert!(reading.errors.is_empty(), "{:?}", reading.errors);
        let keys: Vec<&str> = reading.entries.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["a", "b"]);
    }

    #[test]
    fn include_loops_stop_at_the_depth_limit() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("loop.conf");
        fs::write(&main, "include 'loop.conf'\n").unwrap();
        let mut reading = Reading::default();
        read_file(&main, &mut reading);
        assert_eq!(reading.errors.len(), 1);
        assert!(reading.errors[0].contains("maximum nesting depth"));
    }

    #[test]
    fn unreadable_top_level_file() {
        let mut reading = Reading::default();
        read_file(Path::new("/nonexistent/repmgr.conf"), &mut reading);
        assert_eq!(reading.errors.len(), 1);
        assert!(reading.errors[0]
            .starts_with("could not open configuration file \"/nonexistent/repmgr.conf\""));
    }
}
