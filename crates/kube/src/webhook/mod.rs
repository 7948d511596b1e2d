//! The conversion webhook: `v1alpha1` ⇄ `v1beta1` for all four kinds, served over TLS at `/convert`.
//!
//! * [`review`]: the pure ConversionReview request → response function;
//! * [`certs`]: certificate generation and validation;
//! * [`provision`]: the self-managed Secret and the CRDs' conversion config;
//! * [`tls`]: the TLS server with certificate reload.

pub mod certs;
pub mod provision;
pub mod review;
pub mod tls;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use kube::Client;
use tokio::task::JoinHandle;

use self::certs::ServingNames;
use self::provision::Endpoint;
use self::tls::CertFiles;

pub use agent_sandbox_api::keys::webhook::CONVERT_PATH;

/// File names of the certificate and key written in self-managed mode.
pub const MANAGED_CERT_NAME: &str = "tls.crt";
/// See [`MANAGED_CERT_NAME`].
pub const MANAGED_KEY_NAME: &str = "tls.key";

/// Combined certificate-and-key file used when neither default file exists (pre-provisioned mode).
const COMBINED_PEM: &str = "cert.pem";

/// A webhook that cannot start.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// A Kubernetes API call failed.
    #[error("{action}: {source}")]
    Api {
        /// What was being done.
        action: String,
        /// The cause.
        source: kube::Error,
    },
    /// Certificates could not be made.
    #[error(transparent)]
    Certs(#[from] certs::CertError),
    /// Serving failed to start.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// A file could not be written or found.
    #[error("{path}: {problem}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// Other replicas kept changing the Secret.
    #[error("{0}")]
    Contended(String),
    /// The address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// Webhook settings (flags `--webhook-*`, `--manage-webhook-certs`).
#[derive(Clone, Debug)]
pub struct WebhookSettings {
    /// Address the TLS server listens on.
    pub address: SocketAddr,
    /// Directory of the certificate and key files.
    pub cert_dir: PathBuf,
    /// Certificate file name in `cert_dir` (forced to `tls.crt` when self-managed).
    pub cert_name: String,
    /// Key file name in `cert_dir` (forced to `tls.key` when self-managed).
    pub key_name: String,
    /// The webhook Service.
    pub service_name: String,
    /// Namespace of the Service and of the certificate Secret.
    pub namespace: String,
    /// Cluster DNS domain (for the certificate's names).
    pub cluster_domain: String,
    /// Generate or reuse certificates through the Secret and patch the CRDs.
    pub manage_certs: bool,
    /// Local mode: the CRDs point at this `https://` URL instead of the Service.
    pub url: Option<String>,
}

impl WebhookSettings {
    /// The names the serving certificate must cover: the Service's, plus the URL's host in local mode.
    pub fn serving_names(&self) -> ServingNames {
        let mut names =
            ServingNames::for_service(&self.service_name, &self.namespace, &self.cluster_domain);
        if let Some(host) = self.url.as_deref().and_then(url_host) {
            match host.parse::<IpAddr>() {
                Ok(ip) => names.ips.push(ip),
                Err(_) => names.dns.push(host),
            }
        }
        names
    }

    /// Where the CRDs send conversion requests.
    pub fn endpoint(&self) -> Endpoint {
        match &self.url {
            Some(url) => Endpoint::Url(url.clone()),
            None => Endpoint::Service {
                name: self.service_name.clone(),
                namespace: self.namespace.clone(),
            },
        }
    }
}

/// The host of an `https://host[:port][/path]` URL (brackets of an IPv6 literal removed).
pub fn url_host(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host),
    };
    (!host.is_empty()).then(|| host.to_owned())
}

