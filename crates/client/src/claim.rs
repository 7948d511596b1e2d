//! The SandboxClaim this client writes and how it reads a claim's progress (pure functions, so the
//! exact object and the fail-fast rules are unit-tested without a cluster), and its deletion.

use std::collections::BTreeMap;
use std::time::Duration;

use agent_sandbox_api::conditions::{claim as claim_reason, sandbox as sandbox_reason, types};
use agent_sandbox_api::keys::{annotations, labels};
use agent_sandbox_api::v1beta1::{
    ClaimLifecycle, ClaimShutdownPolicy, EnvVar, LocalObjectReference,
    PersistentVolumeClaimTemplate, PodMetadata, SandboxClaim, SandboxClaimSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::api::{DeleteParams, Preconditions};

use crate::error::{Error, Result, is_not_found, one_line};

/// The value of `agents.x-k8s.io/created-by` on claims this client creates (the Python SDK writes
/// `python-client`, the Go SDK `go-client`).
pub const CREATED_BY: &str = "rust-client";

/// Prefix of generated claim names; the API server appends five random characters.
pub const CLAIM_NAME_PREFIX: &str = "sandbox-claim-";

/// The namespace [`CreateOptions::new`] uses, as the Python SDK does.
pub const DEFAULT_NAMESPACE: &str = "default";

/// How long [`CreateOptions::new`] lets a claim take to be Ready (the SDK's
/// `sandbox_ready_timeout`).
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(180);

/// Ready=False reasons the controllers do not recover from on their own: waiting for Ready stops
/// at once with [`Error::ClaimFailed`] (the Python SDK's list; `TemplateNotFound` and
/// `WarmPoolNotFound` have errors of their own).
const TERMINAL_REASONS: [&str; 8] = [
    claim_reason::INVALID_METADATA,
    claim_reason::ENV_VARS_INJECTION_REJECTED,
    claim_reason::VOLUME_CLAIM_TEMPLATES_ERROR,
    claim_reason::CLAIM_EXPIRED,
    claim_reason::SANDBOX_EXPIRED,
    sandbox_reason::INVALID_CONFIGURATION,
    sandbox_reason::POD_FAILED,
    sandbox_reason::POD_SUCCEEDED,
];

/// What to claim and how: the Python SDK's `create_sandbox` arguments.
///
/// ```
/// use agent_sandbox_client::CreateOptions;
/// use std::time::Duration;
///
/// let options = CreateOptions {
///     namespace: "agents".into(),
///     shutdown_after: Some(Duration::from_secs(3600)),
///     ..CreateOptions::new("python-pool")
/// };
/// assert_eq!(options.warm_pool, "python-pool");
/// ```
///
/// A claim always names a warm pool (`spec.warmPoolRef`): in `v1beta1` a claim has no template
/// reference of its own, the pool's template is the blueprint (and serves cold starts when the
/// pool is empty, or when `env` or `volume_claim_templates` are set).
#[derive(Clone, Debug, PartialEq)]
pub struct CreateOptions {
    /// The SandboxWarmPool (in `namespace`) to claim from.
    pub warm_pool: String,
    /// Namespace of the claim (and of the pool).
    pub namespace: String,
    /// The claim's name; `None` lets the API server generate `sandbox-claim-xxxxx`.
    pub claim_name: Option<String>,
    /// Labels of the claim object (`agents.x-k8s.io/created-by` is always `rust-client`).
    pub labels: BTreeMap<String, String>,
    /// Labels for the sandbox's Pod (`spec.additionalPodMetadata.labels`); the controller accepts
    /// keys in its allowed domains only (`sandbox.users.io/…` by default).
    pub pod_labels: BTreeMap<String, String>,
    /// Annotations for the sandbox's Pod (`spec.additionalPodMetadata.annotations`).
    pub pod_annotations: BTreeMap<String, String>,
    /// Environment variables for the sandbox's first container (`spec.env`); the template must
    /// allow them, and they force a cold start.
    pub env: BTreeMap<String, String>,
    /// Delete the claim (and with it the sandbox) this long after creation:
    /// `spec.lifecycle {shutdownTime: now + this, shutdownPolicy: Delete}`. Whole seconds, at
    /// least one.
    pub shutdown_after: Option<Duration>,
    /// Extra PersistentVolumeClaim templates (`spec.volumeClaimTemplates`), merged as the
    /// template's policy allows; they force a cold start.
    pub volume_claim_templates: Vec<PersistentVolumeClaimTemplate>,
    /// How long to wait for the claim to be Ready.
    pub ready_timeout: Duration,
}

impl CreateOptions {
    /// A claim of `warm_pool` in namespace `default`, waited for at most 180 s, with nothing else set.
    pub fn new(warm_pool: impl Into<String>) -> Self {
        Self {
            warm_pool: warm_pool.into(),
            namespace: DEFAULT_NAMESPACE.to_owned(),
            claim_name: None,
            labels: BTreeMap::new(),
            pod_labels: BTreeMap::new(),
            pod_annotations: BTreeMap::new(),
            env: BTreeMap::new(),
            shutdown_after: None,
            volume_claim_templates: Vec::new(),
            ready_timeout: DEFAULT_READY_TIMEOUT,
        }
    }
}

/// The SandboxClaim for `options`, created at `now`: what the Python SDK writes, with this client's
/// `created-by` value.
pub(crate) fn build_claim(options: &CreateOptions, now: Timestamp) -> Result<SandboxClaim> {
    if options.warm_pool.is_empty() {
        return Err(Error::InvalidArgument(
            "the warm pool name is empty".to_owned(),
        ));
    }
    if options.namespace.is_empty() {
        return Err(Error::InvalidArgument("the namespace is empty".to_owned()));
    }
    let lifecycle = options
        .shutdown_after
        .map(|after| shutdown_lifecycle(after, now))
        .transpose()?;
    let mut claim_labels = options.labels.clone();
    claim_labels.insert(labels::CREATED_BY.to_owned(), CREATED_BY.to_owned());
    let metadata = ObjectMeta {
        name: options.claim_name.clone(),
        generate_name: options
            .claim_name
            .is_none()
            .then(|| CLAIM_NAME_PREFIX.to_owned()),
        namespace: Some(options.namespace.clone()),
        labels: Some(claim_labels),
        annotations: Some(BTreeMap::from([(
            annotations::CLIENT_FIRST_REQUESTED_AT.to_owned(),
            now.to_string(),
        )])),
        ..ObjectMeta::default()
    };
    let spec = SandboxClaimSpec {
        warm_pool_ref: LocalObjectReference {
            name: options.warm_pool.clone(),
        },
        lifecycle,
        additional_pod_metadata: PodMetadata {
            labels: options.pod_labels.clone(),
            annotations: options.pod_annotations.clone(),
        },
        env: options
            .env
            .iter()
            .map(|(name, value)| EnvVar {
                name: name.clone(),
                value: value.clone(),
                container_name: String::new(),
            })
            .collect(),
        volume_claim_templates: options.volume_claim_templates.clone(),
    };
    Ok(SandboxClaim {
        metadata,
        spec,
        status: None,
    })
}

/// `spec.lifecycle` ending the claim `after` from `now` by deleting it. The API stores whole
/// seconds, so `after` must be whole seconds too: a fraction would be cut off and could put the
/// shutdown in the past.
fn shutdown_lifecycle(after: Duration, now: Timestamp) -> Result<ClaimLifecycle> {
    if after.subsec_nanos() != 0 || after.is_zero() {
        return Err(Error::InvalidArgument(format!(
            "shutdown_after must be a whole number of seconds, at least one, not {after:?}"
        )));
    }
    let at = SignedDuration::try_from(after)
        .ok()
        .and_then(|after| now.checked_add(after).ok())
        .ok_or_else(|| Error::InvalidArgument(format!("shutdown_after {after:?} is too large")))?;
    Ok(ClaimLifecycle {
        shutdown_time: Some(Time(at)),
        ttl_seconds_after_finished: None,
        shutdown_policy: Some(ClaimShutdownPolicy::Delete),
    })
}

/// Where a claim stands for a client waiting on it.
#[derive(Debug)]
pub(crate) enum Progress {
    /// Keep waiting; the text says what the claim shows now (for a timeout's message).
    Waiting(String),
    /// Bound to a Sandbox (and Ready, when that was asked for).
    Bound {
        /// The Sandbox's name: what the router's `X-Sandbox-ID` names.
        sandbox: String,
        /// The Sandbox's pod IPs as the claim reports them.
        pod_ips: Vec<String>,
    },
    /// It will not get there without someone changing something.
    Failed(Error),
}

/// Reads `claim`: failed for a terminating claim or a Ready=False reason the controller will not
/// retry; bound once `status.sandbox.name` is set (and Ready=True, if `require_ready`).
pub(crate) fn progress(claim: &SandboxClaim, require_ready: bool) -> Progress {
    let namespace = claim.metadata.namespace.clone().unwrap_or_default();
    let name = claim.metadata.name.clone().unwrap_or_default();
    if claim.metadata.deletion_timestamp.is_some() {
        return Progress::Failed(Error::ClaimDeleted { namespace, name });
    }
    let status = claim.status.as_ref();
    let ready = status.and_then(|s| s.conditions.iter().find(|c| c.type_ == types::READY));
    if let Some(condition) = ready.filter(|c| c.status == "False") {
        let message = one_line(&condition.message);
        let pool = claim.spec.warm_pool_ref.name.clone();
        match condition.reason.as_str() {
            claim_reason::WARM_POOL_NOT_FOUND => {
                return Progress::Failed(Error::WarmPoolNotFound {
                    namespace,
                    name: pool,
                    message,
                });
            }
            claim_reason::TEMPLATE_NOT_FOUND => {
                return Progress::Failed(Error::TemplateNotFound {
                    namespace,
                    pool,
                    message,
                });
            }
            reason if TERMINAL_REASONS.contains(&reason) => {
                return Progress::Failed(Error::ClaimFailed {
                    namespace,
                    name,
                    reason: reason.to_owned(),
                    message,
                });
            }
            _ => {}
        }
    }
    let is_ready = ready.is_some_and(|c| c.status == "True");
    match status.map(|s| &s.sandbox).filter(|s| !s.name.is_empty()) {
        Some(bound) if is_ready || !require_ready => Progress::Bound {
            sandbox: bound.name.clone(),
            pod_ips: bound.pod_ips.clone(),
        },
        _ => Progress::Waiting(describe(ready)),
    }
}

/// A condition as `Ready=False SandboxNotReady: Sandbox is not ready`, for timeout messages.
pub(crate) fn describe(condition: Option<&Condition>) -> String {
    match condition {
        None => "no Ready condition yet".to_owned(),
        Some(c) if c.message.is_empty() => format!("{}={} {}", c.type_, c.status, c.reason),
        Some(c) => format!(
            "{}={} {}: {}",
            c.type_,
            c.status,
            c.reason,
            one_line(&c.message)
        ),
    }
}

/// Deletes claim `namespace/name` (and with it its Sandbox), only if its UID is still `uid` when
/// one is given; a claim already gone is no error.
pub(crate) async fn delete_claim(
    kube: &kube::Client,
    namespace: &str,
    name: &str,
    uid: Option<String>,
) -> Result<()> {
    let claims: Api<SandboxClaim> = Api::namespaced(kube.clone(), namespace);
    let params = DeleteParams {
        preconditions: uid.map(|uid| Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match claims.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(err) if is_not_found(&err) => Ok(()),
        Err(err) => Err(Error::kube(
            format!("deleting SandboxClaim {namespace}/{name}"),
            &err,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_sandbox_api::v1beta1::SandboxClaimStatus;

    fn now() -> Timestamp {
        "2030-01-02T03:04:05Z".parse().unwrap()
    }

    #[test]
    fn the_claim_is_what_the_python_sdk_writes_with_our_creator() {
        let options = CreateOptions {
            namespace: "agents".into(),
            labels: BTreeMap::from([("team".into(), "a".into())]),
            pod_labels: BTreeMap::from([("sandbox.users.io/user".into(), "u1".into())]),
            pod_annotations: BTreeMap::from([("example.com/note".into(), "hi".into())]),
            env: BTreeMap::from([("GREETING".into(), "hello".into())]),
            shutdown_after: Some(Duration::from_secs(600)),
            ..CreateOptions::new("python-pool")
        };
        let claim = build_claim(&options, now()).unwrap();
        assert_eq!(
            serde_json::to_value(&claim).unwrap(),
            serde_json::json!({
                "apiVersion": "extensions.agents.x-k8s.io/v1beta1",
                "kind": "SandboxClaim",
                "metadata": {
                    "generateName": "sandbox-claim-",
                    "namespace": "agents",
                    "labels": {"team": "a", "agents.x-k8s.io/created-by": "rust-client"},
                    "annotations": {
                        "agents.x-k8s.io/client-first-requested-at": "2030-01-02T03:04:05Z"
                    },
                },
                "spec": {
                    "warmPoolRef": {"name": "python-pool"},
                    "lifecycle": {
                        "shutdownTime": "2030-01-02T03:14:05Z",
                        "shutdownPolicy": "Delete",
                    },
                    "additionalPodMetadata": {
                        "labels": {"sandbox.users.io/user": "u1"},
                        "annotations": {"example.com/note": "hi"},
                    },
                    "env": [{"name": "GREETING", "value": "hello"}],
                },
            })
        );
    }

    #[test]
    fn a_named_claim_keeps_its_name_and_the_creator_label_wins() {
        let options = CreateOptions {
            claim_name: Some("mine".into()),
            labels: BTreeMap::from([(labels::CREATED_BY.into(), "someone".into())]),
            ..CreateOptions::new("pool")
        };
        let claim = build_claim(&options, now()).unwrap();
        assert_eq!(claim.metadata.name.as_deref(), Some("mine"));
        assert_eq!(claim.metadata.generate_name, None);
        assert_eq!(
            claim.metadata.labels.unwrap()[labels::CREATED_BY],
            CREATED_BY
        );
        assert!(claim.spec.lifecycle.is_none());
    }

    #[test]
    fn refuses_what_the_api_cannot_store() {
        for options in [
            CreateOptions::new(""),
            CreateOptions {
                namespace: String::new(),
                ..CreateOptions::new("pool")
            },
            CreateOptions {
                shutdown_after: Some(Duration::ZERO),
                ..CreateOptions::new("pool")
            },
            CreateOptions {
                shutdown_after: Some(Duration::from_millis(1500)),
                ..CreateOptions::new("pool")
            },
            CreateOptions {
                shutdown_after: Some(Duration::from_secs(u64::MAX)),
                ..CreateOptions::new("pool")
            },
        ] {
            let err = build_claim(&options, now()).unwrap_err();
            assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
        }
    }

    fn claim_with(ready: Option<(&str, &str, &str)>, sandbox: &str) -> SandboxClaim {
        let mut claim = build_claim(
            &CreateOptions {
                claim_name: Some("c".into()),
                ..CreateOptions::new("pool")
            },
            now(),
        )
        .unwrap();
        let mut status = SandboxClaimStatus::default();
        status.sandbox.name = sandbox.to_owned();
        status.sandbox.pod_ips = vec!["10.0.0.7".to_owned()];
        if let Some((status_, reason, message)) = ready {
            status.conditions.push(Condition {
                type_: types::READY.to_owned(),
                status: status_.to_owned(),
                reason: reason.to_owned(),
                message: message.to_owned(),
                last_transition_time: Time(now()),
                observed_generation: None,
            });
        }
        claim.status = Some(status);
        claim
    }

    #[test]
    fn bound_and_ready_claims_name_their_sandbox() {
        let ready = claim_with(Some(("True", "DependenciesReady", "")), "pool-abcde");
        match progress(&ready, true) {
            Progress::Bound { sandbox, pod_ips } => {
                assert_eq!(sandbox, "pool-abcde");
                assert_eq!(pod_ips, ["10.0.0.7"]);
            }
            other => panic!("{other:?}"),
        }
        let bound = claim_with(
            Some(("False", "SandboxNotReady", "Sandbox is not ready")),
            "pool-abcde",
        );
        assert!(matches!(progress(&bound, false), Progress::Bound { .. }));
        match progress(&bound, true) {
            Progress::Waiting(last) => {
                assert_eq!(last, "Ready=False SandboxNotReady: Sandbox is not ready");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            progress(&claim_with(None, ""), false),
            Progress::Waiting(last) if last == "no Ready condition yet"
        ));
    }

    #[test]
    fn terminal_reasons_fail_fast_with_typed_errors() {
        let pool = claim_with(
            Some((
                "False",
                "WarmPoolNotFound",
                "SandboxWarmPool \"pool\" not found",
            )),
            "",
        );
        match progress(&pool, true) {
            Progress::Failed(Error::WarmPoolNotFound { name, .. }) => assert_eq!(name, "pool"),
            other => panic!("{other:?}"),
        }
        let template = claim_with(Some(("False", "TemplateNotFound", "t")), "");
        assert!(matches!(
            progress(&template, true),
            Progress::Failed(Error::TemplateNotFound { .. })
        ));
        for reason in TERMINAL_REASONS {
            let claim = claim_with(Some(("False", reason, "why")), "s");
            match progress(&claim, false) {
                Progress::Failed(Error::ClaimFailed { reason: r, .. }) => assert_eq!(r, reason),
                other => panic!("{reason}: {other:?}"),
            }
        }
        // Retried by the controller: keep waiting.
        for reason in ["AdoptionConflict", "ReconcilerError", "SandboxMissing"] {
            let claim = claim_with(Some(("False", reason, "")), "");
            assert!(matches!(progress(&claim, true), Progress::Waiting(_)));
        }
    }

    #[test]
    fn a_terminating_claim_is_gone() {
        let mut claim = claim_with(Some(("True", "DependenciesReady", "")), "s");
        claim.metadata.deletion_timestamp = Some(Time(now()));
        assert!(matches!(
            progress(&claim, true),
            Progress::Failed(Error::ClaimDeleted { .. })
        ));
    }
}
