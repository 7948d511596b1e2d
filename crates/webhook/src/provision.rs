//! Self-managed certificates (`--manage-webhook-certs=true`): the Secret that keeps them across
//! restarts and replicas, and the CRDs' conversion config that tells the API server where the webhook
//! is and which CA to trust.

use std::collections::BTreeMap;
use std::time::SystemTime;

use agent_sandbox_api::keys::webhook::CONVERSION_REVIEW_VERSIONS;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::certs::{self, CertBundle, ServingNames};
use crate::error::WebhookError;
use agent_sandbox_api::keys::webhook::CONVERT_PATH;

/// The Secret holding the self-managed certificates, in the webhook namespace.
pub const SECRET_NAME: &str = "agent-sandbox-webhook-certs";

/// The CRDs whose conversion this webhook serves.
pub const CRD_NAMES: [&str; 4] = [
    "sandboxes.agents.x-k8s.io",
    "sandboxclaims.extensions.agents.x-k8s.io",
    "sandboxtemplates.extensions.agents.x-k8s.io",
    "sandboxwarmpools.extensions.agents.x-k8s.io",
];

/// Field manager of the CRD patches.
const MANAGER: &str = "agent-sandbox-controller";

/// Attempts at settling the Secret when other replicas write it at the same time.
const ATTEMPTS: usize = 3;

/// The bundle stored in `secret` (keys `ca.crt`, `tls.crt`, `tls.key`), if all three are there.
fn bundle_of(secret: &Secret) -> Result<CertBundle, String> {
    let data = secret.data.as_ref();
    let text = |key: &str| {
        let bytes = data
            .and_then(|d| d.get(key))
            .ok_or_else(|| format!("{key} is missing"))?;
        String::from_utf8(bytes.0.clone()).map_err(|_| format!("{key} is not text"))
    };
    Ok(CertBundle {
        ca: text("ca.crt")?,
        cert: text("tls.crt")?,
        key: text("tls.key")?,
    })
}

fn secret_data(bundle: &CertBundle) -> BTreeMap<String, ByteString> {
    BTreeMap::from([
        (
            "ca.crt".to_owned(),
            ByteString(bundle.ca.clone().into_bytes()),
        ),
        (
            "tls.crt".to_owned(),
            ByteString(bundle.cert.clone().into_bytes()),
        ),
        (
            "tls.key".to_owned(),
            ByteString(bundle.key.clone().into_bytes()),
        ),
    ])
}

/// What the stored Secret is good for.
enum Stored {
    /// Its certificates are valid for the names: serve them.
    Usable(CertBundle),
    /// Write new ones: replace this resourceVersion, or create the Secret (`None`).
    Replace(Option<String>),
}

/// Judges the stored Secret (if any) against `names`.
fn judge(existing: Option<&Secret>, names: &ServingNames) -> Stored {
    let Some(secret) = existing else {
        return Stored::Replace(None);
    };
    let checked = bundle_of(secret).and_then(|bundle| {
        certs::validate(&bundle, names, SystemTime::now())
            .map(|()| bundle)
            .map_err(|error| error.to_string())
    });
    match checked {
        Ok(bundle) => Stored::Usable(bundle),
        Err(problem) => {
            tracing::warn!(secret = SECRET_NAME, %problem, "the stored webhook certificates cannot be used; replacing them");
            Stored::Replace(secret.metadata.resource_version.clone())
        }
    }
}

/// The Secret holding `bundle`, at `resource_version` when it replaces one.
fn new_secret(namespace: &str, bundle: &CertBundle, resource_version: Option<String>) -> Secret {
    let mut secret = Secret {
        data: Some(secret_data(bundle)),
        ..Secret::default()
    };
    secret.metadata.name = Some(SECRET_NAME.to_owned());
    secret.metadata.namespace = Some(namespace.to_owned());
    secret.metadata.labels = Some(BTreeMap::from([(
        "app.kubernetes.io/name".to_owned(),
        "agent-sandbox-controller".to_owned(),
    )]));
    secret.metadata.resource_version = resource_version;
    secret
}

/// The certificates to serve: the Secret's when they are valid for `names`, otherwise new ones,
/// stored in the Secret. A replica that loses a race for the Secret uses the winner's.
pub async fn ensure_secret(
    client: &Client,
    namespace: &str,
    names: &ServingNames,
) -> Result<CertBundle, WebhookError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let api_error = |action: &'static str| {
        move |cause| WebhookError::Api {
            action: format!("{action} Secret {namespace}/{SECRET_NAME}"),
            cause,
        }
    };
    for _ in 0..ATTEMPTS {
        let existing = api
            .get_opt(SECRET_NAME)
            .await
            .map_err(api_error("reading"))?;
        let resource_version = match judge(existing.as_ref(), names) {
            Stored::Usable(bundle) => {
                tracing::info!(
                    secret = SECRET_NAME,
                    "using the stored webhook certificates"
                );
                return Ok(bundle);
            }
            Stored::Replace(version) => version,
        };
        let bundle = certs::generate(names, SystemTime::now())?;
        // Replace only the version that was judged unusable; a conflict means someone else
        // replaced it first: look again.
        let written = match resource_version {
            Some(version) => {
                let secret = new_secret(namespace, &bundle, Some(version));
                api.replace(SECRET_NAME, &PostParams::default(), &secret)
                    .await
            }
            None => {
                api.create(
                    &PostParams::default(),
                    &new_secret(namespace, &bundle, None),
                )
                .await
            }
        };
        match written {
            Ok(_) => {
                tracing::info!(
                    secret = SECRET_NAME,
                    "generated and stored new webhook certificates"
                );
                return Ok(bundle);
            }
            Err(kube::Error::Api(status)) if status.code == 409 => {
                tracing::info!(
                    secret = SECRET_NAME,
                    "another replica wrote the webhook certificates first; using theirs"
                );
            }
            Err(source) => return Err(api_error("writing")(source)),
        }
    }
    Err(WebhookError::Contended(format!(
        "Secret {namespace}/{SECRET_NAME} kept changing while it was being written"
    )))
}

