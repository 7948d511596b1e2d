//! Serving `/convert` over TLS with the certificate and key read from files, re-read when they change
//! (cert-manager or a mounted Secret rotating them), without a restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::certs::{self, CertError};
use crate::review;

/// How often the certificate files are checked for changes.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(10);

/// Largest ConversionReview accepted (the API server's own request limit is 3 MiB per object).
const BODY_LIMIT: usize = 32 * 1024 * 1024;

/// A TLS failure of the webhook server.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The files do not hold a usable certificate and key.
    #[error("{cert} / {key}: {source}")]
    Invalid {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// The problem.
        source: CertError,
    },
    /// The rustls configuration was refused.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The certificate and key files the server presents.
#[derive(Clone, Debug)]
pub struct CertFiles {
    /// The certificate chain (PEM).
    pub cert: PathBuf,
    /// The private key (PEM).
    pub key: PathBuf,
}

impl CertFiles {
    /// The files' contents (a change of either triggers a reload; comparing contents also catches
    /// a mounted Secret's symlink swap, which leaves modification times alone).
    fn contents(&self) -> Result<Contents, TlsError> {
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|source| TlsError::Read {
                path: path.to_owned(),
                source,
            })
        };
        Ok((read(&self.cert)?, read(&self.key)?))
    }

    fn load(&self, contents: &Contents) -> Result<Arc<CertifiedKey>, TlsError> {
        certs::certified_key(&contents.0, &contents.1).map_err(|source| TlsError::Invalid {
            cert: self.cert.clone(),
            key: self.key.clone(),
            source,
        })
    }
}

/// The certificate and key files' text.
type Contents = (String, String);

/// Presents the current certificate; swapped in place when the files change.
#[derive(Debug)]
struct Reloading {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|key| Arc::clone(&key))
    }
}

/// What one look at the files did.
#[derive(Debug)]
enum Reload {
    Unchanged,
    Reloaded,
    /// The files changed but are unusable (or unreadable); the previous certificate stays.
    Kept(TlsError),
}

/// Swaps in the files' certificate if their contents differ from `seen`.
fn reload_once(files: &CertFiles, resolver: &Reloading, seen: &mut Contents) -> Reload {
    let contents = match files.contents() {
        Ok(contents) => contents,
        Err(error) => return Reload::Kept(error),
    };
    if contents == *seen {
        return Reload::Unchanged;
    }
    let key = match files.load(&contents) {
        Ok(key) => key,
        Err(error) => return Reload::Kept(error),
    };
    if let Ok(mut current) = resolver.current.write() {
        *current = key;
    }
    *seen = contents;
    Reload::Reloaded
}

/// Looks at the files every [`RELOAD_INTERVAL`] and reloads them when they change.
async fn reload_when_changed(files: CertFiles, resolver: Arc<Reloading>, mut seen: Contents) {
    let mut interval = tokio::time::interval(RELOAD_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        match reload_once(&files, &resolver, &mut seen) {
            Reload::Unchanged => {}
            Reload::Reloaded => {
                tracing::info!(cert = %files.cert.display(), "reloaded the webhook certificate")
            }
            Reload::Kept(error) => {
                tracing::warn!(%error, "the webhook certificate files cannot be used; keeping the previous certificate")
            }
        }
    }
}

/// A TLS acceptor presenting the certificate in `files` (read now: a bad certificate fails here),
/// and the task that reloads it when the files change.
pub fn acceptor(
    files: CertFiles,
) -> Result<(TlsAcceptor, impl Future<Output = ()> + Send + 'static), TlsError> {
    let contents = files.contents()?;
    let key = files.load(&contents)?;
    let resolver = Arc::new(Reloading {
        current: RwLock::new(key),
    });
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_cert_resolver(resolver.clone());
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let reload = reload_when_changed(files, resolver, contents);
    Ok((TlsAcceptor::from(Arc::new(config)), reload))
}

/// The webhook's routes: `POST /convert`.
pub fn router() -> Router {
    Router::new()
        .route("/convert", post(convert))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
}

async fn convert(body: Bytes) -> Response {
    match review::respond(&body) {
        Ok(answer) => (
            [(header::CONTENT_TYPE, "application/json")],
            answer.to_string(),
        )
            .into_response(),
        Err(error) => {
            tracing::warn!(%error, "rejected a conversion request");
            (StatusCode::BAD_REQUEST, error.to_string()).into_response()
        }
    }
}

