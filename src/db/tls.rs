//! TLS as libpq sets it up, on OpenSSL: what is verified (the CA whenever
//! a root certificate is there, as libpq; the host name only for
//! verify-full), the client certificate and key (with libpq's permission
//! rule), CRLs, and errors that say which check failed and what to change.
//! Which attempts a sslmode makes is `tls_plan.rs`.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use openssl::pkey::PKey;
use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslVerifyMode, SslVersion};
use openssl::x509::store::{X509Lookup, X509StoreBuilder};
use openssl::x509::verify::X509VerifyFlags;
use postgres_openssl::MakeTlsConnector;

use crate::conninfo::{ConnTarget, Endpoint, RootCert, SslMode, SslSettings};
use crate::error::{Error, Result};

/// A TLS setup for one target: an OpenSSL connector and what it checks.
#[derive(Clone)]
pub struct TlsSetup {
    connector: SslConnector,
    verify_host: bool,
    sni: bool,
}

impl TlsSetup {
    /// The driver's connector.
    pub fn make_connector(&self) -> MakeTlsConnector {
        let mut m = MakeTlsConnector::new(self.connector.clone());
        let (verify_host, sni) = (self.verify_host, self.sni);
        m.set_callback(move |cfg, _domain| {
            cfg.set_verify_hostname(verify_host);
            cfg.set_use_server_name_indication(sni);
            Ok(())
        });
        m
    }

    /// A blocking handshake over `stream` (the raw ping): the caller bounds
    /// every read and write with its deadline.
    pub fn handshake<S: std::io::Read + std::io::Write>(
        &self,
        domain: &str,
        stream: S,
    ) -> Option<openssl::ssl::SslStream<S>> {
        let mut cfg = self.connector.configure().ok()?;
        cfg.set_verify_hostname(self.verify_host);
        cfg.set_use_server_name_indication(self.sni);
        cfg.connect(domain, stream).ok()
    }
}

fn tls_error(what: String) -> Error {
    Error::db_conn("connection to database failed").detail(what)
}

/// What the files a setup read looked like: a setup is reused only while
/// none of them was written, replaced, created, removed or chmodded.
type FileStamps = Vec<Option<(i64, i64, i64, u64)>>;

fn stamps(ssl: &SslSettings) -> FileStamps {
    let root = match &ssl.rootcert {
        Some(RootCert::File(p)) => Some(p.as_path()),
        _ => None,
    };
    [
        root,
        ssl.cert.as_deref(),
        ssl.key.as_deref(),
        ssl.crl.as_deref(),
    ]
    .into_iter()
    .map(|p| {
        let m = fs::metadata(p?).ok()?;
        Some((m.mtime(), m.mtime_nsec(), m.ctime(), m.ino()))
    })
    .collect()
}

/// Setups kept for reuse. repmgrd connects every few seconds; a fresh
/// OpenSSL context each time costs CPU, and memory the allocator keeps.
const SETUP_CACHE: usize = 8;

static SETUPS: std::sync::Mutex<Vec<(SslSettings, FileStamps, TlsSetup)>> =
    std::sync::Mutex::new(Vec::new());

/// The OpenSSL connector for `ssl`, as libpq's `initialize_SSL`; the one
/// made earlier for the same settings while their files are unchanged.
pub fn setup(ssl: &SslSettings) -> Result<TlsSetup> {
    let now = stamps(ssl);
    let mut cache = SETUPS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, _, t)) = cache.iter().find(|(s, st, _)| s == ssl && *st == now) {
        return Ok(t.clone());
    }
    let t = build(ssl)?;
    cache.retain(|(s, _, _)| s != ssl);
    if cache.len() >= SETUP_CACHE {
        cache.remove(0);
    }
    cache.push((ssl.clone(), now, t.clone()));
    Ok(t)
}

