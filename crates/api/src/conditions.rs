//! Condition types and reasons written by the controllers, exactly as upstream spells them.

/// Condition types.
pub mod types {
    /// The object is usable.
    pub const READY: &str = "Ready";
    /// The Sandbox's Pod is removed because `operatingMode` is `Suspended`.
    pub const SUSPENDED: &str = "Suspended";
    /// Mirrors the owned Pod's `PodScheduled` condition.
    pub const POD_SCHEDULED: &str = "PodScheduled";
    /// The owned Pod reached a terminal phase.
    pub const FINISHED: &str = "Finished";
}

/// Reasons of Sandbox conditions.
pub mod sandbox {
    /// Ready: Pod running and ready with an IP (and Service present if required).
    pub const DEPENDENCIES_READY: &str = "DependenciesReady";
    /// Ready: expected to run but not there yet.
    pub const DEPENDENCIES_NOT_READY: &str = "DependenciesNotReady";
    /// Ready: `operatingMode` is `Suspended`.
    pub const SANDBOX_SUSPENDED: &str = "SandboxSuspended";
    /// Ready / Finished: the Pod succeeded.
    pub const POD_SUCCEEDED: &str = "PodSucceeded";
    /// Ready / Finished: the Pod failed.
    pub const POD_FAILED: &str = "PodFailed";
    /// Ready: more than one Pod is controlled by the Sandbox.
    pub const MULTIPLE_PODS: &str = "MultiplePods";
    /// Ready: a child reconcile error.
    pub const RECONCILER_ERROR: &str = "ReconcilerError";
    /// Ready: a permanent configuration error (invalid spec, a child name the API server refuses, or a
    /// create it rejected as invalid); not retried until the Sandbox changes.
    pub const INVALID_CONFIGURATION: &str = "InvalidConfiguration";
    /// Ready: `shutdownTime` has passed.
    pub const SANDBOX_EXPIRED: &str = "SandboxExpired";
    /// Suspended=False: the Sandbox is running.
    pub const NOT_SUSPENDED: &str = "NotSuspended";
    /// Suspended=True: the Pod is gone.
    pub const POD_TERMINATED: &str = "PodTerminated";
    /// Suspended=False: the owned Pod still exists.
    pub const POD_TERMINATING: &str = "PodTerminating";
    /// Suspended=False: a Pod of the tracked name exists but is not owned; it is left alone.
    pub const POD_NOT_OWNED: &str = "PodNotOwned";
    /// Suspended=Unknown: the Pod lookup failed.
    pub const POD_STATE_UNKNOWN: &str = "PodStateUnknown";
    /// Defined for compatibility; never written.
    pub const POD_NOT_TERMINATED: &str = "PodNotTerminated";
    /// PodScheduled=True mirrored from a Pod that reported no reason.
    pub const POD_SCHEDULED: &str = "PodScheduled";
    /// PodScheduled=Unknown: the Pod has not reported scheduling, or its state is unknown.
    pub const POD_SCHEDULING_UNKNOWN: &str = "PodSchedulingUnknown";
}

/// Reasons of SandboxClaim conditions (besides the forwarded Sandbox reasons).
pub mod claim {
    /// The bound Sandbox expired on its own.
    pub const SANDBOX_EXPIRED: &str = "SandboxExpired";
    /// The Sandbox exists but reports no Ready condition yet.
    pub const SANDBOX_NOT_READY: &str = "SandboxNotReady";
    /// No Sandbox exists for the claim.
    pub const SANDBOX_MISSING: &str = "SandboxMissing";
    /// The claim's lifecycle ended.
    pub const CLAIM_EXPIRED: &str = "ClaimExpired";
    /// The pool's SandboxTemplate does not exist.
    pub const TEMPLATE_NOT_FOUND: &str = "TemplateNotFound";
    /// The referenced SandboxWarmPool does not exist.
    pub const WARM_POOL_NOT_FOUND: &str = "WarmPoolNotFound";
    /// `additionalPodMetadata` failed validation.
    pub const INVALID_METADATA: &str = "InvalidMetadata";
    /// `spec.env` is not allowed by the template's policy.
    pub const ENV_VARS_INJECTION_REJECTED: &str = "EnvVarsInjectionRejected";
    /// Claim or template volume claim templates are disallowed or invalid.
    pub const VOLUME_CLAIM_TEMPLATES_ERROR: &str = "VolumeClaimTemplatesError";
    /// Optimistic-concurrency contention while adopting a warm Sandbox.
    pub const ADOPTION_CONFLICT: &str = "AdoptionConflict";
    /// A cold create raced the cache.
    pub const SANDBOX_CREATE_PENDING: &str = "SandboxCreatePending";
    /// Any other error.
    pub const RECONCILER_ERROR: &str = "ReconcilerError";
}

/// Reasons of events.
pub mod events {
    /// Claim lifecycle ended (actions `Claim Expired` and `Deleting`).
    pub const CLAIM_EXPIRED: &str = "ClaimExpired";
    /// A warm Sandbox was adopted by a claim.
    pub const SANDBOX_ADOPTED: &str = "SandboxAdopted";
    /// A Sandbox was cold-created for a claim.
    pub const SANDBOX_PROVISIONED: &str = "SandboxProvisioned";
    /// More than one Pod is controlled by a Sandbox.
    pub const MULTIPLE_PODS: &str = "MultiplePods";
    /// A Sandbox has a permanent configuration error (as its Ready reason).
    pub const INVALID_CONFIGURATION: &str = "InvalidConfiguration";
    /// Some pool members are unschedulable past the readiness grace period.
    pub const WARM_POOL_NOT_PROGRESSING: &str = "WarmPoolNotProgressing";
    /// The pool makes progress again.
    pub const WARM_POOL_PROGRESSING: &str = "WarmPoolProgressing";
}
