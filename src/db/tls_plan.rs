//! Which attempts a sslmode makes, as libpq: allow connects in plaintext,
//! then over TLS if the server turned it away; prefer over TLS, then in
//! plaintext if TLS failed or the server turned it away over TLS; the
//! stronger modes over TLS only. Unix sockets never use TLS.
//!
//! For allow and prefer the OpenSSL context is made only once the server
//! has said yes to TLS: a cluster without TLS then never initialises
//! OpenSSL, which would cost every repmgrd megabytes of memory for nothing
//! (and a context that cannot be set up is one more failed TLS attempt,
//! which libpq's allow and prefer survive). The stronger modes set it up
//! first, so a missing root certificate fails before anything is sent.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use postgres_openssl::TlsStream;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::config::SslMode as DriverSslMode;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};

use super::tls::{setup, TlsSetup};
use crate::conninfo::{ConnTarget, Endpoint, SslMode, SslSettings};
use crate::error::Result;

/// The TLS side of one attempt.
#[derive(Clone)]
pub enum Tls {
    /// Set up already (require and stronger).
    Ready(TlsSetup),
    /// Set up when the server accepts TLS (allow, prefer).
    Lazy(Arc<SslSettings>),
}

/// One way to try: the driver's TLS mode, with TLS when it may be used.
pub struct Attempt {
    pub mode: DriverSslMode,
    pub tls: Option<Tls>,
}

/// When the next attempt of a plan is made after this one failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// Never (the last attempt, or one that must not fall back).
    Never,
    /// The server turned us away (an error response): allow's plaintext try.
    OnServerError,
    /// TLS failed or the server turned us away over TLS: prefer's TLS try.
    OnTlsOrServerError,
}

/// libpq's attempts for `endpoints` (all sockets or all TCP).
pub fn plan(target: &ConnTarget, endpoints: &[Endpoint]) -> Result<Vec<(Attempt, Fallback)>> {
    let tcp = endpoints.iter().any(|e| matches!(e, Endpoint::Tcp { .. }));
    let plain = || Attempt {
        mode: DriverSslMode::Disable,
        tls: None,
    };
    let lazy = || Some(Tls::Lazy(Arc::new(target.ssl.clone())));
    Ok(match target.ssl.mode {
        _ if !tcp => vec![(plain(), Fallback::Never)],
        SslMode::Disable => vec![(plain(), Fallback::Never)],
        SslMode::Allow => vec![
            (plain(), Fallback::OnServerError),
            (
                Attempt {
                    mode: DriverSslMode::Require,
                    tls: lazy(),
                },
                Fallback::Never,
            ),
        ],
        SslMode::Prefer => vec![
            (
                Attempt {
                    mode: DriverSslMode::Prefer,
                    tls: lazy(),
                },
                Fallback::OnTlsOrServerError,
            ),
            (plain(), Fallback::Never),
        ],
        _ => vec![(
            Attempt {
                mode: DriverSslMode::Require,
                tls: Some(Tls::Ready(setup(&target.ssl)?)),
            },
            Fallback::Never,
        )],
    })
}

type BoxError = Box<dyn StdError + Send + Sync>;

/// The driver's connector for [`Tls::Lazy`].
#[derive(Clone)]
pub struct LazyTls(pub Arc<SslSettings>);

/// One handshake of [`LazyTls`], for the server named `domain`.
pub struct LazyConnect {
    ssl: Arc<SslSettings>,
    domain: String,
}

impl<S> MakeTlsConnect<S> for LazyTls
where
    S: AsyncRead + AsyncWrite + Unpin + std::fmt::Debug + Send + Sync + 'static,
{
    type Stream = TlsStream<S>;
    type TlsConnect = LazyConnect;
    type Error = BoxError;

    fn make_tls_connect(&mut self, domain: &str) -> std::result::Result<LazyConnect, BoxError> {
        Ok(LazyConnect {
            ssl: self.0.clone(),
            domain: domain.to_string(),
        })
    }
}

impl<S> TlsConnect<S> for LazyConnect
where
    S: AsyncRead + AsyncWrite + Unpin + std::fmt::Debug + Send + Sync + 'static,
{
    type Stream = TlsStream<S>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = std::result::Result<TlsStream<S>, BoxError>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let ready = setup(&self.ssl).map_err(|e| -> BoxError {
                let text = e.detail.clone().unwrap_or_else(|| e.message().to_string());
                text.into()
            })?;
            let mut make = ready.make_connector();
            let connect = MakeTlsConnect::<S>::make_tls_connect(&mut make, &self.domain)?;
            connect.connect(stream).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_follow_libpq() {
        let t = |ci: &str| {
            crate::conninfo::ConnInfo::parse(ci)
                .unwrap()
                .resolve()
                .unwrap()
        };
        let modes = |ci: &str| {
            let t = t(ci);
            plan(&t, &t.endpoints)
                .unwrap()
                .into_iter()
                .map(|(a, f)| (a.mode, a.tls.map(|t| matches!(t, Tls::Lazy(_))), f))
                .collect::<Vec<_>>()
        };
        use DriverSslMode::*;
        assert_eq!(
            modes("host=127.0.0.1 user=u sslmode=allow sslrootcert=/none"),
            vec![
                (Disable, None, Fallback::OnServerError),
                (Require, Some(true), Fallback::Never)
            ]
        );
        assert_eq!(
            modes("host=127.0.0.1 user=u sslrootcert=/none"),
            vec![
                (Prefer, Some(true), Fallback::OnTlsOrServerError),
                (Disable, None, Fallback::Never)
            ]
        );
        assert_eq!(
            modes("host=127.0.0.1 user=u sslmode=require sslrootcert=/none"),
            vec![(Require, Some(false), Fallback::Never)]
        );
        assert_eq!(
            modes("host=/tmp user=u sslmode=verify-full"),
            vec![(Disable, None, Fallback::Never)]
        );
        // A verify mode without its root certificate fails before connecting.
        let t = t("host=127.0.0.1 user=u sslmode=verify-ca sslrootcert=/none");
        assert!(plan(&t, &t.endpoints).is_err());
    }
}