fn build(ssl: &SslSettings) -> Result<TlsSetup> {
    let failed = |what: &str, e: openssl::error::ErrorStack| tls_error(format!("{what}: {e}"));
    let mut b = SslConnector::builder(SslMethod::tls_client())
        .map_err(|e| failed("could not create the TLS context", e))?;
    b.set_min_proto_version(Some(protocol(
        ssl.min_protocol.as_deref(),
        SslVersion::TLS1_2,
    )?))
    .map_err(|e| failed("could not set ssl_min_protocol_version", e))?;
    if let Some(max) = ssl.max_protocol.as_deref() {
        b.set_max_proto_version(Some(protocol(Some(max), SslVersion::TLS1_3)?))
            .map_err(|e| failed("could not set ssl_max_protocol_version", e))?;
    }
    let have_root = match &ssl.rootcert {
        // The builder already trusts the system's roots.
        Some(RootCert::System) => true,
        Some(RootCert::File(p)) if p.exists() => {
            // Only this file's CAs, as libpq: not the system's too.
            let mut store = X509StoreBuilder::new()
                .map_err(|e| failed("could not create the certificate store", e))?;
            let lookup = store
                .add_lookup(X509Lookup::file())
                .map_err(|e| failed("could not create the certificate store", e))?;
            lookup.load_cert_file(p, SslFiletype::PEM).map_err(|e| {
                failed(
                    &format!("could not read root certificate file \"{}\"", p.display()),
                    e,
                )
            })?;
            load_crls(ssl, &mut store)?;
            b.set_cert_store(store.build());
            true
        }
        root if ssl.mode.verifies() => {
            let path = match root {
                Some(RootCert::File(p)) => p.display().to_string(),
                _ => "~/.postgresql/root.crt".to_string(),
            };
            return Err(tls_error(format!(
                "root certificate file \"{path}\" does not exist (sslmode={})",
                ssl.mode
            ))
            .hint(
                "Either provide the file, use the system's trusted roots with \
                 sslrootcert=system, or change sslmode to disable server certificate verification.",
            ));
        }
        _ => false,
    };
    b.set_verify(match have_root {
        true => SslVerifyMode::PEER,
        false => SslVerifyMode::NONE,
    });
    client_certificate(ssl, &mut b)?;
    Ok(TlsSetup {
        connector: b.build(),
        verify_host: have_root && ssl.mode == SslMode::VerifyFull,
        sni: ssl.sni,
    })
}

fn protocol(v: Option<&str>, default: SslVersion) -> Result<SslVersion> {
    Ok(match v {
        None => default,
        Some("TLSv1") => SslVersion::TLS1,
        Some("TLSv1.1") => SslVersion::TLS1_1,
        Some("TLSv1.2") => SslVersion::TLS1_2,
        Some("TLSv1.3") => SslVersion::TLS1_3,
        Some(other) => {
            return Err(
                tls_error(format!("invalid SSL protocol version \"{other}\""))
                    .hint("use TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3"),
            )
        }
    })
}

/// `sslcrl` (when the file exists) and `sslcrldir`, checked for the whole chain.
fn load_crls(ssl: &SslSettings, store: &mut X509StoreBuilder) -> Result<()> {
    let failed = |what: String, e: openssl::error::ErrorStack| tls_error(format!("{what}: {e}"));
    let mut any = false;
    if let Some(crl) = ssl.crl.as_deref().filter(|p| p.exists()) {
        let lookup = store
            .add_lookup(X509Lookup::file())
            .map_err(|e| failed("could not create the CRL lookup".into(), e))?;
        lookup.load_crl_file(crl, SslFiletype::PEM).map_err(|e| {
            failed(
                format!("could not read SSL CRL file \"{}\"", crl.display()),
                e,
            )
        })?;
        any = true;
    }
    if let Some(dir) = ssl.crldir.as_deref() {
        let lookup = store
            .add_lookup(X509Lookup::hash_dir())
            .map_err(|e| failed("could not create the CRL lookup".into(), e))?;
        lookup
            .add_dir(&dir.to_string_lossy(), SslFiletype::PEM)
            .map_err(|e| {
                failed(
                    format!("could not use SSL CRL directory \"{}\"", dir.display()),
                    e,
                )
            })?;
        any = true;
    }
    if any {
        store
            .set_flags(X509VerifyFlags::CRL_CHECK | X509VerifyFlags::CRL_CHECK_ALL)
            .map_err(|e| failed("could not enable CRL checks".into(), e))?;
    }
    Ok(())
}