/// Where the API server reaches the webhook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A Service in the cluster (port 443).
    Service {
        /// Service name.
        name: String,
        /// Service namespace.
        namespace: String,
    },
    /// A URL (local mode: the API server runs on the same host as the controller).
    Url(String),
}

/// The merge patch that points a CRD's conversion at this webhook and trusts `ca`.
pub fn conversion_patch(endpoint: &Endpoint, ca: &str, review_versions: &[String]) -> Value {
    let ca_bundle = serde_json::to_value(ByteString(ca.as_bytes().to_vec())).unwrap_or_default();
    let client_config = match endpoint {
        Endpoint::Service { name, namespace } => json!({
            "caBundle": ca_bundle,
            "url": null,
            "service": { "name": name, "namespace": namespace, "path": CONVERT_PATH, "port": 443 },
        }),
        Endpoint::Url(url) => json!({ "caBundle": ca_bundle, "url": url, "service": null }),
    };
    let versions: Vec<String> = if review_versions.is_empty() {
        CONVERSION_REVIEW_VERSIONS.map(String::from).to_vec()
    } else {
        review_versions.to_vec()
    };
    json!({ "spec": { "conversion": {
        "strategy": "Webhook",
        "webhook": { "clientConfig": client_config, "conversionReviewVersions": versions },
    } } })
}

/// Points every CRD of [`CRD_NAMES`] that exists and uses the Webhook strategy at this webhook;
/// returns the names patched.
pub async fn patch_crds(
    client: &Client,
    endpoint: &Endpoint,
    ca: &str,
) -> Result<Vec<&'static str>, WebhookError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut patched = Vec::new();
    for name in CRD_NAMES {
        let api_error = |action: &str| {
            let action = format!("{action} CRD {name}");
            move |cause| WebhookError::Api { action, cause }
        };
        let Some(crd) = api.get_opt(name).await.map_err(api_error("reading"))? else {
            tracing::info!(crd = name, "CRD not installed; not patched");
            continue;
        };
        let Some(conversion) = crd.spec.conversion.filter(|c| c.strategy == "Webhook") else {
            tracing::info!(
                crd = name,
                "CRD does not use the Webhook conversion strategy; not patched"
            );
            continue;
        };
        let versions = conversion
            .webhook
            .map(|w| w.conversion_review_versions)
            .unwrap_or_default();
        let patch = conversion_patch(endpoint, ca, &versions);
        let params = PatchParams {
            field_manager: Some(MANAGER.to_owned()),
            ..PatchParams::default()
        };
        api.patch(name, &params, &Patch::Merge(&patch))
            .await
            .map_err(api_error("patching"))?;
        patched.push(name);
    }
    Ok(patched)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_patch_sets_the_service_and_clears_a_url() {
        let patch = conversion_patch(
            &Endpoint::Service {
                name: "svc".into(),
                namespace: "sys".into(),
            },
            "CA",
            &[],
        );
        let webhook = &patch["spec"]["conversion"]["webhook"];
        assert_eq!(patch["spec"]["conversion"]["strategy"], "Webhook");
        assert_eq!(webhook["clientConfig"]["caBundle"], "Q0E=");
        assert_eq!(webhook["clientConfig"]["url"], Value::Null);
        assert_eq!(
            webhook["clientConfig"]["service"],
            json!({ "name": "svc", "namespace": "sys", "path": "/convert", "port": 443 })
        );
        assert_eq!(
            webhook["conversionReviewVersions"],
            json!(["v1", "v1beta1"])
        );
    }

    #[test]
    fn a_url_patch_clears_the_service_and_keeps_given_review_versions() {
        let patch = conversion_patch(
            &Endpoint::Url("https://127.0.0.1:9443/convert".into()),
            "CA",
            &["v1".to_owned()],
        );
        let webhook = &patch["spec"]["conversion"]["webhook"];
        assert_eq!(
            webhook["clientConfig"]["url"],
            "https://127.0.0.1:9443/convert"
        );
        assert_eq!(webhook["clientConfig"]["service"], Value::Null);
        assert_eq!(webhook["conversionReviewVersions"], json!(["v1"]));
    }

    #[test]
    fn a_secret_missing_a_block_is_not_a_bundle() {
        let bundle = CertBundle {
            ca: "a".into(),
            cert: "b".into(),
            key: "c".into(),
        };
        let mut secret = Secret {
            data: Some(secret_data(&bundle)),
            ..Secret::default()
        };
        assert_eq!(bundle_of(&secret), Ok(bundle));
        if let Some(data) = secret.data.as_mut() {
            data.remove("tls.key");
        }
        assert_eq!(bundle_of(&secret), Err("tls.key is missing".to_owned()));
    }
}
