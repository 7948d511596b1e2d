//! A unique namespace per test, deleted afterwards; logs dumped when the test fails.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::{Api, Client};

use crate::{cluster, logs, wait};

/// Label put on every namespace the harness creates.
pub const NAMESPACE_LABEL: &str = "agent-sandbox.test/e2e";

/// What a test gets: a client and a namespace of its own.
#[derive(Clone)]
pub struct TestEnv {
    /// Client for the shared cluster (admin).
    pub client: Client,
    /// This test's namespace.
    pub namespace: String,
}

impl TestEnv {
    /// A typed API in this test's namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Creates `object` in this test's namespace.
    pub async fn create<K>(&self, object: &K) -> anyhow::Result<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::Serialize
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        use anyhow::Context;
        self.api::<K>()
            .create(&kube::api::PostParams::default(), object)
            .await
            .with_context(|| {
                format!(
                    "creating {} {}",
                    K::kind(&()),
                    object.meta().name.as_deref().unwrap_or_default()
                )
            })
    }

    /// Merge-patches the `spec` of the named object in this test's namespace.
    pub async fn patch_spec<K>(&self, name: &str, spec: serde_json::Value) -> anyhow::Result<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        use anyhow::Context;
        self.api::<K>()
            .patch(
                name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(serde_json::json!({ "spec": spec })),
            )
            .await
            .with_context(|| format!("patching {} {name}", K::kind(&())))
    }

    /// Runs `body` in a fresh namespace named after `test` and deletes the namespace afterwards.
    /// When the body fails, the namespace's events and the components' log tails are printed.
    pub async fn run<F, Fut>(test: &str, body: F) -> anyhow::Result<()>
    where
        F: FnOnce(TestEnv) -> Fut,
        Fut: Future<Output = anyhow::Result<()>>,
    {
        let client = cluster::client().await?;
        let namespace = create_namespace(&client, test).await?;
        let env = TestEnv {
            client: client.clone(),
            namespace: namespace.clone(),
        };
        let result = body(env).await;
        if let Err(err) = &result {
            eprintln!("[testkit] test {test} failed in namespace {namespace}: {err:#}");
            logs::dump_namespace(&client, &namespace).await;
            logs::dump_components(60);
        }
        let deleted = Api::<Namespace>::all(client)
            .delete(&namespace, &DeleteParams::background())
            .await;
        if let (Ok(()), Err(e)) = (&result, deleted) {
            return Err(e).context(format!("deleting test namespace {namespace}"));
        }
        result
    }
}

/// A name unique within this run and across runs: `<test>-<base36 suffix>`.
fn unique_name(test: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut n = nanos
        ^ (u128::from(std::process::id()) << 64)
        ^ (u128::from(COUNTER.fetch_add(1, Ordering::Relaxed)) << 96);
    let mut suffix = String::new();
    for _ in 0..6 {
        let digit = (n % 36) as u32;
        suffix.push(char::from_digit(digit, 36).unwrap_or('x'));
        n /= 36;
    }
    let prefix: String = test
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(50)
        .collect();
    format!("{}-{suffix}", prefix.trim_matches('-'))
}

async fn create_namespace(client: &Client, test: &str) -> anyhow::Result<String> {
    let name = unique_name(test);
    create_labelled_namespace(client, &name, NAMESPACE_LABEL).await?;
    Ok(name)
}

/// Creates namespace `name` labelled `label=true` (what its creator lists to clean up) and waits until
/// Pods can be created in it (its default ServiceAccount exists).
pub async fn create_labelled_namespace(
    client: &Client,
    name: &str,
    label: &str,
) -> anyhow::Result<()> {
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some([(label.to_owned(), "true".to_owned())].into()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .with_context(|| format!("creating test namespace {name}"))?;
    // Pods are rejected until the service-account controller has made "default": wait for it.
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), name);
    wait::wait_for(
        &sas,
        "default",
        "the namespace's default ServiceAccount to exist",
        Duration::from_secs(30),
        |sa: Option<&ServiceAccount>| sa.is_some(),
    )
    .await?;
    Ok(())
}
