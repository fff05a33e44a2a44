//! Reading libpq's two connection string forms, `key=value ...` and
//! `postgresql://` URIs, with libpq's error wording; and quoting values so
//! that a written string reads back the same.

/// Every keyword libpq (PostgreSQL 17) accepts; anything else is an error.
pub const LIBPQ_KEYWORDS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "channel_binding",
    "connect_timeout",
    "client_encoding",
    "options",
    "application_name",
    "fallback_application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "replication",
    "gssencmode",
    "sslmode",
    "requiressl",
    "sslcompression",
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslcertmode",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "requirepeer",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "krbsrvname",
    "gsslib",
    "gssdelegation",
    "service",
    "target_session_attrs",
    "load_balance_hosts",
];

pub fn is_libpq_keyword(key: &str) -> bool {
    LIBPQ_KEYWORDS.contains(&key)
}

/// Quotes a value for a key=value string when libpq would need it.
pub fn quote_value(v: &str) -> String {
    let plain = !v.is_empty()
        && !v
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '\\');
    if plain {
        return v.to_string();
    }
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

// ---------------------------------------------------------------------------
// key=value form (libpq's conninfo_parse)

pub(super) fn parse_key_values(s: &str) -> std::result::Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut it = s.chars().peekable();
    loop {
        skip_whitespace(&mut it);
        if it.peek().is_none() {
            break;
        }
        let key = read_key(&mut it);
        skip_whitespace(&mut it);
        if it.next() != Some('=') {
            return Err(format!(
                "missing \"=\" after \"{key}\" in connection info string"
            ));
        }
        skip_whitespace(&mut it);
        let value = if it.peek() == Some(&'\'') {
            it.next();
            read_quoted_value(&mut it)?
        } else {
            read_unquoted_value(&mut it)
        };
        out.push((key, value));
    }
    Ok(out)
}

type Chars<'a> = std::iter::Peekable<std::str::Chars<'a>>;

fn skip_whitespace(it: &mut Chars) {
    while it.peek().is_some_and(|c| c.is_whitespace()) {
        it.next();
    }
}

fn read_key(it: &mut Chars) -> String {
    let mut key = String::new();
    while let Some(&c) = it.peek() {
        if c == '=' || c.is_whitespace() {
            break;
        }
        key.push(c);
        it.next();
    }
    key
}

fn read_quoted_value(it: &mut Chars) -> std::result::Result<String, String> {
    let mut val = String::new();
    loop {
        match it.next() {
            None => return Err("unterminated quoted string in connection info string".into()),
            Some('\\') => match it.next() {
                Some(c) => val.push(c),
                None => return Err("unterminated quoted string in connection info string".into()),
            },
            Some('\'') => return Ok(val),
            Some(c) => val.push(c),
        }
    }
}

fn read_unquoted_value(it: &mut Chars) -> String {
    let mut val = String::new();
    while let Some(&c) = it.peek() {
        if c.is_whitespace() {
            break;
        }
        it.next();
        if c == '\\' {
            // libpq keeps a trailing lone backslash out of the value.
            if let Some(n) = it.next() {
                val.push(n);
            }
        } else {
            val.push(c);
        }
    }
    val
}

// ---------------------------------------------------------------------------
// URI form (libpq's conninfo_uri_parse_options)

pub(super) fn uri_prefix_len(s: &str) -> Option<usize> {
    ["postgresql://", "postgres://"]
        .iter()
        .find(|p| s.starts_with(*p))
        .map(|p| p.len())
}

