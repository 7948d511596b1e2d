//! The generated CRDs carry upstream's wire contract: names, versions, subresources, columns, defaults,
//! enums, list markers, the CEL rule; the default install's serve v1beta1 alone (upstream 1.0), the
//! migration install's add v1alpha1 and the conversion webhook.

use std::sync::LazyLock;

use agent_sandbox_api::crd;
use serde_json::{Value, json};

/// The migration install's CRDs (both versions) as JSON, generated once per test binary (schema
/// generation is slow in debug builds). Their v1beta1 is the default install's, as
/// `the_default_crds_are_the_v1beta1_of_the_migration_crds` proves.
static CRDS: LazyLock<Vec<Value>> = LazyLock::new(|| {
    crd::with_v1alpha1()
        .expect("CRDs merge")
        .iter()
        .map(|c| serde_json::to_value(c).expect("serialisable"))
        .collect()
});

#[test]
fn the_default_crds_are_the_v1beta1_of_the_migration_crds() {
    let defaults: Vec<Value> = crd::all()
        .iter()
        .map(|c| serde_json::to_value(c).expect("serialisable"))
        .collect();
    assert_eq!(defaults.len(), 4);
    for default in &defaults {
        let name = default["metadata"]["name"].as_str().unwrap_or_default();
        let versions = default["spec"]["versions"].as_array().expect("versions");
        assert_eq!(versions.len(), 1, "{name} serves one version");
        assert_eq!(versions[0]["name"], "v1beta1", "{name}");
        assert_eq!(versions[0]["served"], true, "{name}");
        assert_eq!(versions[0]["storage"], true, "{name}");
        assert!(
            default["spec"]["conversion"].is_null(),
            "{name} declares a conversion: {}",
            default["spec"]["conversion"]
        );
        assert_eq!(&versions[0], version(crd_named(name), "v1beta1"), "{name}");
    }
}

fn crds() -> &'static [Value] {
    &CRDS
}

fn crd_named(name: &str) -> &'static Value {
    crds()
        .iter()
        .find(|c| c["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no CRD {name}"))
}

fn version<'a>(crd: &'a Value, name: &str) -> &'a Value {
    crd["spec"]["versions"]
        .as_array()
        .and_then(|versions| versions.iter().find(|v| v["name"] == name))
        .unwrap_or_else(|| panic!("no version {name}"))
}

/// The schema of a field: `path` is a dot-separated property path from the root (`[]` steps into items).
fn field<'a>(crd: &'a Value, version_name: &str, path: &str) -> &'a Value {
    let mut node = &version(crd, version_name)["schema"]["openAPIV3Schema"];
    for step in path.split('.') {
        node = if step == "[]" {
            &node["items"]
        } else {
            &node["properties"][step]
        };
        assert!(
            !node.is_null(),
            "{version_name}: no field {path} (at {step})"
        );
    }
    node
}

const SANDBOX: &str = "sandboxes.agents.x-k8s.io";
const CLAIM: &str = "sandboxclaims.extensions.agents.x-k8s.io";
const TEMPLATE: &str = "sandboxtemplates.extensions.agents.x-k8s.io";
const POOL: &str = "sandboxwarmpools.extensions.agents.x-k8s.io";

