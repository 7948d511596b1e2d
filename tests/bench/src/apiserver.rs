//! Counting the controller's API requests: the controller runs as a user of its own (a client
//! certificate signed by the local cluster's CA, bound to `cluster-admin` so any implementation has the
//! access it needs) and a FlowSchema routes exactly that user, so the API server's
//! `apiserver_flowcontrol_dispatched_requests_total{flow_schema=…}` counts its requests alone.
//! (Not `system:masters`: that group is matched by the `exempt` schema, which nothing can precede.)

use agent_sandbox_hostcmd as hostcmd;
use anyhow::Context;
use k8s_openapi::api::flowcontrol::v1::FlowSchema;
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::prom::Scrape;

/// The user name the controller under test authenticates as, and the FlowSchema matching it.
pub const CONTROLLER_USER: &str = "agent-sandbox-bench-controller";

/// Resources whose request counts (all clients) are reported next to the controller's own total.
const RESOURCES: [&str; 8] = [
    "sandboxes",
    "sandboxclaims",
    "sandboxwarmpools",
    "sandboxtemplates",
    "pods",
    "services",
    "persistentvolumeclaims",
    "events",
];

/// Writes a kubeconfig for [`CONTROLLER_USER`] next to `admin` and returns its path, or None when the
/// cluster is not the local one (no CA key to sign with): the controller then uses `admin` and its
/// requests cannot be told apart.
pub fn controller_kubeconfig(admin: &Path, dir: &Path) -> anyhow::Result<Option<PathBuf>> {
    let pki = admin.with_file_name("pki");
    if !agent_sandbox_testkit::cluster::is_local_cluster() || !pki.join("ca.key").exists() {
        return Ok(None);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (key, crt) = issue_client_certificate(&pki, dir)?;
    let text =
        std::fs::read_to_string(admin).with_context(|| format!("reading {}", admin.display()))?;
    let mut config: serde_yaml::Value =
        serde_yaml::from_str(&text).with_context(|| format!("parsing {}", admin.display()))?;
    config["users"] = serde_yaml::to_value(json!([{
        "name": CONTROLLER_USER,
        "user": {"client-certificate": path_text(&crt), "client-key": path_text(&key)},
    }]))?;
    if let Some(contexts) = config["contexts"].as_sequence_mut() {
        for context in contexts {
            context["context"]["user"] = CONTROLLER_USER.into();
        }
    }
    let path = dir.join("controller.kubeconfig");
    std::fs::write(&path, serde_yaml::to_string(&config)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(Some(path))
}

fn path_text(p: &Path) -> String {
    p.display().to_string()
}

/// A new key and a client certificate for [`CONTROLLER_USER`] signed by the CA in `pki`, written to
/// `dir`; returns their paths.
fn issue_client_certificate(pki: &Path, dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let (ca_crt, ca_key) = (pki.join("ca.crt"), pki.join("ca.key"));
    let (key, csr, crt) = (
        dir.join("controller.key"),
        dir.join("controller.csr"),
        dir.join("controller.crt"),
    );
    let s = path_text;
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        &s(&key),
    ])?;
    openssl(&[
        "req",
        "-new",
        "-key",
        &s(&key),
        "-subj",
        &format!("/O=agent-sandbox-bench/CN={CONTROLLER_USER}"),
        "-out",
        &s(&csr),
    ])?;
    // Extensions make it an X.509 v3 certificate; rustls refuses v1.
    let ext = dir.join("controller.ext");
    std::fs::write(
        &ext,
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
    )
    .with_context(|| format!("writing {}", ext.display()))?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        &s(&csr),
        "-CA",
        &s(&ca_crt),
        "-CAkey",
        &s(&ca_key),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &s(&ext),
        "-out",
        &s(&crt),
    ])?;
    Ok((key, crt))
}

fn openssl(args: &[&str]) -> anyhow::Result<()> {
    hostcmd::output("openssl", args)
        .context("giving the controller under test its own identity needs `openssl`")?;
    Ok(())
}