fn write_private(path: &Path, contents: &str) -> Result<(), WebhookError> {
    let error = |problem: std::io::Error| WebhookError::File {
        path: path.to_owned(),
        problem: problem.to_string(),
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(error)?;
    std::io::Write::write_all(&mut file, contents.as_bytes()).map_err(error)
}

/// The files to serve in pre-provisioned mode: the named ones, or `cert.pem` for both when the
/// default names were asked for and neither exists.
fn provided_files(settings: &WebhookSettings) -> Result<CertFiles, WebhookError> {
    let cert = settings.cert_dir.join(&settings.cert_name);
    let key = settings.cert_dir.join(&settings.key_name);
    let defaults = settings.cert_name == MANAGED_CERT_NAME && settings.key_name == MANAGED_KEY_NAME;
    if defaults && !cert.exists() && !key.exists() {
        let combined = settings.cert_dir.join(COMBINED_PEM);
        if combined.is_file() {
            return Ok(CertFiles {
                cert: combined.clone(),
                key: combined,
            });
        }
    }
    for path in [&cert, &key] {
        if !path.is_file() {
            return Err(WebhookError::File {
                path: path.clone(),
                problem: "missing or not a file (with --manage-webhook-certs=false the certificate and key must be provided)".into(),
            });
        }
    }
    Ok(CertFiles { cert, key })
}

/// Prepares the certificates (self-managed: Secret, files, CRD patch), binds the server and serves
/// `/convert` until `shutdown` completes. Returns the bound address and the server task.
pub async fn start(
    client: &Client,
    settings: &WebhookSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, JoinHandle<()>), WebhookError> {
    let mut ca = None;
    let files = if settings.manage_certs {
        if settings.cert_name != MANAGED_CERT_NAME || settings.key_name != MANAGED_KEY_NAME {
            tracing::warn!(
                "--webhook-cert-name/--webhook-key-name are ignored with --manage-webhook-certs=true (tls.crt/tls.key are written)"
            );
        }
        let bundle =
            provision::ensure_secret(client, &settings.namespace, &settings.serving_names())
                .await?;
        std::fs::create_dir_all(&settings.cert_dir).map_err(|e| WebhookError::File {
            path: settings.cert_dir.clone(),
            problem: e.to_string(),
        })?;
        let files = CertFiles {
            cert: settings.cert_dir.join(MANAGED_CERT_NAME),
            key: settings.cert_dir.join(MANAGED_KEY_NAME),
        };
        write_private(&files.key, &bundle.key)?;
        write_private(&files.cert, &bundle.cert)?;
        ca = Some(bundle.ca);
        files
    } else {
        provided_files(settings)?
    };
    let (acceptor, reload) = tls::acceptor(files)?;
    let listener = tokio::net::TcpListener::bind(settings.address)
        .await
        .map_err(|source| WebhookError::Bind {
            address: settings.address,
            source,
        })?;
    let address = listener.local_addr().map_err(|source| WebhookError::Bind {
        address: settings.address,
        source,
    })?;
    let server = tokio::spawn(async move {
        tokio::select! {
            _ = tls::serve(listener, acceptor, tls::router(), shutdown) => {}
            _ = reload => {}
        }
    });
    tracing::info!(%address, path = CONVERT_PATH, "serving the conversion webhook");
    if let Some(ca) = ca {
        let patched = provision::patch_crds(client, &settings.endpoint(), &ca).await;
        match patched {
            Ok(patched) => {
                tracing::info!(crds = ?patched, "pointed the CRDs' conversion at this webhook")
            }
            Err(error) => {
                server.abort();
                return Err(error);
            }
        }
    }
    Ok((address, server))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: Option<&str>) -> WebhookSettings {
        WebhookSettings {
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            cert_dir: PathBuf::from("/nonexistent"),
            cert_name: MANAGED_CERT_NAME.into(),
            key_name: MANAGED_KEY_NAME.into(),
            service_name: "svc".into(),
            namespace: "sys".into(),
            cluster_domain: "cluster.local".into(),
            manage_certs: true,
            url: url.map(str::to_owned),
        }
    }

    #[test]
    fn url_hosts_are_extracted() {
        assert_eq!(
            url_host("https://127.0.0.1:9443/convert").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(
            url_host("https://[::1]:9443/convert").as_deref(),
            Some("::1")
        );
        assert_eq!(
            url_host("https://hook.example/convert").as_deref(),
            Some("hook.example")
        );
        assert_eq!(url_host("http://127.0.0.1/convert"), None);
        assert_eq!(url_host("https:///convert"), None);
    }

    #[test]
    fn local_mode_adds_the_url_host_and_points_at_the_url() {
        let local = settings(Some("https://127.0.0.1:1234/convert"));
        assert_eq!(local.serving_names().ips, [IpAddr::from([127, 0, 0, 1])]);
        assert_eq!(local.serving_names().dns.len(), 4);
        assert_eq!(
            local.endpoint(),
            Endpoint::Url("https://127.0.0.1:1234/convert".into())
        );
        let named = settings(Some("https://hook.example:1234/convert"));
        assert!(
            named
                .serving_names()
                .dns
                .contains(&"hook.example".to_owned())
        );
        assert_eq!(
            settings(None).endpoint(),
            Endpoint::Service {
                name: "svc".into(),
                namespace: "sys".into()
            }
        );
    }

    #[test]
    fn provided_files_must_exist_unless_a_combined_pem_stands_in() {
        let dir = std::env::temp_dir().join(format!("webhook-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut provided = settings(None);
        provided.manage_certs = false;
        provided.cert_dir = dir.clone();
        assert!(provided_files(&provided).is_err());
        std::fs::write(dir.join(COMBINED_PEM), "x").expect("written");
        let files = provided_files(&provided).expect("cert.pem stands in");
        assert_eq!(files.cert, dir.join(COMBINED_PEM));
        assert_eq!(files.key, dir.join(COMBINED_PEM));
        provided.cert_name = "custom.crt".into();
        assert!(provided_files(&provided).is_err());
        std::fs::remove_dir_all(&dir).expect("cleaned up");
    }
}
