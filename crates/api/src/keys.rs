//! Well-known API groups, label and annotation keys: every key is defined here once.

/// API group of the Sandbox kind.
pub const CORE_GROUP: &str = "agents.x-k8s.io";
/// API group of SandboxTemplate, SandboxClaim and SandboxWarmPool.
pub const EXTENSIONS_GROUP: &str = "extensions.agents.x-k8s.io";
/// The storage (hub) version of every kind.
pub const STORAGE_VERSION: &str = "v1beta1";
/// The deprecated, still served version of every kind.
pub const DEPRECATED_VERSION: &str = "v1alpha1";

/// Key prefixes reserved for the project: never propagated from user-supplied pod metadata.
pub const RESERVED_PREFIXES: [&str; 2] = ["agents.x-k8s.io/", "extensions.agents.x-k8s.io/"];

/// Labels written and read by the controllers.
pub mod labels {
    /// NameHash of the Sandbox name, on its Pod, Service and PVCs; the Service selector.
    pub const SANDBOX_NAME_HASH: &str = "agents.x-k8s.io/sandbox-name-hash";
    /// `"true"` authorises adoption of an unowned pre-existing Pod, Service or PVC.
    pub const ADOPTABLE: &str = "agents.x-k8s.io/adoptable";
    /// NameHash of the SandboxWarmPool name: pool membership.
    pub const WARM_POOL_SANDBOX: &str = "agents.x-k8s.io/warm-pool-sandbox";
    /// NameHash of the SandboxTemplate name.
    pub const SANDBOX_TEMPLATE_REF_HASH: &str = "agents.x-k8s.io/sandbox-template-ref-hash";
    /// Hash of the template blueprint a warm Sandbox was built from.
    pub const SANDBOX_TEMPLATE_HASH: &str = "agents.x-k8s.io/sandbox-template-hash";
    /// Hash of the template pod template (deprecated: written, never read).
    pub const SANDBOX_POD_TEMPLATE_HASH: &str = "agents.x-k8s.io/sandbox-pod-template-hash";
    /// How the Sandbox was started: [`LAUNCH_TYPE_COLD`] or [`LAUNCH_TYPE_WARM`].
    pub const LAUNCH_TYPE: &str = "agents.x-k8s.io/launch-type";
    /// Value of [`LAUNCH_TYPE`] for a Sandbox created directly for a claim.
    pub const LAUNCH_TYPE_COLD: &str = "cold";
    /// Value of [`LAUNCH_TYPE`] for a Sandbox from a warm pool.
    pub const LAUNCH_TYPE_WARM: &str = "warm";
    /// Who created the object (free text on claims; normalised on Pods).
    pub const CREATED_BY: &str = "agents.x-k8s.io/created-by";
    /// UID of the claim a Sandbox belongs to.
    pub const CLAIM_UID: &str = "agents.x-k8s.io/claim-uid";
    /// Deprecated claim label naming its Sandbox; migrated to the annotation of the same key.
    pub const SANDBOX_NAME: &str = "agents.x-k8s.io/sandbox-name";
}

/// Annotations written and read by the controllers and the conversion webhook.
pub mod annotations {
    /// Name of the backing Pod of a Sandbox.
    pub const POD_NAME: &str = "agents.x-k8s.io/pod-name";
    /// Name of the SandboxTemplate a Sandbox came from.
    pub const SANDBOX_TEMPLATE_REF: &str = "agents.x-k8s.io/sandbox-template-ref";
    /// Sorted, comma-joined label keys copied from the pod template onto the Pod.
    pub const PROPAGATED_LABELS: &str = "agents.x-k8s.io/propagated-labels";
    /// Sorted, comma-joined annotation keys copied from the pod template onto the Pod.
    pub const PROPAGATED_ANNOTATIONS: &str = "agents.x-k8s.io/propagated-annotations";
    /// Name of the warm Sandbox assigned to a claim.
    pub const SANDBOX_NAME: &str = "agents.x-k8s.io/sandbox-name";
    /// When the controller first saw a claim (RFC 3339, nanoseconds).
    pub const CONTROLLER_FIRST_OBSERVED_AT: &str = "agents.x-k8s.io/controller-first-observed-at";
    /// When a claim first became Ready (RFC 3339, nanoseconds) or `unknown` when backfilled.
    pub const CLAIM_FIRST_READY_AT: &str = "agents.x-k8s.io/claim-first-ready-at";
    /// When an admission webhook first saw a claim (read only).
    pub const WEBHOOK_FIRST_OBSERVED_AT: &str = "agents.x-k8s.io/webhook-first-observed-at";
    /// When a client SDK first requested a claim (read only).
    pub const CLIENT_FIRST_REQUESTED_AT: &str = "agents.x-k8s.io/client-first-requested-at";
    /// W3C trace headers as a JSON map, copied from a claim to its Sandbox.
    pub const TRACE_CONTEXT: &str = "opentelemetry.io/trace-context";
    /// Cluster-autoscaler eviction hint put on warm pool Pods.
    pub const SAFE_TO_EVICT: &str = "cluster-autoscaler.kubernetes.io/safe-to-evict";
    /// Snapshot of a v1alpha1 Sandbox kept on the stored object.
    pub const V1ALPHA1_SANDBOX_STATE: &str = "api.agents.x-k8s.io/v1alpha1-sandbox-state";
    /// Snapshot of a v1alpha1 SandboxClaim kept on the stored object.
    pub const V1ALPHA1_SANDBOXCLAIM_STATE: &str = "api.agents.x-k8s.io/v1alpha1-sandboxclaim-state";
    /// Snapshot of a v1alpha1 SandboxTemplate (never read back, only stripped).
    pub const V1ALPHA1_SANDBOXTEMPLATE_STATE: &str =
        "api.agents.x-k8s.io/v1alpha1-sandboxtemplate-state";
    /// Snapshot of a v1alpha1 SandboxWarmPool (never read back, only stripped).
    pub const V1ALPHA1_SANDBOXWARMPOOL_STATE: &str =
        "api.agents.x-k8s.io/v1alpha1-sandboxwarmpool-state";
    /// Carries the v1beta1-only `volumeClaimTemplatesPolicy` of a template through v1alpha1.
    pub const V1BETA1_VOLUME_CLAIM_TEMPLATES_POLICY: &str =
        "api.agents.x-k8s.io/v1beta1-volume-claim-templates-policy";
}

/// The conversion webhook Service every CRD points at.
pub mod webhook {
    /// Name of the webhook Service.
    pub const SERVICE_NAME: &str = "agent-sandbox-webhook-service";
    /// Namespace of the webhook Service (the controller's namespace).
    pub const SERVICE_NAMESPACE: &str = "agent-sandbox-system";
    /// HTTP path of the conversion endpoint.
    pub const CONVERT_PATH: &str = "/convert";
    /// The ConversionReview versions the webhook answers.
    pub const CONVERSION_REVIEW_VERSIONS: [&str; 2] = ["v1", "v1beta1"];
}

/// True when `key` starts with a reserved project prefix.
pub fn is_reserved(key: &str) -> bool {
    RESERVED_PREFIXES
        .iter()
        .any(|prefix| key.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_prefixes_cover_both_groups_and_nothing_else() {
        assert!(is_reserved(labels::SANDBOX_NAME_HASH));
        assert!(is_reserved("extensions.agents.x-k8s.io/anything"));
        assert!(!is_reserved("sandbox.users.io/team"));
        assert!(!is_reserved("api.agents.x-k8s.io/v1alpha1-sandbox-state"));
        assert!(!is_reserved("agents.x-k8s.io"));
    }
}
