//! The claim pass's reads and writes: cached reads from the shared stores and the adoption queue,
//! writes (and conflict-resolving reads) against the API server.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use agent_sandbox_api::keys::labels;
use agent_sandbox_api::v1beta1::{Sandbox, SandboxClaim, SandboxTemplate, SandboxWarmPool};
use agent_sandbox_core::claim::api::{ApiError, Candidate, ClaimApi};
use agent_sandbox_warmpool::queue::AdoptionQueue;
use agent_sandbox_warmpool::staleness::{blueprint_hash, same_blueprint};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client};

/// The adoption queue shared by the Sandbox feed (which fills it) and the claim passes.
pub type SharedQueue = Arc<Mutex<AdoptionQueue>>;

/// The queue key of a pool: `<namespace>/<pool>`.
pub fn queue_key(namespace: &str, pool: &str) -> String {
    format!("{namespace}/{pool}")
}

/// The caches a pass reads.
#[derive(Clone)]
pub struct Caches {
    /// Sandboxes.
    pub sandboxes: Store<Sandbox>,
    /// SandboxWarmPools.
    pub pools: Store<SandboxWarmPool>,
    /// SandboxTemplates.
    pub templates: Store<SandboxTemplate>,
    /// The adoption queue.
    pub queue: SharedQueue,
    /// `namespace/name` of the Sandboxes this process created for claims that the Sandbox cache
    /// may not show yet ([`ClaimApi::created_unseen`]); dropped once the cache shows them or they
    /// are deleted.
    pub created_unseen: Arc<Mutex<HashSet<String>>>,
}

/// [`ClaimApi`] for one claim, over the caches and the API server.
pub struct KubeClaimApi<'a> {
    /// The caches.
    pub caches: &'a Caches,
    /// Claims in the claim's namespace.
    pub claims: Api<SandboxClaim>,
    /// Sandboxes in the claim's namespace.
    pub sandboxes: Api<Sandbox>,
    /// The claim's namespace.
    pub namespace: String,
    /// The claim's name.
    pub name: String,
}

impl<'a> KubeClaimApi<'a> {
    /// The API of `claim`.
    pub fn new(client: &Client, caches: &'a Caches, claim: &SandboxClaim) -> Self {
        let namespace = claim.metadata.namespace.clone().unwrap_or_default();
        Self {
            caches,
            claims: Api::namespaced(client.clone(), &namespace),
            sandboxes: Api::namespaced(client.clone(), &namespace),
            name: claim.metadata.name.clone().unwrap_or_default(),
            namespace,
        }
    }

    fn cached<K>(&self, store: &Store<K>, name: &str) -> Option<K>
    where
        K: kube::Resource<DynamicType = ()> + Clone,
    {
        store
            .get(&ObjectRef::new(name).within(&self.namespace))
            .map(|object| (*object).clone())
    }
}

/// Classifies a client error for the claim decisions.
pub fn classify(error: kube::Error) -> ApiError {
    match error {
        kube::Error::Api(status) if status.code == 404 => ApiError::NotFound,
        kube::Error::Api(status) if status.code == 409 && status.reason == "AlreadyExists" => {
            ApiError::AlreadyExists
        }
        kube::Error::Api(status) if status.code == 409 => ApiError::Conflict(status.message),
        other => ApiError::Other(other.to_string()),
    }
}

fn merge(patch: &serde_json::Value) -> Patch<&serde_json::Value> {
    Patch::Merge(patch)
}

