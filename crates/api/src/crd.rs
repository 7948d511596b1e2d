//! The CustomResourceDefinitions, in the two shapes this project installs.
//!
//! The default install ([`all`]) matches upstream 1.0: only v1beta1 is served and stored, with no
//! conversion. The migration install ([`with_v1alpha1`]) also serves the deprecated v1alpha1, converted by
//! our webhook, for clusters that still hold v1alpha1 objects or clients (docs/upgrade.md).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceConversion, CustomResourceDefinition, JSONSchemaProps, ServiceReference,
    WebhookClientConfig, WebhookConversion,
};
use kube::CustomResourceExt;
use kube::core::crd::{MergeError, merge_crds};
use serde_json::Value;

use crate::keys::{STORAGE_VERSION, webhook};
use crate::{v1alpha1, v1beta1};

/// The four CRDs of the default install, v1beta1 only, in a stable order (Sandbox first).
pub fn all() -> Vec<CustomResourceDefinition> {
    v1beta1_crds()
        .into_iter()
        .map(|mut crd| {
            tidy_versions(&mut crd);
            crd
        })
        .collect()
}

/// The four CRDs of the migration install: v1beta1 stored, v1alpha1 served too, conversion by webhook.
pub fn with_v1alpha1() -> Result<Vec<CustomResourceDefinition>, MergeError> {
    let spokes = [
        v1alpha1::Sandbox::crd(),
        v1alpha1::SandboxClaim::crd(),
        v1alpha1::SandboxTemplate::crd(),
        v1alpha1::SandboxWarmPool::crd(),
    ];
    v1beta1_crds()
        .into_iter()
        .zip(spokes)
        .map(|(hub, spoke)| {
            let mut crd = merge_crds(vec![hub, spoke], STORAGE_VERSION)?;
            crd.spec.conversion = Some(webhook_conversion());
            tidy_versions(&mut crd);
            Ok(crd)
        })
        .collect()
}

fn v1beta1_crds() -> [CustomResourceDefinition; 4] {
    [
        v1beta1::Sandbox::crd(),
        v1beta1::SandboxClaim::crd(),
        v1beta1::SandboxTemplate::crd(),
        v1beta1::SandboxWarmPool::crd(),
    ]
}

/// The conversion block every CRD carries: a webhook Service path, without a CA bundle (patched at run time).
fn webhook_conversion() -> CustomResourceConversion {
    CustomResourceConversion {
        strategy: "Webhook".into(),
        webhook: Some(WebhookConversion {
            client_config: Some(WebhookClientConfig {
                service: Some(ServiceReference {
                    name: webhook::SERVICE_NAME.into(),
                    namespace: webhook::SERVICE_NAMESPACE.into(),
                    path: Some(webhook::CONVERT_PATH.into()),
                    port: None,
                }),
                ..WebhookClientConfig::default()
            }),
            conversion_review_versions: webhook::CONVERSION_REVIEW_VERSIONS
                .map(String::from)
                .to_vec(),
        }),
    }
}

fn tidy_versions(crd: &mut CustomResourceDefinition) {
    for version in &mut crd.spec.versions {
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|validation| validation.open_api_v3_schema.as_mut())
        {
            tidy(schema);
        }
    }
}

/// Makes a derived schema read like a hand-written CRD and behave like upstream's on the server:
/// no `nullable` (so a client's `null` is pruned and defaulted rather than stored) and no `default: {}`
/// on nested objects.
fn tidy(schema: &mut JSONSchemaProps) {
    let Ok(mut value) = serde_json::to_value(&*schema) else {
        return;
    };
    tidy_value(&mut value);
    if let Ok(tidied) = serde_json::from_value(value) {
        *schema = tidied;
    }
}

fn tidy_value(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.remove("nullable");
            if map
                .get("default")
                .is_some_and(|d| d.as_object().is_some_and(|o| o.is_empty()))
            {
                map.remove("default");
            }
            map.values_mut().for_each(tidy_value);
        }
        Value::Array(items) => items.iter_mut().for_each(tidy_value),
        _ => {}
    }
}
