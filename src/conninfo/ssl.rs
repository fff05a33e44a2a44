//! The TLS settings of a connection, resolved as libpq resolves them: the
//! `ssl*` keys, then the `PGSSL*` variables, then libpq's defaults under
//! `~/.postgresql/`. Whether the files exist is looked at when connecting
//! (`db::tls`), as libpq does: a conninfo is resolved for other purposes too.

use std::fmt;
use std::path::{Path, PathBuf};

use super::ConnInfo;

/// The resolver's environment lookup (the same type as its `EnvLookup`,
/// spelled here so that this file does not import the resolver).
type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;
use crate::error::{Error, Result};

/// libpq's sslmode, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// The modes that fail without a root certificate to verify against.
    pub fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }

    /// The modes that never fall back to plaintext.
    pub fn requires(self) -> bool {
        self >= SslMode::Require
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where trusted CA certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    /// `sslrootcert=system`: the operating system's trusted roots.
    System,
    /// A PEM file, given or libpq's default `~/.postgresql/root.crt`.
    File(PathBuf),
}

/// Everything TLS needs, after environment and defaults.
#[derive(Clone, PartialEq, Eq)]
pub struct SslSettings {
    pub mode: SslMode,
    /// None only when neither a value nor a home directory is known.
    pub rootcert: Option<RootCert>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub crl: Option<PathBuf>,
    pub crldir: Option<PathBuf>,
    password: Option<String>,
    /// Send the host name in the handshake (libpq's `sslsni`, on by default).
    pub sni: bool,
    pub min_protocol: Option<String>,
    pub max_protocol: Option<String>,
}

impl SslSettings {
    /// The passphrase of an encrypted `sslkey`.
    pub fn key_password(&self) -> Option<&str> {
        self.password.as_deref()
    }
}

/// Never shows sslpassword.
impl fmt::Debug for SslSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SslSettings")
            .field("mode", &self.mode)
            .field("rootcert", &self.rootcert)
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field("crl", &self.crl)
            .field("crldir", &self.crldir)
            .field("sni", &self.sni)
            .finish_non_exhaustive()
    }
}

/// The keys read here, for the resolver's "ignored key" note.
pub const SSL_KEYS: &[&str] = &[
    "sslmode",
    "requiressl",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslcrl",
    "sslcrldir",
    "sslpassword",
    "sslsni",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
];

/// Blank values count as absent, as in the rest of the resolver.
fn value(ci: &ConnInfo, env: EnvLookup, key: &str, var: Option<&str>) -> Option<String> {
    let nonempty = |v: &String| !v.trim().is_empty();
    ci.get(key)
        .map(str::to_string)
        .filter(nonempty)
        .or_else(|| var.and_then(env).filter(nonempty))
}

/// libpq's home directory: `$HOME`, else the password database.
fn home_dir(env: EnvLookup) -> Option<PathBuf> {
    if let Some(h) = env("HOME").filter(|h| !h.is_empty()) {
        return Some(PathBuf::from(h));
    }
    let uid = nix::unistd::geteuid();
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.dir)
}

fn path_or_default(
    ci: &ConnInfo,
    env: EnvLookup,
    key: &str,
    var: &str,
    home: Option<&Path>,
    default: &str,
) -> Option<PathBuf> {
    value(ci, env, key, Some(var))
        .map(PathBuf::from)
        .or_else(|| home.map(|h| h.join(".postgresql").join(default)))
}

pub fn resolve_ssl(ci: &ConnInfo, env: EnvLookup) -> Result<SslSettings> {
    let requiressl = ci.get("requiressl").is_some_and(|v| v.trim() == "1");
    let given = match value(ci, env, "sslmode", Some("PGSSLMODE")) {
        Some(m) => Some(parse_mode(m.trim())?),
        None if requiressl => Some(SslMode::Require),
        None => None,
    };
    let home = home_dir(env);
    let home = home.as_deref();
    let rootcert = match value(ci, env, "sslrootcert", Some("PGSSLROOTCERT")) {
        Some(v) if v == "system" => Some(RootCert::System),
        Some(v) => Some(RootCert::File(PathBuf::from(v))),
        None => home.map(|h| RootCert::File(h.join(".postgresql").join("root.crt"))),
    };
    // libpq 16: the system's roots make sense only with the host name
    // checked (anyone can buy a certificate from a public CA).
    let mode = match (given, &rootcert) {
        (None, Some(RootCert::System)) => SslMode::VerifyFull,
        (Some(m), Some(RootCert::System)) if m != SslMode::VerifyFull => {
            return Err(Error::db_conn(format!(
                "weak sslmode \"{m}\" may not be used with sslrootcert=system (use \"verify-full\")"
            )))
        }
        (m, _) => m.unwrap_or(SslMode::Prefer),
    };
    let sni = value(ci, env, "sslsni", Some("PGSSLSNI")).is_none_or(|v| v.trim() != "0");
    Ok(SslSettings {
        mode,
        rootcert,
        cert: path_or_default(ci, env, "sslcert", "PGSSLCERT", home, "postgresql.crt"),
        key: path_or_default(ci, env, "sslkey", "PGSSLKEY", home, "postgresql.key"),
        crl: path_or_default(ci, env, "sslcrl", "PGSSLCRL", home, "root.crl"),
        crldir: value(ci, env, "sslcrldir", Some("PGSSLCRLDIR")).map(PathBuf::from),
        password: ci
            .get("sslpassword")
            .filter(|p| !p.is_empty())
            .map(str::to_string),
        sni,
        min_protocol: value(
            ci,
            env,
            "ssl_min_protocol_version",
            Some("PGSSLMINPROTOCOLVERSION"),
        ),
        max_protocol: value(
            ci,
            env,
            "ssl_max_protocol_version",
            Some("PGSSLMAXPROTOCOLVERSION"),
        ),
    })
}

