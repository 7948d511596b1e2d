//! The pure heart of the conversion webhook: a `ConversionReview` request in, its response out.
//!
//! Every object of a request is converted with the `Spoke` functions of `agent-sandbox-api`; if any one
//! of them cannot be converted, the whole review fails (the API server accepts all or nothing) with a
//! message naming the object and the problem. Reviews of `apiextensions.k8s.io/v1` and `…/v1beta1`
//! have the same shape, so a review is answered in the version it was asked in.

use agent_sandbox_api::convert::Spoke;
use agent_sandbox_api::keys::{CORE_GROUP, DEPRECATED_VERSION, EXTENSIONS_GROUP, STORAGE_VERSION};
use agent_sandbox_api::v1alpha1;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

/// The review versions the webhook answers.
pub const REVIEW_VERSIONS: [&str; 2] = ["apiextensions.k8s.io/v1", "apiextensions.k8s.io/v1beta1"];

/// A body that is not a ConversionReview this webhook can answer at all (no response is possible
/// without a request uid); served as HTTP 400.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a ConversionReview request: {0}")]
pub struct MalformedReview(String);

/// Answers the ConversionReview in `body`: a response review (same `apiVersion`) whose `result` is
/// `Success` with every object converted, or `Failure` with a message naming the object at fault.
pub fn respond(body: &[u8]) -> Result<Value, MalformedReview> {
    let review: Value = serde_json::from_slice(body)
        .map_err(|error| MalformedReview(format!("the body is not JSON: {error}")))?;
    let api_version = review
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !REVIEW_VERSIONS.contains(&api_version) {
        return Err(MalformedReview(format!(
            "apiVersion {api_version:?} is not one of {}",
            REVIEW_VERSIONS.join(", ")
        )));
    }
    if review.get("kind").and_then(Value::as_str) != Some("ConversionReview") {
        return Err(MalformedReview("kind is not ConversionReview".into()));
    }
    let request = review
        .get("request")
        .ok_or_else(|| MalformedReview("it has no request".into()))?;
    let uid = request
        .get("uid")
        .and_then(Value::as_str)
        .filter(|uid| !uid.is_empty())
        .ok_or_else(|| MalformedReview("the request has no uid".into()))?;
    let result = convert_request(request);
    let response = match result {
        Ok(converted) => json!({
            "uid": uid,
            "convertedObjects": converted,
            "result": { "status": "Success" },
        }),
        Err(message) => json!({
            "uid": uid,
            "convertedObjects": [],
            "result": { "status": "Failure", "message": message },
        }),
    };
    Ok(json!({
        "apiVersion": api_version,
        "kind": "ConversionReview",
        "response": response,
    }))
}

/// Converts every object of a request to its `desiredAPIVersion`; the error is the failure message.
fn convert_request(request: &Value) -> Result<Vec<Value>, String> {
    let desired = request
        .get("desiredAPIVersion")
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .ok_or("the request has no desiredAPIVersion")?;
    let objects = match request.get("objects") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(objects)) => objects,
        Some(_) => return Err("request.objects is not a list".into()),
    };
    objects
        .iter()
        .enumerate()
        .map(|(index, object)| {
            convert_object(object, desired)
                .map_err(|problem| format!("{}: {problem}", describe(index, object)))
        })
        .collect()
}

/// `Kind apiVersion namespace/name` of an object (or its index when it has no readable identity).
fn describe(index: usize, object: &Value) -> String {
    let text = |pointer: &str| object.pointer(pointer).and_then(Value::as_str);
    let name = match (text("/metadata/namespace"), text("/metadata/name")) {
        (Some(namespace), Some(name)) => format!("{namespace}/{name}"),
        (None, Some(name)) => name.to_owned(),
        _ => format!("objects[{index}]"),
    };
    format!(
        "{} {} {name}",
        text("/kind").unwrap_or("object"),
        text("/apiVersion").unwrap_or("(no apiVersion)")
    )
}

/// The versions every kind is served in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Version {
    V1alpha1,
    V1beta1,
}

/// The group a kind belongs to, or `None` for a kind this webhook does not convert.
fn group_of(kind: &str) -> Option<&'static str> {
    match kind {
        "Sandbox" => Some(CORE_GROUP),
        "SandboxClaim" | "SandboxTemplate" | "SandboxWarmPool" => Some(EXTENSIONS_GROUP),
        _ => None,
    }
}