/// Serves `router` over TLS on `listener` until `shutdown` completes. Connections are handled
/// concurrently; a failed handshake only ends that connection.
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    router: Router,
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "webhook accept failed");
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let stream = match acceptor.accept(stream).await {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::debug!(%peer, %error, "webhook TLS handshake failed");
                    return;
                }
            };
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, %error, "webhook connection ended with an error");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, SocketAddr};
    use std::time::SystemTime;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::certs::{CertBundle, ServingNames, generate};

    struct Served {
        address: SocketAddr,
        bundle: CertBundle,
        stop: tokio::sync::oneshot::Sender<()>,
        dir: PathBuf,
    }

    async fn serve_generated(name: &str) -> Served {
        let names = ServingNames {
            dns: vec!["hook.test".into()],
            ips: vec![IpAddr::from([127, 0, 0, 1])],
        };
        let bundle = generate(&names, SystemTime::now()).expect("generated");
        let dir = std::env::temp_dir().join(format!("webhook-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let files = CertFiles {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
        };
        std::fs::write(&files.cert, &bundle.cert).expect("written");
        std::fs::write(&files.key, &bundle.key).expect("written");
        let (acceptor, _reload) = acceptor(files).expect("usable certificate");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bound");
        let address = listener.local_addr().expect("address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, acceptor, router(), async move {
            let _ = stopped.await;
        }));
        Served {
            address,
            bundle,
            stop,
            dir,
        }
    }

    /// POSTs `body` to `path` over TLS, trusting `ca`, and returns the raw HTTP response.
    async fn post(address: SocketAddr, ca: &str, path: &str, body: &str) -> String {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca.as_bytes()).expect("CA PEM"))
            .expect("CA accepted");
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(address)
            .await
            .expect("connected");
        let name = ServerName::IpAddress(IpAddr::from([127, 0, 0, 1]).into());
        let mut tls = connector.connect(name, tcp).await.expect("handshake");
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: hook.test\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        tls.write_all(request.as_bytes()).await.expect("sent");
        let mut response = String::new();
        tls.read_to_string(&mut response).await.expect("read");
        response
    }

    #[tokio::test]
    async fn convert_is_served_over_tls_with_the_generated_certificate() {
        let served = serve_generated("ok").await;
        let review = r#"{"apiVersion":"apiextensions.k8s.io/v1","kind":"ConversionReview","request":{"uid":"u1","desiredAPIVersion":"agents.x-k8s.io/v1beta1","objects":[{"apiVersion":"agents.x-k8s.io/v1alpha1","kind":"Sandbox","metadata":{"name":"s","namespace":"n"},"spec":{"replicas":0,"podTemplate":{"spec":{"containers":[{"name":"a","image":"i"}]}}}}]}}"#;
        let response = post(served.address, &served.bundle.ca, "/convert", review).await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.contains(r#""status":"Success""#), "{response}");
        assert!(
            response.contains(r#""operatingMode":"Suspended""#),
            "{response}"
        );

        let response = post(served.address, &served.bundle.ca, "/convert", "nonsense").await;
        assert!(response.starts_with("HTTP/1.1 400"), "{response}");
        let response = post(served.address, &served.bundle.ca, "/other", review).await;
        assert!(response.starts_with("HTTP/1.1 404"), "{response}");

        let _ = served.stop.send(());
        let _ = std::fs::remove_dir_all(&served.dir);
    }

    #[test]
    fn changed_files_are_reloaded_and_broken_ones_keep_the_previous_certificate() {
        let dir = std::env::temp_dir().join(format!("webhook-tls-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let names = ServingNames {
            dns: vec!["hook.test".into()],
            ips: Vec::new(),
        };
        let files = CertFiles {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
        };
        let write = |bundle: &CertBundle| {
            std::fs::write(&files.cert, &bundle.cert).expect("written");
            std::fs::write(&files.key, &bundle.key).expect("written");
        };
        let first = generate(&names, SystemTime::now()).expect("generated");
        write(&first);
        let mut seen = files.contents().expect("readable");
        let resolver = Reloading {
            current: RwLock::new(files.load(&seen).expect("usable")),
        };
        let presented = |resolver: &Reloading| {
            resolver
                .current
                .read()
                .map(|key| key.cert[0].as_ref().to_vec())
                .unwrap_or_default()
        };
        let der = |bundle: &CertBundle| {
            CertificateDer::from_pem_slice(bundle.cert.as_bytes())
                .expect("PEM")
                .as_ref()
                .to_vec()
        };
        assert!(matches!(
            reload_once(&files, &resolver, &mut seen),
            Reload::Unchanged
        ));

        let second = generate(&names, SystemTime::now()).expect("generated");
        write(&second);
        assert!(matches!(
            reload_once(&files, &resolver, &mut seen),
            Reload::Reloaded
        ));
        assert_eq!(presented(&resolver), der(&second));

        std::fs::write(&files.key, &first.key).expect("written");
        assert!(matches!(
            reload_once(&files, &resolver, &mut seen),
            Reload::Kept(TlsError::Invalid { .. })
        ));
        assert_eq!(presented(&resolver), der(&second));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn unreadable_or_mismatched_files_fail_at_start() {
        let dir = std::env::temp_dir().join(format!("webhook-tls-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let files = CertFiles {
            cert: dir.join("absent.crt"),
            key: dir.join("absent.key"),
        };
        assert!(matches!(acceptor(files), Err(TlsError::Read { .. })));
        let names = ServingNames {
            dns: vec!["hook.test".into()],
            ips: Vec::new(),
        };
        let one = generate(&names, SystemTime::now()).expect("generated");
        let two = generate(&names, SystemTime::now()).expect("generated");
        let files = CertFiles {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
        };
        std::fs::write(&files.cert, &one.cert).expect("written");
        std::fs::write(&files.key, &two.key).expect("written");
        assert!(matches!(acceptor(files), Err(TlsError::Invalid { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