/// `sslcert` if the file exists, with its `sslkey`; as libpq, a missing
/// certificate file means "no client certificate", not an error.
fn client_certificate(ssl: &SslSettings, b: &mut openssl::ssl::SslConnectorBuilder) -> Result<()> {
    let Some(cert) = ssl.cert.as_deref().filter(|p| p.exists()) else {
        return Ok(());
    };
    b.set_certificate_chain_file(cert).map_err(|e| {
        tls_error(format!(
            "could not read certificate file \"{}\": {e}",
            cert.display()
        ))
    })?;
    let key = match ssl.key.as_deref() {
        Some(k) if k.exists() => k,
        other => {
            let shown = other.map_or("~/.postgresql/postgresql.key".into(), |k| {
                k.display().to_string()
            });
            return Err(tls_error(format!(
                "certificate present, but not private key file \"{shown}\""
            ))
            .hint("set sslkey to the client certificate's key file"));
        }
    };
    check_key_file(key)?;
    let pem = fs::read(key).map_err(|e| {
        tls_error(format!(
            "could not open private key file \"{}\": {e}",
            key.display()
        ))
    })?;
    // Never OpenSSL's terminal prompt: no sslpassword means an empty one.
    let pass = ssl.key_password().unwrap_or("");
    let pkey = PKey::private_key_from_pem_passphrase(&pem, pass.as_bytes()).map_err(|e| {
        tls_error(format!(
            "could not load private key file \"{}\": {e}",
            key.display()
        ))
        .hint("if the key is encrypted, give its passphrase as sslpassword")
    })?;
    b.set_private_key(&pkey)
        .and_then(|()| b.check_private_key())
        .map_err(|e| {
            tls_error(format!(
                "certificate does not match private key file \"{}\": {e}",
                key.display()
            ))
        })
}

/// libpq's rule: a regular file, no group or world access, except group
/// read for a file owned by root.
fn check_key_file(key: &Path) -> Result<()> {
    let meta = fs::metadata(key).map_err(|e| {
        tls_error(format!(
            "could not open private key file \"{}\": {e}",
            key.display()
        ))
    })?;
    if !meta.is_file() {
        return Err(tls_error(format!(
            "private key file \"{}\" is not a regular file",
            key.display()
        )));
    }
    let mode = meta.mode();
    let too_open = match meta.uid() {
        0 => mode & 0o037 != 0,
        _ => mode & 0o077 != 0,
    };
    if too_open {
        return Err(tls_error(format!(
            "private key file \"{}\" has group or world access; file must have permissions \
             u=rw (0600) or less if owned by the current user, or permissions u=rw,g=r (0640) \
             or less if owned by root",
            key.display()
        ))
        .hint(format!("chmod 0600 {}", key.display())));
    }
    Ok(())
}

/// What to change after a failed TLS step, from the failure's text.
pub fn hint_for(cause: &str, target: &ConnTarget) -> Option<String> {
    let ssl = &target.ssl;
    let root = match &ssl.rootcert {
        Some(RootCert::File(p)) => format!("\"{}\"", p.display()),
        Some(RootCert::System) => "the system's trusted roots".into(),
        None => "no root certificate".into(),
    };
    if cause.contains("hostname mismatch") {
        let names: Vec<String> = target
            .endpoints
            .iter()
            .filter_map(|e| match e {
                Endpoint::Tcp { host: Some(h), .. } => Some(format!("\"{h}\"")),
                Endpoint::Tcp {
                    hostaddr: Some(a), ..
                } => Some(format!("\"{a}\"")),
                _ => None,
            })
            .collect();
        return Some(format!(
            "the server's certificate does not name the host {} (sslmode={}): connect with a \
             host name or address listed in its subjectAltName, or use sslmode=verify-ca",
            names.join(" or "),
            ssl.mode
        ));
    }
    if cause.contains("certificate verify failed") {
        return Some(format!(
            "the server's certificate could not be verified against {root}: set sslrootcert to \
             the CA that signed it{}",
            match ssl.mode {
                SslMode::VerifyCa | SslMode::VerifyFull => "",
                _ => ", or remove the root certificate file to skip verification",
            }
        ));
    }
    if cause.contains("server does not support TLS") {
        return Some(format!(
            "the server does not accept TLS connections (ssl=off?): enable ssl on the server, \
             or use a weaker sslmode than \"{}\"",
            ssl.mode
        ));
    }
    if cause.starts_with("TLS handshake failed") {
        return Some("check the server's ssl settings and the ssl* connection parameters".into());
    }
    None
}