/// Splits `group/version` of one of our kinds.
fn version_of(api_version: &str, group: &str) -> Result<Version, String> {
    match api_version.split_once('/') {
        Some((g, v)) if g == group && v == DEPRECATED_VERSION => Ok(Version::V1alpha1),
        Some((g, v)) if g == group && v == STORAGE_VERSION => Ok(Version::V1beta1),
        _ => Err(format!(
            "apiVersion {api_version:?} is not {group}/{DEPRECATED_VERSION} or {group}/{STORAGE_VERSION}"
        )),
    }
}

/// Converts one object to `desired`; the error says what is wrong with it.
fn convert_object(object: &Value, desired: &str) -> Result<Value, String> {
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .ok_or("the object has no kind")?;
    let group = group_of(kind).ok_or_else(|| format!("kind {kind:?} is not converted here"))?;
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .ok_or("the object has no apiVersion")?;
    let from = version_of(api_version, group)?;
    let to = version_of(desired, group).map_err(|e| format!("desiredAPIVersion: {e}"))?;
    if from == to {
        return Ok(object.clone());
    }
    match (kind, to) {
        ("Sandbox", Version::V1beta1) => up::<v1alpha1::Sandbox>(object),
        ("Sandbox", Version::V1alpha1) => down::<v1alpha1::Sandbox>(object),
        ("SandboxClaim", Version::V1beta1) => up::<v1alpha1::SandboxClaim>(object),
        ("SandboxClaim", Version::V1alpha1) => down::<v1alpha1::SandboxClaim>(object),
        ("SandboxTemplate", Version::V1beta1) => up::<v1alpha1::SandboxTemplate>(object),
        ("SandboxTemplate", Version::V1alpha1) => down::<v1alpha1::SandboxTemplate>(object),
        ("SandboxWarmPool", Version::V1beta1) => up::<v1alpha1::SandboxWarmPool>(object),
        ("SandboxWarmPool", Version::V1alpha1) => down::<v1alpha1::SandboxWarmPool>(object),
        _ => Err(format!("kind {kind:?} is not converted here")),
    }
}

/// v1alpha1 → v1beta1.
fn up<S: Spoke>(object: &Value) -> Result<Value, String> {
    let spoke: S = decode(object)?;
    let hub = spoke.to_hub().map_err(|error| error.to_string())?;
    encode(&hub)
}

/// v1beta1 → v1alpha1.
fn down<S: Spoke>(object: &Value) -> Result<Value, String> {
    let hub: S::Hub = decode(object)?;
    let spoke = S::from_hub(&hub).map_err(|error| error.to_string())?;
    encode(&spoke)
}

/// Decodes `object` as `T`, refusing any field `T` does not keep (it would be dropped silently).
fn decode<T: Serialize + DeserializeOwned>(object: &Value) -> Result<T, String> {
    let typed: T = serde_json::from_value(object.clone())
        .map_err(|error| format!("cannot decode: {error}"))?;
    let again = serde_json::to_value(&typed).map_err(|error| format!("cannot encode: {error}"))?;
    let mut lost = Vec::new();
    dropped_fields(object, &again, "", &mut lost);
    if !lost.is_empty() {
        return Err(format!(
            "field(s) {} are not part of this version's schema and would be lost",
            lost.join(", ")
        ));
    }
    Ok(typed)
}

fn encode<T: Serialize>(object: &T) -> Result<Value, String> {
    serde_json::to_value(object).map_err(|error| format!("cannot encode the result: {error}"))
}