pub(super) fn parse_uri(uri: &str) -> std::result::Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let rest = &uri[uri_prefix_len(uri).unwrap_or(0)..];

    // Credentials: everything before the first '@' that precedes the path
    // (libpq's rule: an '@' inside a password must be percent-encoded).
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (mut rest, credentials) = match rest[..authority_end].find('@') {
        Some(at) => (&rest[at + 1..], Some(&rest[..at])),
        None => (rest, None),
    };
    if let Some(cred) = credentials {
        let (user, password) = match cred.split_once(':') {
            Some((u, p)) => (u, Some(p)),
            None => (cred, None),
        };
        push_nonempty(&mut out, "user", percent_decode(user)?);
        if let Some(p) = password {
            push_nonempty(&mut out, "password", percent_decode(p)?);
        }
    }

    let (hosts, ports, after_hosts) = parse_uri_hosts(rest, uri)?;
    rest = after_hosts;
    if hosts.iter().any(|h| !h.is_empty()) {
        out.push(("host".into(), hosts.join(",")));
    }
    if ports.iter().any(|p| !p.is_empty()) {
        out.push(("port".into(), ports.join(",")));
    }

    if let Some(path) = rest.strip_prefix('/') {
        let end = path.find('?').unwrap_or(path.len());
        push_nonempty(&mut out, "dbname", percent_decode(&path[..end])?);
        rest = &path[end..];
    }
    if let Some(query) = rest.strip_prefix('?') {
        out.extend(parse_uri_query(query)?);
    }
    Ok(out)
}

fn push_nonempty(out: &mut Vec<(String, String)>, key: &str, value: String) {
    if !value.is_empty() {
        out.push((key.to_string(), value));
    }
}

/// Reads `host[:port][,host[:port]...]`, returning the hosts, the ports and
/// what follows (the path or query).
fn parse_uri_hosts<'a>(
    mut rest: &'a str,
    uri: &str,
) -> std::result::Result<(Vec<String>, Vec<String>, &'a str), String> {
    let (mut hosts, mut ports) = (Vec::new(), Vec::new());
    loop {
        let host;
        if let Some(v6) = rest.strip_prefix('[') {
            let close = v6.find(']').ok_or_else(|| {
                format!("end of string reached when looking for matching \"]\" in IPv6 host address in URI: \"{uri}\"")
            })?;
            if close == 0 {
                return Err(format!(
                    "IPv6 host address may not be empty in URI: \"{uri}\""
                ));
            }
            host = v6[..close].to_string();
            rest = &v6[close + 1..];
        } else {
            let end = rest.find([':', '/', '?', ',']).unwrap_or(rest.len());
            host = percent_decode(&rest[..end])?;
            rest = &rest[end..];
        }
        let mut port = String::new();
        if let Some(p) = rest.strip_prefix(':') {
            let end = p.find(['/', '?', ',']).unwrap_or(p.len());
            port = percent_decode(&p[..end])?;
            rest = &p[end..];
        }
        if let Some(c) = rest
            .chars()
            .next()
            .filter(|c| !matches!(c, ',' | '/' | '?'))
        {
            return Err(format!(
                "unexpected character \"{c}\" at position {} in URI (expected \":\" or \"/\"): \"{uri}\"",
                uri.len() - rest.len() + 1
            ));
        }
        hosts.push(host);
        ports.push(port);
        match rest.strip_prefix(',') {
            Some(more) => rest = more,
            None => return Ok((hosts, ports, rest)),
        }
    }
}

