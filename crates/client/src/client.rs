//! The client: claims sandboxes, re-attaches to claims, lists and deletes them.

use std::sync::Arc;
use std::time::Duration;

use agent_sandbox_api::v1beta1::{Sandbox as SandboxObject, SandboxClaim};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, PostParams};
use kube::{Api, ResourceExt};

use crate::claim::{CreateOptions, Progress, build_claim, delete_claim, progress};
use crate::connection::{Connection, Transport};
use crate::error::{Error, Result};
use crate::sandbox::Sandbox;
use crate::watch::{Step, watch_until};

/// How long [`SandboxClient::get_sandbox`] waits for a claim to be bound (the Python SDK's
/// `resolve_timeout`).
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(30);

/// Claims sandboxes and hands out [`Sandbox`] handles (the Python SDK's `SandboxClient`).
///
/// Cheap to clone: clones share the Kubernetes client, the HTTP connection pool and, for
/// [`Connection::PortForward`], the port-forward (opened on first use, closed when the last
/// clone and handle are dropped).
#[derive(Clone)]
pub struct SandboxClient {
    transport: Arc<Transport>,
}

impl std::fmt::Debug for SandboxClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxClient").finish_non_exhaustive()
    }
}

impl SandboxClient {
    /// A client that manages claims with `kube` and reaches sandboxes over `connection`. Nothing is
    /// contacted yet: a router URL is checked, and a port-forward opened, by the first request
    /// to a sandbox.
    pub fn new(kube: kube::Client, connection: Connection) -> Self {
        Self {
            transport: Arc::new(Transport::new(kube, connection)),
        }
    }

    /// The Kubernetes client.
    pub fn kube(&self) -> &kube::Client {
        self.transport.kube()
    }

    fn claims(&self, namespace: &str) -> Api<SandboxClaim> {
        Api::namespaced(self.kube().clone(), namespace)
    }

    /// Claims a sandbox from `options.warm_pool` and waits until the claim is Ready (the Python
    /// SDK's `create_sandbox`): a SandboxClaim with `agents.x-k8s.io/created-by: rust-client` and
    /// `agents.x-k8s.io/client-first-requested-at`, then a watch on it. A Ready=False reason the
    /// controller does not retry ends the wait at once: [`Error::WarmPoolNotFound`],
    /// [`Error::TemplateNotFound`], [`Error::ClaimFailed`]; so does the claim's deletion
    /// ([`Error::ClaimDeleted`]); after `options.ready_timeout`, [`Error::WaitTimeout`]. On any
    /// failure after the claim was created it is deleted again, as the SDK does.
    pub async fn create_sandbox(&self, options: CreateOptions) -> Result<Sandbox> {
        let namespace = options.namespace.as_str();
        let api = self.claims(namespace);
        let created = self.post_claim(&options).await?;
        let name = created.name_any();
        tracing::debug!(%namespace, claim = %name, pool = %options.warm_pool, "claim created");
        match self
            .wait_claim(&api, &created, true, options.ready_timeout)
            .await
        {
            Ok((sandbox, pod_ips)) => {
                tracing::debug!(%namespace, claim = %name, %sandbox, "claim ready");
                Ok(Sandbox::new(
                    self.transport.clone(),
                    name,
                    namespace.to_owned(),
                    sandbox,
                    &pod_ips,
                ))
            }
            Err(err) => {
                // The UID keeps a claim of the same name created since from being deleted.
                if let Err(rollback) =
                    delete_claim(self.kube(), namespace, &name, created.uid()).await
                {
                    tracing::warn!(
                        %namespace, claim = %name, error = %rollback,
                        "could not delete the claim after a failed create"
                    );
                }
                Err(err)
            }
        }
    }

    /// Creates the claim [`create_sandbox`](Self::create_sandbox) would, without waiting for it:
    /// its name (generated unless `options.claim_name` is set). [`get_sandbox`](Self::get_sandbox)
    /// attaches to it later.
    pub async fn create_claim(&self, options: CreateOptions) -> Result<String> {
        Ok(self.post_claim(&options).await?.name_any())
    }

