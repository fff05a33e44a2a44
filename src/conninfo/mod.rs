//! libpq-compatible connection strings.
//!
//! The `postgres` crate parses only part of libpq's syntax, rejects keys that
//! libpq accepts (`passfile`, `fallback_application_name`, `service`, ...) and
//! ignores the `PG*` environment and `~/.pgpass`. repmgr stores and passes
//! conninfo strings around verbatim (node records, `primary_conninfo`), so this
//! module parses them as libpq does, keeps their order for rewriting, and
//! resolves them into a [`ConnTarget`] the way libpq would before connecting.
//!
//! [`ConnInfo`] lives here; `parse.rs` reads and quotes the two libpq
//! forms, `resolve.rs` turns a [`ConnInfo`] into a [`ConnTarget`], and
//! `passfile.rs` reads `.pgpass`, `service.rs` service files, `ssl.rs`
//! resolves the TLS settings.

mod parse;
mod passfile;
mod resolve;
mod service;
mod ssl;

use std::fmt;

use parse::{parse_key_values, parse_uri, uri_prefix_len};

pub use parse::{is_libpq_keyword, quote_value, LIBPQ_KEYWORDS};
pub use passfile::lookup_passfile;
pub use resolve::{
    os_user_name, ConnTarget, Endpoint, EnvLookup, ServerRole, DEFAULT_PORT, DEFAULT_SOCKET_DIR,
    MIN_CONNECT_TIMEOUT,
};
pub use ssl::{RootCert, SslMode, SslSettings};

/// A parsed connection string: libpq keywords in the order given.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConnInfo {
    params: Vec<(String, String)>,
}

impl ConnInfo {
    pub fn new() -> ConnInfo {
        ConnInfo::default()
    }

    /// Parses either libpq form: `key=value ...` or a `postgresql://` URI.
    /// Errors carry libpq's wording, for repmgr's DETAIL lines.
    pub fn parse(s: &str) -> std::result::Result<ConnInfo, String> {
        let params = if uri_prefix_len(s).is_some() {
            parse_uri(s)?
        } else {
            parse_key_values(s)?
        };
        let mut ci = ConnInfo::new();
        for (k, v) in params {
            if !is_libpq_keyword(&k) {
                return Err(format!("invalid connection option \"{k}\""));
            }
            ci.set(&k, &v);
        }
        Ok(ci)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Replaces the value in place (keeping the key's position) or appends.
    pub fn set(&mut self, key: &str, value: &str) {
        match self.params.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value.to_string(),
            None => self.params.push((key.to_string(), value.to_string())),
        }
    }

    /// Sets the value only when the key is absent (repmgr's `param_set_ine`).
    pub fn set_if_absent(&mut self, key: &str, value: &str) {
        if !self.contains(key) {
            self.set(key, value);
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<String> {
        let pos = self.params.iter().position(|(k, _)| k == key)?;
        Some(self.params.remove(pos).1)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// The raw `host` value (may be a list or a socket directory).
    pub fn host(&self) -> Option<&str> {
        self.get("host")
    }
    pub fn port(&self) -> Option<&str> {
        self.get("port")
    }
    pub fn user(&self) -> Option<&str> {
        self.get("user")
    }
    pub fn dbname(&self) -> Option<&str> {
        self.get("dbname")
    }

    /// The key=value string without the secrets (the password and the
    /// client key's passphrase), for log lines.
    pub fn to_string_without_password(&self) -> String {
        let mut shown = self.clone();
        for k in SECRET_KEYS {
            shown.remove(k);
        }
        shown.to_string()
    }
}

/// Keys whose values are secrets: never in a log line or a Debug.
const SECRET_KEYS: &[&str] = &["password", "sslpassword"];

/// Never shows the secrets, so `{:?}` is safe in logs and panics.
impl fmt::Debug for ConnInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: Vec<(&str, &str)> = self
            .iter()
            .map(|(k, v)| {
                if SECRET_KEYS.contains(&k) {
                    (k, "********")
                } else {
                    (k, v)
                }
            })
            .collect();
        f.debug_struct("ConnInfo").field("params", &shown).finish()
    }
}

/// `key=value` pairs separated by spaces, quoted so that [`ConnInfo::parse`]
/// (and libpq) read back the same values.
impl fmt::Display for ConnInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, v)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{k}={}", quote_value(v))?;
        }
        Ok(())
    }
}

/// Whether a value (`-d`, a primary_conninfo) is a conninfo string rather
/// than a database name.
pub fn looks_like_conninfo(s: &str) -> bool {
    s.contains('=') || s.starts_with("postgresql://") || s.starts_with("postgres://")
}

/// Parses `s`, naming `what` it is in the error (exit 1).
pub fn parse_described(s: &str, what: &str) -> crate::error::Result<ConnInfo> {
    ConnInfo::parse(s).map_err(|e| {
        crate::error::Error::config(format!("unable to parse the {what}"))
            .detail(format!("{e}: \"{s}\""))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};

    use crate::error::Result;

    pub(super) fn parse(s: &str) -> ConnInfo {
        ConnInfo::parse(s).unwrap()
    }

    /// An injected environment: tests never touch the process environment.
    pub(super) fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    pub(super) fn resolve_in(ci: &str, vars: &[(&str, &str)]) -> Result<ConnTarget> {
        parse(ci).resolve_with(&env_of(vars))
    }

    pub(super) fn write_passfile(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(text.as_bytes()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn get_set_remove_contains() {
        let mut ci = parse("host=a port=1");
        ci.set("port", "2");
        ci.set("user", "u");
        ci.set_if_absent("user", "other");
        assert_eq!(ci.port(), Some("2"));
        assert_eq!(ci.user(), Some("u"));
        assert_eq!(ci.host(), Some("a"));
        assert_eq!(ci.dbname(), None);
        assert_eq!(ci.remove("host"), Some("a".into()));
        assert!(!ci.contains("host"));
        assert_eq!(ci.to_string(), "port=2 user=u");
    }

    #[test]
    fn display_quotes_and_round_trips() {
        let mut ci = ConnInfo::new();
        for (k, v) in [
            ("host", "db1"),
            ("password", "it's"),
            ("options", "-c a=b"),
            ("dbname", "back\\slash"),
            ("user", ""),
        ] {
            ci.set(k, v);
        }
        let s = ci.to_string();
        assert_eq!(
            s,
            "host=db1 password='it\\'s' options='-c a=b' dbname='back\\\\slash' user=''"
        );
        assert_eq!(ConnInfo::parse(&s).unwrap(), ci);
        assert_eq!(
            parse("postgresql://x:y@h/d").to_string(),
            "user=x password=y host=h dbname=d"
        );
    }

    #[test]
    fn passwords_stay_out_of_debug_and_log_strings() {
        let ci = parse("host=h password=hunter2 sslpassword=keypass");
        assert!(!format!("{ci:?}").contains("hunter2"));
        assert!(!format!("{ci:?}").contains("keypass"));
        assert_eq!(ci.to_string_without_password(), "host=h");
        let t = ci.resolve_with(&env_of(&[("PGUSER", "u")])).unwrap();
        assert!(!format!("{t:?}").contains("hunter2"));
        assert!(!format!("{t:?}").contains("keypass"));
        assert!(!t.describe().contains("hunter2"));
    }
}
