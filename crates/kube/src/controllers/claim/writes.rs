//! The claim pass's reads and writes: cached reads from the shared stores and the adoption queue,
//! writes (and conflict-resolving reads) against the API server through the [`Writer`]. Every client
//! error is kept, so the failure of a pass reaches the retry policy with its kinds.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use agent_sandbox_api::keys::labels;
use agent_sandbox_api::v1beta1::{Sandbox, SandboxClaim, SandboxTemplate, SandboxWarmPool};
use agent_sandbox_core::claim::api::{ApiError, Candidate, ClaimApi};
use agent_sandbox_warmpool::queue::AdoptionQueue;
use agent_sandbox_warmpool::staleness::{blueprint_hash, same_blueprint};
use kube::Api;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::runtime::writes::{Guard, Writer};

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
    /// Writes as the controllers' field manager.
    pub writer: &'a Writer,
    /// The claim's namespace.
    pub namespace: String,
    /// The claim's name.
    pub name: String,
    /// Every client error of the pass, in order.
    errors: Mutex<Vec<kube::Error>>,
}

impl<'a> KubeClaimApi<'a> {
    /// The API of `claim`.
    pub fn new(writer: &'a Writer, caches: &'a Caches, claim: &SandboxClaim) -> Self {
        Self {
            caches,
            writer,
            namespace: claim.metadata.namespace.clone().unwrap_or_default(),
            name: claim.metadata.name.clone().unwrap_or_default(),
            errors: Mutex::default(),
        }
    }

    /// The client errors the pass met (handled or not), for its failure's kinds.
    pub fn into_errors(self) -> Vec<kube::Error> {
        self.errors.into_inner().unwrap_or_default()
    }

    /// Keeps `error` and classifies it for the claim decisions.
    fn classify(&self, error: kube::Error) -> ApiError {
        let classified = classify(&error);
        if let Ok(mut errors) = self.errors.lock() {
            errors.push(error);
        }
        classified
    }

    fn api<K: crate::runtime::writes::Writable>(&self) -> Api<K> {
        Api::namespaced(self.writer.client().clone(), &self.namespace)
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
pub fn classify(error: &kube::Error) -> ApiError {
    match error {
        kube::Error::Api(status) if status.code == 404 => ApiError::NotFound,
        kube::Error::Api(status) if status.code == 409 && status.reason == "AlreadyExists" => {
            ApiError::AlreadyExists
        }
        kube::Error::Api(status) if status.code == 409 => {
            ApiError::Conflict(status.message.clone())
        }
        other => ApiError::Other(other.to_string()),
    }
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
        self.api()
            .get(&self.name)
            .await
            .map_err(|e| self.classify(e))
    }

    async fn read_sandbox(&self, name: &str) -> Result<Sandbox, ApiError> {
        self.api().get(name).await.map_err(|e| self.classify(e))
    }

    async fn patch_claim(&self, patch: serde_json::Value) -> Result<SandboxClaim, ApiError> {
        self.writer
            .patch(&self.namespace, &self.name, None, &patch)
            .await
            .map_err(|e| self.classify(e))
    }

    async fn patch_claim_status(&self, patch: serde_json::Value) -> Result<(), ApiError> {
        match self
            .writer
            .patch_status::<SandboxClaim>(&self.namespace, &self.name, &patch)
            .await
        {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(ApiError::NotFound),
            Err(error) => Err(self.classify(error)),
        }
    }

    async fn delete_claim(&self, foreground: bool) -> Result<(), ApiError> {
        match self
            .writer
            .delete::<SandboxClaim>(&self.namespace, &self.name, Guard::default(), foreground)
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(ApiError::NotFound),
            Err(error) => Err(self.classify(error)),
        }
    }

    async fn patch_sandbox(
        &self,
        name: &str,
        patch: serde_json::Value,
    ) -> Result<Sandbox, ApiError> {
        self.writer
            .patch(&self.namespace, name, None, &patch)
            .await
            .map_err(|e| self.classify(e))
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
        let result = self.writer.create(&self.namespace, &sandbox).await;
        // Refused (not a name clash, not a server-side failure): nothing was created.
        if let Err(kube::Error::Api(status)) = &result
            && (400..500).contains(&status.code)
            && status.code != 409
            && let Ok(mut created) = self.caches.created_unseen.lock()
        {
            created.remove(&key);
        }
        result.map_err(|e| self.classify(e))
    }

    async fn delete_sandbox(&self, name: &str, uid: &str) -> Result<(), ApiError> {
        match self
            .writer
            .delete::<Sandbox>(&self.namespace, name, Guard::uid(uid), false)
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(ApiError::NotFound),
            // A precondition failure means another object of that name: not ours to delete.
            Err(kube::Error::Api(status)) if status.code == 409 => Err(ApiError::NotFound),
            Err(error) => Err(self.classify(error)),
        }
    }
}
