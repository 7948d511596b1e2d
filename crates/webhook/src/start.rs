//! Starting the webhook: certificates (self-managed or provided), the TLS server, the CRDs' conversion
//! config.

use std::net::SocketAddr;
use std::path::Path;

use agent_sandbox_api::keys::webhook::CONVERT_PATH;
use kube::Client;
use tokio::task::JoinHandle;

use crate::error::WebhookError;
use crate::provision;
use crate::settings::{MANAGED_CERT_NAME, MANAGED_KEY_NAME, WebhookSettings};
use crate::tls::{self, CertFiles};

/// Combined certificate-and-key file used when neither default file exists (pre-provisioned mode).
const COMBINED_PEM: &str = "cert.pem";

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
    use crate::settings::tests::settings;

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
