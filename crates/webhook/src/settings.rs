//! What the webhook serves and where: flags `--webhook-*` and `--manage-webhook-certs`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use crate::certs::ServingNames;
use crate::provision::Endpoint;

/// File names of the certificate and key written in self-managed mode.
pub const MANAGED_CERT_NAME: &str = "tls.crt";
/// See [`MANAGED_CERT_NAME`].
pub const MANAGED_KEY_NAME: &str = "tls.key";

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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Self-managed settings of a webhook for Service `svc` in `sys`, optionally in local mode.
    pub(crate) fn settings(url: Option<&str>) -> WebhookSettings {
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
}