/// A value that carries no information when absent: null, false, 0, "", {} or [].
fn is_zero(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// Appends to `lost` the JSON paths of fields present (non-zero) in `input` but absent in `output`.
fn dropped_fields(input: &Value, output: &Value, path: &str, lost: &mut Vec<String>) {
    match (input, output) {
        (Value::Object(input), Value::Object(output)) => {
            dropped_object_fields(input, output, path, lost)
        }
        (Value::Array(input), Value::Array(output)) if input.len() == output.len() => {
            for (index, (i, o)) in input.iter().zip(output).enumerate() {
                dropped_fields(i, o, &format!("{path}[{index}]"), lost);
            }
        }
        _ => {}
    }
}

fn dropped_object_fields(
    input: &Map<String, Value>,
    output: &Map<String, Value>,
    path: &str,
    lost: &mut Vec<String>,
) {
    for (key, value) in input {
        let here = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        match output.get(key) {
            Some(kept) => dropped_fields(value, kept, &here, lost),
            None if is_zero(value) => {}
            None => lost.push(here),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CORE: &str = "agents.x-k8s.io";
    const EXT: &str = "extensions.agents.x-k8s.io";

    fn review(api_version: &str, desired: &str, objects: Vec<Value>) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": api_version,
            "kind": "ConversionReview",
            "request": { "uid": "uid-1", "desiredAPIVersion": desired, "objects": objects },
        }))
        .expect("serialisable")
    }

    fn answer(body: &[u8]) -> Value {
        respond(body).expect("a well-formed review gets a response")
    }

    /// The converted objects of a successful response.
    fn converted(response: &Value) -> Vec<Value> {
        assert_eq!(
            response["response"]["result"]["status"], "Success",
            "{response:#}"
        );
        response["response"]["convertedObjects"]
            .as_array()
            .expect("a list")
            .clone()
    }

    /// The message of a failed response.
    fn failure(response: &Value) -> String {
        assert_eq!(
            response["response"]["result"]["status"], "Failure",
            "{response:#}"
        );
        assert_eq!(response["response"]["convertedObjects"], json!([]));
        response["response"]["result"]["message"]
            .as_str()
            .expect("a message")
            .to_owned()
    }

    fn convert_one(object: Value, desired: &str) -> Value {
        let response = answer(&review(REVIEW_VERSIONS[0], desired, vec![object]));
        let mut objects = converted(&response);
        assert_eq!(objects.len(), 1);
        objects.remove(0)
    }

    fn pod_template() -> Value {
        json!({ "spec": { "containers": [{ "name": "agent", "image": "registry.invalid/agent:1" }] } })
    }

    fn alpha_sandbox(name: &str, replicas: Option<i64>) -> Value {
        let mut spec = json!({ "podTemplate": pod_template() });
        if let Some(replicas) = replicas {
            spec["replicas"] = json!(replicas);
        }
        json!({
            "apiVersion": format!("{CORE}/v1alpha1"),
            "kind": "Sandbox",
            "metadata": { "name": name, "namespace": "ns", "uid": "u-1", "resourceVersion": "7",
                          "labels": { "team": "a" } },
            "spec": spec,
        })
    }

    fn alpha_claim(warmpool: &str) -> Value {
        json!({
            "apiVersion": format!("{EXT}/v1alpha1"),
            "kind": "SandboxClaim",
            "metadata": { "name": "claim", "namespace": "ns" },
            "spec": { "sandboxTemplateRef": { "name": "tmpl" }, "warmpool": warmpool },
        })
    }

    fn alpha_template() -> Value {
        json!({
            "apiVersion": format!("{EXT}/v1alpha1"),
            "kind": "SandboxTemplate",
            "metadata": { "name": "tmpl", "namespace": "ns" },
            "spec": { "podTemplate": pod_template() },
        })
    }

    fn alpha_pool() -> Value {
        json!({
            "apiVersion": format!("{EXT}/v1alpha1"),
            "kind": "SandboxWarmPool",
            "metadata": { "name": "pool", "namespace": "ns" },
            "spec": { "replicas": 3, "sandboxTemplateRef": { "name": "tmpl" } },
        })
    }

    #[test]
    fn a_v1alpha1_sandbox_with_zero_replicas_becomes_suspended_and_comes_back() {
        let hub = convert_one(alpha_sandbox("sb", Some(0)), &format!("{CORE}/v1beta1"));
        assert_eq!(hub["apiVersion"], format!("{CORE}/v1beta1"));
        assert_eq!(hub["kind"], "Sandbox");
        assert_eq!(hub["spec"]["operatingMode"], "Suspended");
        assert_eq!(hub["metadata"]["uid"], "u-1");
        assert_eq!(hub["metadata"]["resourceVersion"], "7");
        assert_eq!(hub["metadata"]["labels"]["team"], "a");
        assert_eq!(
            hub["spec"]["podTemplate"]["spec"]["containers"][0]["image"],
            "registry.invalid/agent:1"
        );
        let back = convert_one(hub, &format!("{CORE}/v1alpha1"));
        assert_eq!(back["apiVersion"], format!("{CORE}/v1alpha1"));
        assert_eq!(back["spec"]["replicas"], 0);
        assert!(
            back["metadata"]
                .get("annotations")
                .is_none_or(|a| a.as_object().is_some_and(|a| a.is_empty())),
            "the snapshot annotation is stripped going back: {back:#}"
        );
    }

    #[test]
    fn a_v1beta1_sandbox_converts_down_with_replicas_from_the_operating_mode() {
        for (mode, replicas) in [("Running", 1), ("Suspended", 0)] {
            let hub = json!({
                "apiVersion": format!("{CORE}/v1beta1"),
                "kind": "Sandbox",
                "metadata": { "name": "sb", "namespace": "ns" },
                "spec": { "podTemplate": pod_template(), "operatingMode": mode },
            });
            let spoke = convert_one(hub, &format!("{CORE}/v1alpha1"));
            assert_eq!(spoke["spec"]["replicas"], replicas, "{mode}");
            assert!(spoke["spec"].get("operatingMode").is_none());
        }
    }

    #[test]
    fn a_claim_with_a_specific_warm_pool_maps_to_warm_pool_ref_and_back() {
        let hub = convert_one(alpha_claim("fast-pool"), &format!("{EXT}/v1beta1"));
        assert_eq!(hub["spec"]["warmPoolRef"]["name"], "fast-pool");
        let back = convert_one(hub, &format!("{EXT}/v1alpha1"));
        assert_eq!(back["spec"]["warmpool"], "fast-pool");
        assert_eq!(back["spec"]["sandboxTemplateRef"]["name"], "tmpl");
    }

    #[test]
    fn a_cold_start_claim_maps_to_the_shadow_pool() {
        let hub = convert_one(alpha_claim("none"), &format!("{EXT}/v1beta1"));
        assert_eq!(hub["spec"]["warmPoolRef"]["name"], "shadow-pool-tmpl");
    }

    #[test]
    fn templates_and_pools_round_trip() {
        let hub = convert_one(alpha_template(), &format!("{EXT}/v1beta1"));
        assert_eq!(hub["apiVersion"], format!("{EXT}/v1beta1"));
        assert_eq!(
            hub["spec"]["podTemplate"],
            alpha_template()["spec"]["podTemplate"]
        );
        let back = convert_one(hub, &format!("{EXT}/v1alpha1"));
        assert_eq!(back["spec"], alpha_template()["spec"]);

        let hub = convert_one(alpha_pool(), &format!("{EXT}/v1beta1"));
        assert_eq!(hub["spec"]["replicas"], 3);
        assert_eq!(hub["spec"]["sandboxTemplateRef"]["name"], "tmpl");
        let back = convert_one(hub, &format!("{EXT}/v1alpha1"));
        assert_eq!(back["spec"]["replicas"], 3);
        assert_eq!(back["kind"], "SandboxWarmPool");
    }

    #[test]
    fn every_object_of_a_mixed_request_is_converted_in_order() {
        let body = review(
            REVIEW_VERSIONS[0],
            &format!("{EXT}/v1beta1"),
            vec![alpha_template(), alpha_pool(), alpha_claim("p")],
        );
        let kinds: Vec<Value> = converted(&answer(&body))
            .into_iter()
            .map(|o| o["kind"].clone())
            .collect();
        assert_eq!(
            kinds,
            [
                json!("SandboxTemplate"),
                json!("SandboxWarmPool"),
                json!("SandboxClaim")
            ]
        );
    }

    #[test]
    fn an_object_already_in_the_desired_version_is_returned_unchanged() {
        let object = alpha_sandbox("sb", Some(1));
        assert_eq!(
            convert_one(object.clone(), &format!("{CORE}/v1alpha1")),
            object
        );
    }

    #[test]
    fn a_v1beta1_review_is_answered_as_v1beta1_with_its_uid() {
        let body = review(
            REVIEW_VERSIONS[1],
            &format!("{CORE}/v1beta1"),
            vec![alpha_sandbox("sb", None)],
        );
        let response = answer(&body);
        assert_eq!(response["apiVersion"], "apiextensions.k8s.io/v1beta1");
        assert_eq!(response["kind"], "ConversionReview");
        assert_eq!(response["response"]["uid"], "uid-1");
        assert_eq!(converted(&response)[0]["spec"]["operatingMode"], "Running");
    }

    #[test]
    fn an_empty_request_succeeds_with_no_objects() {
        let response = answer(&review(
            REVIEW_VERSIONS[0],
            &format!("{CORE}/v1beta1"),
            vec![],
        ));
        assert!(converted(&response).is_empty());
    }

    #[test]
    fn a_desired_version_of_another_group_or_unknown_version_fails_naming_the_object() {
        for desired in [
            format!("{EXT}/v1beta1"),
            format!("{CORE}/v2"),
            "v1".to_owned(),
        ] {
            let message = failure(&answer(&review(
                REVIEW_VERSIONS[0],
                &desired,
                vec![alpha_sandbox("sb", None)],
            )));
            assert!(
                message.contains("Sandbox agents.x-k8s.io/v1alpha1 ns/sb"),
                "{message}"
            );
            assert!(message.contains("desiredAPIVersion"), "{message}");
        }
    }

    #[test]
    fn an_unknown_kind_fails_naming_the_object() {
        let object = json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "p", "namespace": "ns" } });
        let message = failure(&answer(&review(REVIEW_VERSIONS[0], "v1", vec![object])));
        assert!(message.contains("Pod v1 ns/p"), "{message}");
        assert!(message.contains("not converted here"), "{message}");
    }

    #[test]
    fn one_bad_object_fails_the_whole_review() {
        let mut bad = alpha_sandbox("broken", None);
        bad["spec"]["replicas"] = json!("many");
        let message = failure(&answer(&review(
            REVIEW_VERSIONS[0],
            &format!("{CORE}/v1beta1"),
            vec![alpha_sandbox("good", None), bad],
        )));
        assert!(message.contains("ns/broken"), "{message}");
        assert!(message.contains("cannot decode"), "{message}");
    }

    #[test]
    fn a_field_the_version_does_not_know_fails_instead_of_being_dropped() {
        let mut object = alpha_sandbox("sb", None);
        object["spec"]["surprise"] = json!({ "keep": "me" });
        let message = failure(&answer(&review(
            REVIEW_VERSIONS[0],
            &format!("{CORE}/v1beta1"),
            vec![object],
        )));
        assert!(message.contains("spec.surprise"), "{message}");
        assert!(message.contains("ns/sb"), "{message}");
    }

    #[test]
    fn a_conversion_error_becomes_the_failure_message() {
        const POLICY: &str =
            agent_sandbox_api::keys::annotations::V1BETA1_VOLUME_CLAIM_TEMPLATES_POLICY;
        let hub = json!({
            "apiVersion": format!("{EXT}/v1alpha1"),
            "kind": "SandboxTemplate",
            "metadata": { "name": "tmpl", "namespace": "ns", "annotations": { POLICY: "Sometimes" } },
            "spec": { "podTemplate": pod_template() },
        });
        let message = failure(&answer(&review(
            REVIEW_VERSIONS[0],
            &format!("{EXT}/v1beta1"),
            vec![hub],
        )));
        assert!(message.contains("Sometimes"), "{message}");
        assert!(message.contains("ns/tmpl"), "{message}");
    }

    #[test]
    fn objects_without_identity_are_named_by_index() {
        let message = failure(&answer(&review(
            REVIEW_VERSIONS[0],
            &format!("{CORE}/v1beta1"),
            vec![json!(42)],
        )));
        assert!(
            message.starts_with("object (no apiVersion) objects[0]"),
            "{message}"
        );
    }

    #[test]
    fn requests_without_a_desired_version_or_with_non_list_objects_fail() {
        let body = serde_json::to_vec(&json!({
            "apiVersion": REVIEW_VERSIONS[0], "kind": "ConversionReview",
            "request": { "uid": "u", "objects": [] },
        }))
        .expect("serialisable");
        assert!(failure(&answer(&body)).contains("desiredAPIVersion"));
        let body = serde_json::to_vec(&json!({
            "apiVersion": REVIEW_VERSIONS[0], "kind": "ConversionReview",
            "request": { "uid": "u", "desiredAPIVersion": format!("{CORE}/v1beta1"), "objects": {} },
        }))
        .expect("serialisable");
        assert!(failure(&answer(&body)).contains("not a list"));
    }

    #[test]
    fn bodies_that_are_no_review_are_malformed() {
        for body in [
            b"not json".to_vec(),
            br#"{"apiVersion":"apiextensions.k8s.io/v2","kind":"ConversionReview","request":{"uid":"u"}}"#.to_vec(),
            br#"{"apiVersion":"apiextensions.k8s.io/v1","kind":"Other","request":{"uid":"u"}}"#.to_vec(),
            br#"{"apiVersion":"apiextensions.k8s.io/v1","kind":"ConversionReview"}"#.to_vec(),
            br#"{"apiVersion":"apiextensions.k8s.io/v1","kind":"ConversionReview","request":{}}"#.to_vec(),
        ] {
            assert!(respond(&body).is_err(), "{}", String::from_utf8_lossy(&body));
        }
    }

    #[test]
    fn zero_values_may_be_omitted_but_content_may_not() {
        let mut lost = Vec::new();
        dropped_fields(
            &json!({ "a": { "b": [1, { "c": "x", "d": false, "e": {} }] }, "f": null }),
            &json!({ "a": { "b": [1, {}] } }),
            "",
            &mut lost,
        );
        assert_eq!(lost, ["a.b[1].c"]);
    }
}