/// A failed handshake in a few words: OpenSSL's reason ("certificate
/// verify failed") and the verification's own ("hostname mismatch"),
/// without the error stack's codes and source lines.
pub fn failure_text(e: &tokio_postgres::Error) -> Option<String> {
    if !is_tls_failure(e) {
        return None;
    }
    let outer = std::error::Error::source(e)?;
    let text = outer.to_string();
    let Some(ssl) = outer
        .source()
        .and_then(|s| s.downcast_ref::<openssl::ssl::Error>())
    else {
        // The driver's own words ("server does not support TLS").
        return Some(format!("TLS handshake failed: {text}"));
    };
    let reason = ssl
        .ssl_error()
        .and_then(|st| st.errors().first())
        .and_then(|x| x.reason().map(str::to_string))
        .or_else(|| ssl.io_error().map(|io| io.to_string()))
        .unwrap_or_else(|| ssl.to_string());
    // The connector appends the verification result after the SSL error.
    let verify = text
        .strip_prefix(&ssl.to_string())
        .and_then(|r| r.strip_prefix(": "))
        .filter(|v| !v.is_empty());
    Some(match verify {
        Some(v) => format!("TLS handshake failed: {reason}: {v}"),
        None => format!("TLS handshake failed: {reason}"),
    })
}

/// Whether a failed attempt is one TLS got wrong (a handshake error), as
/// opposed to a server that did not answer at all.
pub fn is_tls_failure(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_none() && e.to_string().contains("TLS")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn settings(ci: &str) -> SslSettings {
        crate::conninfo::ConnInfo::parse(ci)
            .unwrap()
            .resolve()
            .unwrap()
            .ssl
    }

    #[test]
    fn verify_modes_need_a_root_certificate() {
        let e = setup(&settings(
            "user=u sslmode=verify-ca sslrootcert=/nonexistent/ca.crt",
        ))
        .err()
        .unwrap();
        assert_eq!(e.code, crate::error::ExitCode::DbConn);
        let d = e.detail.clone().unwrap();
        assert!(
            d.contains("root certificate file \"/nonexistent/ca.crt\" does not exist"),
            "{d}"
        );
        // require without a root file: no verification, no error.
        let s = setup(&settings(
            "user=u sslmode=require sslrootcert=/nonexistent/ca.crt",
        ))
        .unwrap();
        assert!(!s.verify_host);
    }

    #[test]
    fn a_setup_is_reused_until_its_files_change() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.crt");
        let ci = format!("user=u sslmode=require sslrootcert={}", ca.display());
        let s = settings(&ci);
        assert!(!setup(&s).unwrap().verify_host);
        // A root certificate appearing is seen (and, being junk, refused).
        fs::write(&ca, "not a certificate").unwrap();
        let e = setup(&s).err().unwrap();
        assert!(e
            .detail
            .unwrap()
            .contains("could not read root certificate file"));
    }

    #[test]
    fn key_files_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k");
        fs::write(&key, "x").unwrap();
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        let owned_by_root = fs::metadata(&key).unwrap().uid() == 0;
        let e = check_key_file(&key).unwrap_err();
        assert!(e.detail.unwrap().contains("has group or world access"));
        fs::set_permissions(&key, fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(check_key_file(&key).is_ok(), owned_by_root);
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(check_key_file(&key).is_ok());
        assert!(check_key_file(dir.path()).is_err());
    }

    #[test]
    fn hints_name_the_check() {
        let s =
            crate::conninfo::ConnInfo::parse("host=db user=u sslmode=verify-full sslrootcert=/ca")
                .unwrap()
                .resolve()
                .unwrap();
        let h = hint_for("certificate verify failed: hostname mismatch", &s).unwrap();
        assert!(h.contains("subjectAltName") && h.contains("\"db\""), "{h}");
        let h = hint_for("certificate verify failed: self-signed certificate", &s).unwrap();
        assert!(h.contains("sslrootcert"), "{h}");
        let h = hint_for("server does not support TLS", &s).unwrap();
        assert!(h.contains("ssl=off"), "{h}");
        assert_eq!(hint_for("Connection refused", &s), None);
    }
}