fn parse_uri_query(query: &str) -> std::result::Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(format!(
                "missing key/value separator \"=\" in URI query parameter: \"{pair}\""
            ));
        };
        if v.contains('=') {
            return Err(format!(
                "extra key/value separator \"=\" in URI query parameter: \"{pair}\""
            ));
        }
        let (mut key, mut value) = (percent_decode(k)?, percent_decode(v)?);
        // libpq's JDBC compatibility: ssl=true means sslmode=require.
        if key == "ssl" && value == "true" {
            key = "sslmode".into();
            value = "require".into();
        }
        if !is_libpq_keyword(&key) {
            return Err(format!("invalid URI query parameter: \"{key}\""));
        }
        out.push((key, value));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> std::result::Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let byte = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .ok_or_else(|| format!("invalid percent-encoded token: \"{s}\""))?;
        if byte == 0 {
            return Err(format!(
                "forbidden value %00 in percent-encoded value: \"{s}\""
            ));
        }
        out.push(byte);
        i += 3;
    }
    String::from_utf8(out).map_err(|_| format!("invalid percent-encoded token: \"{s}\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conninfo::tests::parse;
    use crate::conninfo::ConnInfo;

    fn pairs(ci: &ConnInfo) -> Vec<(&str, &str)> {
        ci.iter().collect()
    }

    // --- key=value ---------------------------------------------------------

    #[test]
    fn key_values_with_spaces_quotes_and_escapes() {
        let ci = parse("  host = db1 port=5433 password='it\\'s a \\\\ pw' dbname=x\\ y user=''  ");
        assert_eq!(
            pairs(&ci),
            vec![
                ("host", "db1"),
                ("port", "5433"),
                ("password", "it's a \\ pw"),
                ("dbname", "x y"),
                ("user", ""),
            ]
        );
        assert!(parse("").is_empty());
        assert_eq!(pairs(&parse("options=")), vec![("options", "")]);
    }

    #[test]
    fn key_value_errors_use_libpq_wording() {
        assert_eq!(
            ConnInfo::parse("host=a foo").unwrap_err(),
            "missing \"=\" after \"foo\" in connection info string"
        );
        assert_eq!(
            ConnInfo::parse("password='abc").unwrap_err(),
            "unterminated quoted string in connection info string"
        );
        assert_eq!(
            ConnInfo::parse("host=a foo=bar").unwrap_err(),
            "invalid connection option \"foo\""
        );
    }

    #[test]
    fn every_libpq_keyword_is_accepted() {
        for k in LIBPQ_KEYWORDS {
            assert!(ConnInfo::parse(&format!("{k}=1")).is_ok(), "{k}");
        }
    }

    #[test]
    fn a_repeated_key_keeps_its_place_and_the_last_value() {
        assert_eq!(
            pairs(&parse("host=a port=1 host=b")),
            vec![("host", "b"), ("port", "1")]
        );
    }

    // --- URI -----------------------------------------------------------------

    #[test]
    fn uri_with_everything() {
        let ci = parse("postgresql://us%40r:p%3Aw@db1:5433,[::1]:5434/my%20db?application_name=x&connect_timeout=5");
        assert_eq!(
            pairs(&ci),
            vec![
                ("user", "us@r"),
                ("password", "p:w"),
                ("host", "db1,::1"),
                ("port", "5433,5434"),
                ("dbname", "my db"),
                ("application_name", "x"),
                ("connect_timeout", "5"),
            ]
        );
    }

    #[test]
    fn uri_minimal_forms() {
        assert!(parse("postgresql://").is_empty());
        assert_eq!(pairs(&parse("postgres:///db")), vec![("dbname", "db")]);
        assert_eq!(
            pairs(&parse("postgresql:///db?host=/tmp/sock&port=5999")),
            vec![("dbname", "db"), ("host", "/tmp/sock"), ("port", "5999")]
        );
        assert_eq!(
            pairs(&parse("postgresql://%2Fvar%2Frun%2Fpostgresql/db")),
            vec![("host", "/var/run/postgresql"), ("dbname", "db")]
        );
        assert_eq!(
            pairs(&parse("postgresql://u@h")),
            vec![("user", "u"), ("host", "h")]
        );
        assert_eq!(
            pairs(&parse("postgresql://h?ssl=true")),
            vec![("host", "h"), ("sslmode", "require")]
        );
    }

    #[test]
    fn uri_errors() {
        assert_eq!(
            ConnInfo::parse("postgresql://h/db?foo=1").unwrap_err(),
            "invalid URI query parameter: \"foo\""
        );
        assert!(ConnInfo::parse("postgresql://h/db?port")
            .unwrap_err()
            .starts_with("missing key/value separator"));
        assert!(ConnInfo::parse("postgresql://h/d%zz")
            .unwrap_err()
            .starts_with("invalid percent-encoded token"));
        assert!(ConnInfo::parse("postgresql://h/d%00")
            .unwrap_err()
            .starts_with("forbidden value %00"));
        assert!(ConnInfo::parse("postgresql://[::1/db")
            .unwrap_err()
            .contains("IPv6"));
        assert!(ConnInfo::parse("postgresql://[::1]x/db")
            .unwrap_err()
            .starts_with("unexpected character \"x\""));
    }
}