impl ClaimApi for KubeClaimApi<'_> {
    fn cached_sandbox(&self, name: &str) -> Option<Sandbox> {
        self.cached(&self.caches.sandboxes, name)
    }

    fn created_unseen(&self, name: &str) -> bool {
        let Ok(mut created) = self.caches.created_unseen.lock() else {
            // Could not tell: read from the API server.
            return true;
        };
        let key = format!("{}/{name}", self.namespace);
        if !created.contains(&key) {
            return false;
        }
        if self.cached_sandbox(name).is_some() {
            created.remove(&key);
            return false;
        }
        true
    }

    fn cached_pool(&self, name: &str) -> Option<SandboxWarmPool> {
        self.cached(&self.caches.pools, name)
    }

    fn cached_template(&self, name: &str) -> Option<SandboxTemplate> {
        self.cached(&self.caches.templates, name)
    }

    fn pop_candidate(&self, pool: &str) -> Option<Candidate> {
        let mut queue = self.caches.queue.lock().ok()?;
        queue.pop_node_spread(&queue_key(&self.namespace, pool))
    }

    fn push_candidate(&self, pool: &str, candidate: Candidate) {
        if let Ok(mut queue) = self.caches.queue.lock() {
            queue.add(&queue_key(&self.namespace, pool), candidate);
        }
    }

    fn outdated(&self, template: &SandboxTemplate, sandbox: &Sandbox) -> bool {
        let label = sandbox
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(labels::SANDBOX_TEMPLATE_HASH));
        label != Some(&blueprint_hash(&template.spec.blueprint))
            && !same_blueprint(template, sandbox)
    }

    async fn read_claim(&self) -> Result<SandboxClaim, ApiError> {
        self.claims.get(&self.name).await.map_err(classify)
    }

    async fn read_sandbox(&self, name: &str) -> Result<Sandbox, ApiError> {
        self.sandboxes.get(name).await.map_err(classify)
    }

    async fn patch_claim(&self, patch: serde_json::Value) -> Result<SandboxClaim, ApiError> {
        self.claims
            .patch(&self.name, &PatchParams::default(), &merge(&patch))
            .await
            .map_err(classify)
    }

    async fn patch_claim_status(&self, patch: serde_json::Value) -> Result<(), ApiError> {
        self.claims
            .patch_status(&self.name, &PatchParams::default(), &merge(&patch))
            .await
            .map(|_| ())
            .map_err(classify)
    }

    async fn delete_claim(&self, foreground: bool) -> Result<(), ApiError> {
        let params = if foreground {
            DeleteParams::foreground()
        } else {
            DeleteParams::default()
        };
        self.claims
            .delete(&self.name, &params)
            .await
            .map(|_| ())
            .map_err(classify)
    }

    async fn patch_sandbox(
        &self,
        name: &str,
        patch: serde_json::Value,
    ) -> Result<Sandbox, ApiError> {
        self.sandboxes
            .patch(name, &PatchParams::default(), &merge(&patch))
            .await
            .map_err(classify)
    }

    async fn create_sandbox(&self, sandbox: Sandbox) -> Result<Sandbox, ApiError> {
        // Remembered before the call: the create may land even if the answer is lost.
        let key = format!(
            "{}/{}",
            self.namespace,
            sandbox.metadata.name.as_deref().unwrap_or_default()
        );
        if let Ok(mut created) = self.caches.created_unseen.lock() {
            created.insert(key.clone());
        }
        let result = self
            .sandboxes
            .create(&PostParams::default(), &sandbox)
            .await;
        // Refused (not a name clash, not a server-side failure): nothing was created.
        if let Err(kube::Error::Api(status)) = &result
            && (400..500).contains(&status.code)
            && status.code != 409
            && let Ok(mut created) = self.caches.created_unseen.lock()
        {
            created.remove(&key);
        }
        result.map_err(classify)
    }

    async fn delete_sandbox(&self, name: &str, uid: &str) -> Result<(), ApiError> {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(uid.to_owned()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match self.sandboxes.delete(name, &params).await {
            Ok(_) => Ok(()),
            // A precondition failure means another object of that name: not ours to delete.
            Err(kube::Error::Api(status)) if status.code == 409 => Err(ApiError::NotFound),
            Err(error) => Err(classify(error)),
        }
    }
}