/// Binds [`CONTROLLER_USER`] to `cluster-admin` and applies the FlowSchema that isolates it: precedence 2
/// (only `exempt`, for `system:masters`, comes first) and priority level `exempt`, so it adds no queueing.
pub async fn ensure_flow_schema(client: &Client) -> anyhow::Result<()> {
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": CONTROLLER_USER},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": CONTROLLER_USER}],
    }))
    .context("building the ClusterRoleBinding")?;
    apply(client, &binding)
        .await
        .context("binding the controller's user to cluster-admin")?;
    let schema: FlowSchema = serde_json::from_value(json!({
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
        "kind": "FlowSchema",
        "metadata": {"name": CONTROLLER_USER},
        "spec": {
            "matchingPrecedence": 2,
            "priorityLevelConfiguration": {"name": "exempt"},
            "rules": [{
                "subjects": [{"kind": "User", "user": {"name": CONTROLLER_USER}}],
                "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"],
                                   "clusterScope": true, "namespaces": ["*"]}],
                "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
            }],
        },
    }))
    .context("building the FlowSchema")?;
    apply(client, &schema)
        .await
        .context("applying the bench FlowSchema")?;
    Ok(())
}

/// Server-side applies a cluster-scoped object named [`CONTROLLER_USER`] as the bench.
async fn apply<K>(client: &Client, object: &K) -> kube::Result<K>
where
    K: kube::Resource<Scope = kube::core::ClusterResourceScope, DynamicType = ()>
        + Clone
        + Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    Api::<K>::all(client.clone())
        .patch(
            CONTROLLER_USER,
            &PatchParams::apply("agent-sandbox-bench").force(),
            &Patch::Apply(object),
        )
        .await
}

/// Scrapes the API server's `/metrics`.
pub async fn scrape(client: &Client) -> anyhow::Result<Scrape> {
    let request = http::Request::get("/metrics")
        .body(Vec::new())
        .context("building the /metrics request")?;
    let text = client
        .request_text(request)
        .await
        .context("scraping the API server's /metrics")?;
    Ok(Scrape::parse(&text))
}

/// The API requests of one measured phase.
#[derive(Debug, Clone, Serialize)]
pub struct ApiUsage {
    /// Requests of the controller under test (its FlowSchema's dispatch count); None if it could not be
    /// isolated.
    pub controller_requests: Option<f64>,
    /// `controller_requests` divided by the objects the phase made Ready.
    pub controller_requests_per_object: Option<f64>,
    /// Where `controller_requests` comes from.
    pub source: &'static str,
    /// `apiserver_request_total` deltas of every client (the bench, the controller, the scheduler, kwok
    /// …) for the resources involved, keyed `VERB resource[/subresource]`.
    pub all_clients_by_verb_resource: BTreeMap<String, f64>,
}

impl ApiUsage {
    /// The difference between two API server scrapes, for `objects` objects.
    pub fn between(before: &Scrape, after: &Scrape, objects: usize, isolated: bool) -> Self {
        let dispatched = |s: &Scrape| {
            s.sum(
                "apiserver_flowcontrol_dispatched_requests_total",
                &[("flow_schema", CONTROLLER_USER)],
            )
        };
        let controller = isolated.then(|| dispatched(after) - dispatched(before));
        let group = |s: &Scrape| {
            let mut all = BTreeMap::new();
            for resource in RESOURCES {
                for (k, v) in s.grouped(
                    "apiserver_request_total",
                    &["verb", "resource", "subresource"],
                    &[("resource", resource)],
                ) {
                    let key = match k.split_once(' ') {
                        Some((verb, rest)) => format!("{verb} {}", rest.replace(' ', "/")),
                        None => k,
                    };
                    *all.entry(key).or_insert(0.0) += v;
                }
            }
            all
        };
        let (b, a) = (group(before), group(after));
        let deltas = a
            .into_iter()
            .map(|(k, v)| {
                let d = v - b.get(&k).copied().unwrap_or(0.0);
                (k, d)
            })
            .filter(|(_, d)| *d > 0.0)
            .collect();
        Self {
            controller_requests: controller,
            controller_requests_per_object: controller
                .filter(|_| objects > 0)
                .map(|c| crate::stats::round(c / objects as f64)),
            source: if isolated {
                "apiserver_flowcontrol_dispatched_requests_total{flow_schema=agent-sandbox-bench-controller}"
            } else {
                "unavailable (not the local cluster: the controller shares the admin identity)"
            },
            all_clients_by_verb_resource: deltas,
        }
    }
}