    async fn post_claim(&self, options: &CreateOptions) -> Result<SandboxClaim> {
        let claim = build_claim(options, Timestamp::now())?;
        let namespace = options.namespace.as_str();
        self.claims(namespace)
            .create(&PostParams::default(), &claim)
            .await
            .map_err(|err| {
                Error::kube(
                    format!(
                        "creating a SandboxClaim of warm pool {} in {namespace}",
                        options.warm_pool
                    ),
                    &err,
                )
            })
    }

    /// A handle to the existing claim `claim` (the Python SDK's `get_sandbox`): waits up to
    /// [`RESOLVE_TIMEOUT`] for it to be bound to a Sandbox (Ready or not: a suspended sandbox can
    /// be resumed through its handle).
    pub async fn get_sandbox(&self, claim: &str, namespace: &str) -> Result<Sandbox> {
        let api = self.claims(namespace);
        let object = api
            .get_opt(claim)
            .await
            .map_err(|err| Error::kube(format!("reading SandboxClaim {namespace}/{claim}"), &err))?
            .ok_or_else(|| Error::ClaimNotFound {
                namespace: namespace.to_owned(),
                name: claim.to_owned(),
            })?;
        let (sandbox, _) = self
            .wait_claim(&api, &object, false, RESOLVE_TIMEOUT)
            .await?;
        // The claim's copy of the pod IPs may lag a resume; the Sandbox's own status does not.
        let object = Api::<SandboxObject>::namespaced(self.kube().clone(), namespace)
            .get_opt(&sandbox)
            .await
            .map_err(|err| Error::kube(format!("reading Sandbox {namespace}/{sandbox}"), &err))?
            .ok_or_else(|| Error::SandboxNotFound {
                namespace: namespace.to_owned(),
                name: sandbox.clone(),
            })?;
        let pod_ips = object.status.map(|s| s.pod_ips).unwrap_or_default();
        Ok(Sandbox::new(
            self.transport.clone(),
            claim.to_owned(),
            namespace.to_owned(),
            sandbox,
            &pod_ips,
        ))
    }

    /// The names of the claims in `namespace`, those matching `label_selector` (e.g.
    /// `team=a,env!=prod`) when given (the Python SDK's `list_all_sandboxes`).
    pub async fn list_sandboxes(
        &self,
        namespace: &str,
        label_selector: Option<&str>,
    ) -> Result<Vec<String>> {
        let mut params = ListParams::default();
        if let Some(selector) = label_selector {
            params = params.labels(selector);
        }
        let claims =
            self.claims(namespace).list(&params).await.map_err(|err| {
                Error::kube(format!("listing SandboxClaims in {namespace}"), &err)
            })?;
        Ok(claims.items.iter().map(ResourceExt::name_any).collect())
    }

    /// Deletes claim `claim`, and with it its sandbox (the Python SDK's `delete_sandbox`); a
    /// claim already gone is not an error. Returns once the API server accepted the deletion.
    pub async fn delete_sandbox(&self, claim: &str, namespace: &str) -> Result<()> {
        delete_claim(self.kube(), namespace, claim, None).await
    }

    /// Waits (from `claim` as last read) until the claim is bound, and Ready if `require_ready`:
    /// the Sandbox's name and pod IPs.
    async fn wait_claim(
        &self,
        api: &Api<SandboxClaim>,
        claim: &SandboxClaim,
        require_ready: bool,
        timeout: Duration,
    ) -> Result<(String, Vec<String>)> {
        let decide = |claim: &SandboxClaim| match progress(claim, require_ready) {
            Progress::Bound { sandbox, pod_ips } => Step::Done((sandbox, pod_ips)),
            Progress::Waiting(now) => Step::Wait(now),
            Progress::Failed(err) => Step::Fail(err),
        };
        // A claim already there is answered without a watch.
        match decide(claim) {
            Step::Done(bound) => return Ok(bound),
            Step::Fail(err) => return Err(err),
            Step::Wait(_) => {}
        }
        let namespace = claim.namespace().unwrap_or_default();
        let name = claim.name_any();
        let what = format!(
            "sandbox claim {namespace}/{name} to be {}",
            if require_ready { "Ready" } else { "bound" }
        );
        let gone = || Error::ClaimDeleted {
            namespace: namespace.clone(),
            name: name.clone(),
        };
        watch_until(api, &name, what, timeout, gone, decide).await
    }
}