#[test]
fn four_crds_with_upstream_names_groups_and_short_names() {
    let names: Vec<_> = crds()
        .iter()
        .map(|c| {
            (
                c["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                c["spec"]["names"]["shortNames"].clone(),
                c["spec"]["scope"].clone(),
            )
        })
        .collect();
    assert_eq!(
        names,
        vec![
            (SANDBOX.into(), json!(["sandbox"]), json!("Namespaced")),
            (CLAIM.into(), json!(["sandboxclaim"]), json!("Namespaced")),
            (
                TEMPLATE.into(),
                json!(["sandboxtemplate"]),
                json!("Namespaced")
            ),
            (POOL.into(), json!(["swp"]), json!("Namespaced")),
        ]
    );
}

#[test]
fn v1beta1_is_stored_and_both_versions_are_served_newest_first() {
    for crd in crds() {
        let versions: Vec<_> = crd["spec"]["versions"]
            .as_array()
            .expect("versions")
            .iter()
            .map(|v| (v["name"].clone(), v["served"].clone(), v["storage"].clone()))
            .collect();
        assert_eq!(
            versions,
            vec![
                (json!("v1beta1"), json!(true), json!(true)),
                (json!("v1alpha1"), json!(true), json!(false)),
            ],
            "{}",
            crd["metadata"]["name"]
        );
    }
}

#[test]
fn v1alpha1_carries_upstreams_exact_deprecation_warnings() {
    for (name, kind, group) in [
        (SANDBOX, "Sandbox", "agents.x-k8s.io"),
        (CLAIM, "SandboxClaim", "extensions.agents.x-k8s.io"),
        (TEMPLATE, "SandboxTemplate", "extensions.agents.x-k8s.io"),
        (POOL, "SandboxWarmPool", "extensions.agents.x-k8s.io"),
    ] {
        let crd = crd_named(name);
        let alpha = version(crd, "v1alpha1");
        assert_eq!(alpha["deprecated"], json!(true));
        assert_eq!(
            alpha["deprecationWarning"],
            json!(format!(
                "{group}/v1alpha1 {kind} is deprecated; use {group}/v1beta1 {kind} instead"
            ))
        );
        assert!(version(crd, "v1beta1").get("deprecated").is_none());
    }
}

#[test]
fn every_crd_converts_through_the_webhook_service() {
    for crd in crds() {
        assert_eq!(
            crd["spec"]["conversion"],
            json!({
                "strategy": "Webhook",
                "webhook": {
                    "clientConfig": {"service": {
                        "name": "agent-sandbox-webhook-service",
                        "namespace": "agent-sandbox-system",
                        "path": "/convert"
                    }},
                    "conversionReviewVersions": ["v1", "v1beta1"]
                }
            })
        );
    }
}

#[test]
fn subresources_match_upstream() {
    let scale = json!({
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector"
    });
    let sandbox = crd_named(SANDBOX);
    assert_eq!(
        version(sandbox, "v1beta1")["subresources"],
        json!({"status": {}})
    );
    assert_eq!(
        version(sandbox, "v1alpha1")["subresources"],
        json!({"status": {}, "scale": scale})
    );
    for v in ["v1beta1", "v1alpha1"] {
        assert_eq!(
            version(crd_named(CLAIM), v)["subresources"],
            json!({"status": {}})
        );
        assert_eq!(
            version(crd_named(POOL), v)["subresources"],
            json!({"status": {}, "scale": scale})
        );
        assert!(
            version(crd_named(TEMPLATE), v)
                .get("subresources")
                .is_none()
        );
        assert!(field(crd_named(TEMPLATE), v, "spec").is_object());
        assert!(
            version(crd_named(TEMPLATE), v)["schema"]["openAPIV3Schema"]["properties"]["status"]
                .is_null()
        );
    }
}

fn columns(crd: &str, v: &str) -> Value {
    version(crd_named(crd), v)
        .get("additionalPrinterColumns")
        .cloned()
        .unwrap_or(json!([]))
}

#[test]
fn printer_columns_match_upstream() {
    let ready = ".status.conditions[?(@.type=='Ready')].status";
    let reason = ".status.conditions[?(@.type=='Ready')].reason";
    let age = json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"});
    assert_eq!(
        columns(SANDBOX, "v1beta1"),
        json!([
            {"name": "Ready", "type": "string", "jsonPath": ready},
            {"name": "Reason", "type": "string", "jsonPath": reason},
            age
        ])
    );
    assert_eq!(
        columns(CLAIM, "v1beta1"),
        json!([
            {"name": "Ready", "type": "string", "jsonPath": ready},
            {"name": "Sandbox", "type": "string", "jsonPath": ".status.sandbox.name"},
            {"name": "Reason", "type": "string", "jsonPath": reason},
            age
        ])
    );
    let pool = json!([
        {"name": "Ready", "type": "integer", "jsonPath": ".status.readyReplicas"},
        {"name": "Desired", "type": "integer", "jsonPath": ".spec.replicas"},
        age
    ]);
    assert_eq!(columns(POOL, "v1beta1"), pool);
    assert_eq!(columns(POOL, "v1alpha1"), pool);
    for (crd, v) in [
        (SANDBOX, "v1alpha1"),
        (CLAIM, "v1alpha1"),
        (TEMPLATE, "v1beta1"),
        (TEMPLATE, "v1alpha1"),
    ] {
        assert_eq!(columns(crd, v), json!([]), "{crd} {v}");
    }
}

#[test]
fn the_volume_claim_templates_immutability_rule_exists_only_in_v1beta1_sandbox() {
    let sandbox = crd_named(SANDBOX);
    assert_eq!(
        field(sandbox, "v1beta1", "spec")["x-kubernetes-validations"],
        json!([{
            "rule": "has(self.volumeClaimTemplates) == has(oldSelf.volumeClaimTemplates) && (!has(self.volumeClaimTemplates) || self.volumeClaimTemplates == oldSelf.volumeClaimTemplates)",
            "message": "volumeClaimTemplates is immutable"
        }])
    );
    let all = serde_json::to_string(&crds()).expect("serialisable");
    assert_eq!(
        all.matches("x-kubernetes-validations").count(),
        1,
        "exactly one CEL rule in all CRDs"
    );
}

/// One expectation: (crd, version, field path, default as JSON text, enum values).
type DefaultAndEnum = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static [&'static str],
);

const DEFAULTS_AND_ENUMS: &[DefaultAndEnum] = &[
    (
        SANDBOX,
        "v1beta1",
        "spec.shutdownPolicy",
        Some("\"Retain\""),
        &["Delete", "Retain"],
    ),
    (
        SANDBOX,
        "v1beta1",
        "spec.operatingMode",
        Some("\"Running\""),
        &["Running", "Suspended"],
    ),
    (
        SANDBOX,
        "v1alpha1",
        "spec.shutdownPolicy",
        Some("\"Retain\""),
        &["Delete", "Retain"],
    ),
    (SANDBOX, "v1alpha1", "spec.replicas", Some("1"), &[]),
    (
        TEMPLATE,
        "v1beta1",
        "spec.networkPolicyManagement",
        Some("\"Managed\""),
        &["Managed", "Unmanaged"],
    ),
    (
        TEMPLATE,
        "v1beta1",
        "spec.envVarsInjectionPolicy",
        Some("\"Disallowed\""),
        &["Allowed", "Overrides", "Disallowed"],
    ),
    (
        TEMPLATE,
        "v1beta1",
        "spec.volumeClaimTemplatesPolicy",
        Some("\"Disallowed\""),
        &["Disallowed", "Allowed", "Overrides"],
    ),
    (
        TEMPLATE,
        "v1alpha1",
        "spec.networkPolicyManagement",
        Some("\"Managed\""),
        &["Managed", "Unmanaged"],
    ),
    (
        TEMPLATE,
        "v1alpha1",
        "spec.envVarsInjectionPolicy",
        Some("\"Disallowed\""),
        &["Allowed", "Overrides", "Disallowed"],
    ),
    (
        CLAIM,
        "v1beta1",
        "spec.lifecycle.shutdownPolicy",
        Some("\"Retain\""),
        &["Delete", "DeleteForeground", "Retain"],
    ),
    (
        CLAIM,
        "v1alpha1",
        "spec.lifecycle.shutdownPolicy",
        Some("\"Retain\""),
        &["Delete", "DeleteForeground", "Retain"],
    ),
    (CLAIM, "v1alpha1", "spec.warmpool", Some("\"default\""), &[]),
    (POOL, "v1beta1", "spec.replicas", Some("1"), &[]),
    (
        POOL,
        "v1beta1",
        "spec.updateStrategy.type",
        Some("\"OnReplenish\""),
        &["Recreate", "OnReplenish"],
    ),
    (POOL, "v1alpha1", "spec.replicas", None, &[]),
    (
        POOL,
        "v1alpha1",
        "spec.updateStrategy.type",
        Some("\"OnReplenish\""),
        &["Recreate", "OnReplenish"],
    ),
];

#[test]
fn every_default_and_enum_matches_upstream() {
    for (crd, v, path, default, values) in DEFAULTS_AND_ENUMS {
        let crd_value = crd_named(crd);
        let schema = field(crd_value, v, path);
        let want_default: Option<Value> = default.map(|d| serde_json::from_str(d).expect("json"));
        assert_eq!(
            schema.get("default").cloned(),
            want_default,
            "{crd} {v} {path} default"
        );
        let want_enum = (!values.is_empty()).then(|| json!(values));
        assert_eq!(
            schema.get("enum").cloned(),
            want_enum,
            "{crd} {v} {path} enum"
        );
    }
}

#[test]
fn numeric_bounds_match_upstream() {
    let bounds = |crd: &str, v: &str, path: &str| {
        let crd = crd_named(crd);
        let f = field(crd, v, path);
        (f["minimum"].as_f64(), f["maximum"].as_f64())
    };
    assert_eq!(
        bounds(SANDBOX, "v1alpha1", "spec.replicas"),
        (Some(0.0), Some(1.0))
    );
    assert_eq!(
        bounds(SANDBOX, "v1alpha1", "status.replicas"),
        (Some(0.0), None)
    );
    assert_eq!(bounds(POOL, "v1beta1", "spec.replicas"), (Some(0.0), None));
    assert_eq!(bounds(POOL, "v1alpha1", "spec.replicas"), (Some(0.0), None));
    assert_eq!(
        bounds(POOL, "v1beta1", "status.observedGeneration"),
        (Some(0.0), None)
    );
    assert_eq!(
        bounds(CLAIM, "v1beta1", "spec.lifecycle.ttlSecondsAfterFinished"),
        (Some(0.0), None)
    );
}

#[test]
fn required_fields_match_upstream() {
    let required =
        |crd: &str, v: &str, path: &str| field(crd_named(crd), v, path)["required"].clone();
    assert_eq!(required(SANDBOX, "v1beta1", "spec"), json!(["podTemplate"]));
    assert_eq!(
        required(SANDBOX, "v1alpha1", "spec"),
        json!(["podTemplate"])
    );
    assert_eq!(
        required(TEMPLATE, "v1beta1", "spec"),
        json!(["podTemplate"])
    );
    assert_eq!(required(CLAIM, "v1beta1", "spec"), json!(["warmPoolRef"]));
    assert_eq!(
        required(CLAIM, "v1alpha1", "spec"),
        json!(["sandboxTemplateRef"])
    );
    assert_eq!(
        required(POOL, "v1beta1", "spec"),
        json!(["sandboxTemplateRef"])
    );
    assert_eq!(
        required(POOL, "v1alpha1", "spec"),
        json!(["replicas", "sandboxTemplateRef"])
    );
    assert_eq!(
        required(CLAIM, "v1beta1", "spec.env.[]"),
        json!(["name", "value"])
    );
    assert_eq!(
        required(SANDBOX, "v1beta1", "spec.podTemplate"),
        json!(["spec"])
    );
    assert_eq!(
        required(SANDBOX, "v1beta1", "spec.podTemplate.spec"),
        json!(["containers"])
    );
    for root in [SANDBOX, CLAIM, TEMPLATE, POOL] {
        for v in ["v1beta1", "v1alpha1"] {
            let crd = crd_named(root);
            let schema = &version(crd, v)["schema"]["openAPIV3Schema"];
            assert_eq!(schema["required"], json!(["spec"]), "{root} {v}");
        }
    }
}

#[test]
fn lists_that_upstream_replaces_whole_are_atomic() {
    for (crd, v, path) in [
        (SANDBOX, "v1beta1", "spec.volumeClaimTemplates"),
        (SANDBOX, "v1alpha1", "spec.volumeClaimTemplates"),
        (TEMPLATE, "v1beta1", "spec.volumeClaimTemplates"),
        (TEMPLATE, "v1alpha1", "spec.volumeClaimTemplates"),
        (CLAIM, "v1beta1", "spec.env"),
        (CLAIM, "v1alpha1", "spec.env"),
        (CLAIM, "v1beta1", "spec.volumeClaimTemplates"),
    ] {
        assert_eq!(
            field(crd_named(crd), v, path)["x-kubernetes-list-type"],
            json!("atomic"),
            "{crd} {v} {path}"
        );
    }
}

#[test]
fn field_sets_match_the_specification() {
    let keys = |crd: &str, v: &str, path: &str| -> Vec<String> {
        let mut keys: Vec<String> = field(crd_named(crd), v, path)["properties"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        keys.sort();
        keys
    };
    let cases: &[(&str, &str, &str, &[&str])] = &[
        (
            SANDBOX,
            "v1beta1",
            "spec",
            &[
                "operatingMode",
                "podTemplate",
                "service",
                "shutdownPolicy",
                "shutdownTime",
                "volumeClaimTemplates",
            ],
        ),
        (
            SANDBOX,
            "v1beta1",
            "status",
            &[
                "conditions",
                "nodeName",
                "podIPs",
                "selector",
                "service",
                "serviceFQDN",
            ],
        ),
        (
            SANDBOX,
            "v1alpha1",
            "spec",
            &[
                "podTemplate",
                "replicas",
                "service",
                "shutdownPolicy",
                "shutdownTime",
                "volumeClaimTemplates",
            ],
        ),
        (
            SANDBOX,
            "v1alpha1",
            "status",
            &[
                "conditions",
                "podIPs",
                "replicas",
                "selector",
                "service",
                "serviceFQDN",
            ],
        ),
        (
            SANDBOX,
            "v1beta1",
            "spec.podTemplate",
            &["metadata", "spec"],
        ),
        (
            SANDBOX,
            "v1beta1",
            "spec.podTemplate.metadata",
            &["annotations", "labels"],
        ),
        (
            SANDBOX,
            "v1beta1",
            "spec.volumeClaimTemplates.[]",
            &["metadata", "spec"],
        ),
        (
            SANDBOX,
            "v1beta1",
            "spec.volumeClaimTemplates.[].metadata",
            &["annotations", "labels", "name"],
        ),
        (
            TEMPLATE,
            "v1beta1",
            "spec",
            &[
                "envVarsInjectionPolicy",
                "networkPolicy",
                "networkPolicyManagement",
                "podTemplate",
                "service",
                "volumeClaimTemplates",
                "volumeClaimTemplatesPolicy",
            ],
        ),
        (
            TEMPLATE,
            "v1alpha1",
            "spec",
            &[
                "envVarsInjectionPolicy",
                "networkPolicy",
                "networkPolicyManagement",
                "podTemplate",
                "service",
                "volumeClaimTemplates",
            ],
        ),
        (
            TEMPLATE,
            "v1beta1",
            "spec.networkPolicy",
            &["egress", "ingress"],
        ),
        (
            CLAIM,
            "v1beta1",
            "spec",
            &[
                "additionalPodMetadata",
                "env",
                "lifecycle",
                "volumeClaimTemplates",
                "warmPoolRef",
            ],
        ),
        (
            CLAIM,
            "v1alpha1",
            "spec",
            &[
                "additionalPodMetadata",
                "env",
                "lifecycle",
                "sandboxTemplateRef",
                "warmpool",
            ],
        ),
        (
            CLAIM,
            "v1beta1",
            "spec.lifecycle",
            &["shutdownPolicy", "shutdownTime", "ttlSecondsAfterFinished"],
        ),
        (
            CLAIM,
            "v1beta1",
            "spec.env.[]",
            &["containerName", "name", "value"],
        ),
        (CLAIM, "v1beta1", "status", &["conditions", "sandbox"]),
        (
            CLAIM,
            "v1beta1",
            "status.sandbox",
            &["name", "podIPs", "serviceFQDN"],
        ),
        (
            POOL,
            "v1beta1",
            "spec",
            &["replicas", "sandboxTemplateRef", "updateStrategy"],
        ),
        (
            POOL,
            "v1beta1",
            "status",
            &[
                "observedGeneration",
                "readyReplicas",
                "replicas",
                "selector",
            ],
        ),
        (
            POOL,
            "v1alpha1",
            "status",
            &["readyReplicas", "replicas", "selector"],
        ),
    ];
    for (crd, v, path, want) in cases {
        assert_eq!(keys(crd, v, path), *want, "{crd} {v} {path}");
    }
}

#[test]
fn conditions_carry_the_metav1_limits() {
    let crd = crd_named(SANDBOX);
    let condition = field(crd, "v1beta1", "status.conditions.[]");
    assert_eq!(
        condition["required"],
        json!(["lastTransitionTime", "message", "reason", "status", "type"])
    );
    assert_eq!(
        condition["properties"]["reason"]["pattern"],
        json!("^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    );
    assert_eq!(condition["properties"]["reason"]["maxLength"], json!(1024));
    assert_eq!(condition["properties"]["type"]["maxLength"], json!(316));
    assert_eq!(
        condition["properties"]["message"]["maxLength"],
        json!(32768)
    );
    assert_eq!(
        condition["properties"]["status"]["enum"],
        json!(["True", "False", "Unknown"])
    );
    assert!(field(crd_named(CLAIM), "v1beta1", "status.conditions.[]")["properties"]["reason"]["pattern"].is_string());
}

#[test]
fn schemas_are_structural() {
    // Structural: every node with properties or items has a type, and there are no nullable or
    // free-form escapes the server would reject or that upstream does not have.
    fn visit(node: &Value, path: &str) {
        let Some(map) = node.as_object() else { return };
        if map.contains_key("properties") || map.contains_key("items") {
            assert!(map.contains_key("type"), "{path} has no type");
        }
        for forbidden in [
            "nullable",
            "$ref",
            "anyOf",
            "oneOf",
            "allOf",
            "x-kubernetes-preserve-unknown-fields",
        ] {
            assert!(!map.contains_key(forbidden), "{path} has {forbidden}");
        }
        for (key, child) in map {
            match key.as_str() {
                "properties" => child
                    .as_object()
                    .into_iter()
                    .flatten()
                    .for_each(|(name, c)| visit(c, &format!("{path}.{name}"))),
                "items" | "additionalProperties" => visit(child, &format!("{path}.{key}")),
                _ => {}
            }
        }
    }
    for crd in crds() {
        for v in crd["spec"]["versions"].as_array().expect("versions") {
            visit(
                &v["schema"]["openAPIV3Schema"],
                &format!("{}/{}", crd["metadata"]["name"], v["name"]),
            );
        }
    }
}