fn parse_mode(m: &str) -> Result<SslMode> {
    Ok(match m {
        "disable" => SslMode::Disable,
        "allow" => SslMode::Allow,
        "prefer" => SslMode::Prefer,
        "require" => SslMode::Require,
        "verify-ca" => SslMode::VerifyCa,
        "verify-full" => SslMode::VerifyFull,
        other => {
            return Err(Error::db_conn(format!(
                "invalid sslmode value: \"{other}\""
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conninfo::tests::{env_of, parse};

    fn ssl(ci: &str, vars: &[(&str, &str)]) -> Result<SslSettings> {
        resolve_ssl(&parse(ci), &env_of(vars))
    }

    #[test]
    fn prefer_by_default_with_files_under_home() {
        let s = ssl("", &[("HOME", "/h")]).unwrap();
        assert_eq!(s.mode, SslMode::Prefer);
        assert_eq!(
            s.rootcert,
            Some(RootCert::File("/h/.postgresql/root.crt".into()))
        );
        assert_eq!(s.cert, Some("/h/.postgresql/postgresql.crt".into()));
        assert_eq!(s.key, Some("/h/.postgresql/postgresql.key".into()));
        assert_eq!(s.crl, Some("/h/.postgresql/root.crl".into()));
        assert!(s.sni);
    }

    #[test]
    fn string_beats_environment() {
        let env = [
            ("PGSSLMODE", "require"),
            ("PGSSLROOTCERT", "/env/ca"),
            ("PGSSLCERT", "/env/c"),
            ("PGSSLKEY", "/env/k"),
            ("PGSSLCRL", "/env/crl"),
        ];
        let s = ssl("", &env).unwrap();
        assert_eq!(s.mode, SslMode::Require);
        assert_eq!(s.rootcert, Some(RootCert::File("/env/ca".into())));
        assert_eq!(s.cert, Some("/env/c".into()));
        assert_eq!(s.key, Some("/env/k".into()));
        assert_eq!(s.crl, Some("/env/crl".into()));
        let s = ssl(
            "sslmode=verify-full sslrootcert=/s/ca sslkey=/s/k sslpassword=pw sslsni=0",
            &env,
        )
        .unwrap();
        assert_eq!(s.mode, SslMode::VerifyFull);
        assert_eq!(s.rootcert, Some(RootCert::File("/s/ca".into())));
        assert_eq!(s.key, Some("/s/k".into()));
        assert_eq!(s.key_password(), Some("pw"));
        assert!(!s.sni);
        assert!(!format!("{s:?}").contains("pw"));
    }

    #[test]
    fn requiressl_and_system_roots() {
        assert_eq!(ssl("requiressl=1", &[]).unwrap().mode, SslMode::Require);
        let s = ssl("sslrootcert=system", &[]).unwrap();
        assert_eq!(
            (s.mode, s.rootcert),
            (SslMode::VerifyFull, Some(RootCert::System))
        );
        let e = ssl("sslrootcert=system sslmode=require", &[]).unwrap_err();
        assert!(e.message().contains("weak sslmode \"require\""), "{e}");
        let e = ssl("sslmode=bogus", &[]).unwrap_err();
        assert_eq!(e.message(), "invalid sslmode value: \"bogus\"");
    }

    #[test]
    fn mode_order() {
        assert!(SslMode::VerifyCa.verifies() && !SslMode::Require.verifies());
        assert!(SslMode::Require.requires() && !SslMode::Prefer.requires());
    }
}
