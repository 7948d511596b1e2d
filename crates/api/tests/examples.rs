//! Every manifest in deploy/examples (and the v1alpha1 example of the migration install) deserialises
//! into the Rust types without losing a field and passes the semantic checks.

use std::fs;
use std::path::PathBuf;

use agent_sandbox_api::validate::{ValidationContext, check};
use agent_sandbox_api::{v1alpha1, v1beta1};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// Parses `value` as `T`, checks nothing was dropped or invented, and returns it.
fn typed<T: DeserializeOwned + Serialize>(file: &str, value: &Value) -> T {
    let typed: T = serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("{file}: does not deserialise: {e}"));
    let back = serde_json::to_value(&typed).expect("serialisable");
    assert_eq!(
        &back, value,
        "{file}: a field was lost or added by the Rust type"
    );
    typed
}

fn validate(file: &str, value: &Value) -> Result<(), String> {
    let ctx = ValidationContext::default();
    let api_version = value["apiVersion"].as_str().unwrap_or_default();
    let kind = value["kind"].as_str().unwrap_or_default();
    let result = match (api_version, kind) {
        ("agents.x-k8s.io/v1beta1", "Sandbox") => {
            check(&typed::<v1beta1::Sandbox>(file, value).spec, &ctx)
        }
        ("agents.x-k8s.io/v1alpha1", "Sandbox") => {
            check(&typed::<v1alpha1::Sandbox>(file, value).spec, &ctx)
        }
        ("extensions.agents.x-k8s.io/v1beta1", "SandboxTemplate") => {
            check(&typed::<v1beta1::SandboxTemplate>(file, value).spec, &ctx)
        }
        ("extensions.agents.x-k8s.io/v1beta1", "SandboxWarmPool") => {
            check(&typed::<v1beta1::SandboxWarmPool>(file, value).spec, &ctx)
        }
        ("extensions.agents.x-k8s.io/v1beta1", "SandboxClaim") => {
            check(&typed::<v1beta1::SandboxClaim>(file, value).spec, &ctx)
        }
        other => panic!("{file}: no Rust type for {other:?}"),
    };
    result.map_err(|e| e.to_string())
}

fn documents(file: &str) -> Vec<Value> {
    let text =
        fs::read_to_string(deploy_dir().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| {
            let yaml =
                serde_yaml::Value::deserialize(doc).unwrap_or_else(|e| panic!("{file}: {e}"));
            serde_json::to_value(yaml).expect("YAML maps to JSON")
        })
        .collect()
}

use serde::Deserialize;

/// The example manifests, under deploy/.
const EXPECTED: [(&str, &str); 5] = [
    ("examples/sandbox.yaml", "Sandbox"),
    ("migration/sandbox-v1alpha1.yaml", "Sandbox"),
    ("examples/sandboxtemplate.yaml", "SandboxTemplate"),
    ("examples/sandboxwarmpool.yaml", "SandboxWarmPool"),
    ("examples/sandboxclaim.yaml", "SandboxClaim"),
];

#[test]
fn every_example_is_typed_lossless_and_valid() {
    for (file, kind) in EXPECTED {
        let docs = documents(file);
        assert_eq!(docs.len(), 1, "{file}: one document");
        assert_eq!(docs[0]["kind"], kind, "{file}");
        validate(file, &docs[0]).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
}

#[test]
fn the_examples_cover_every_kind_and_both_sandbox_versions() {
    let mut files: Vec<String> = fs::read_dir(deploy_dir().join("examples"))
        .expect("deploy/examples exists")
        .map(|entry| {
            let name = entry.expect("readable").file_name();
            format!("examples/{}", name.to_string_lossy())
        })
        // kustomization.yaml bundles the manifests (`kubectl apply -k`); it is not one itself.
        .filter(|name| name.ends_with(".yaml") && name != "examples/kustomization.yaml")
        .collect();
    files.sort();
    let mut expected: Vec<String> = EXPECTED
        .iter()
        .map(|(f, _)| f.to_string())
        .filter(|f| f.starts_with("examples/"))
        .collect();
    expected.sort();
    assert_eq!(files, expected, "every example file is listed in this test");
}

#[test]
fn the_v1beta1_sandbox_example_reads_as_upstream_documents_it() {
    let sandbox: v1beta1::Sandbox = typed(
        "examples/sandbox.yaml",
        &documents("examples/sandbox.yaml")[0],
    );
    assert_eq!(sandbox.spec.blueprint.service, Some(true));
    assert_eq!(
        sandbox.spec.operating_mode(),
        v1beta1::SandboxOperatingMode::Running
    );
    assert_eq!(
        sandbox.spec.lifecycle.shutdown_policy,
        Some(v1beta1::ShutdownPolicy::Retain)
    );
    assert_eq!(
        sandbox.spec.blueprint.volume_claim_templates[0]
            .metadata
            .name,
        "workspace"
    );
}

#[test]
fn an_invalid_manifest_gets_a_readable_message() {
    let mut doc = documents("examples/sandbox.yaml").remove(0);
    let pvc = doc["spec"]["volumeClaimTemplates"][0].clone();
    doc["spec"]["volumeClaimTemplates"] = Value::Array(vec![pvc.clone(), pvc]);
    doc["spec"]["podTemplate"]["spec"]["containers"] = Value::Array(vec![]);
    let message = validate("sandbox.yaml (edited)", &doc).expect_err("invalid");
    assert_eq!(
        message,
        concat!(
            "spec.podTemplate: spec.containers must list at least one container; ",
            r#"spec.volumeClaimTemplates: [1].metadata.name "workspace" is used more than once"#
        )
    );
}
