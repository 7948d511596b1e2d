//! The Helm chart (deploy/helm/agent-sandbox) against the kustomize install, which is the source of
//! truth: with default values the chart renders the objects `kubectl apply -k deploy/` applies, object
//! for object, and its CRDs are the generated ones. Then its own checks: `helm lint`, the schema
//! rejecting a misspelled value, and the optional parts. Nothing here needs a cluster: `helm template`,
//! `helm lint` and `kubectl kustomize` run offline.
//!
//! helm is the local cluster's (a program of the same multi-call binary as kubectl, next to it); a
//! missing helm fails every test that needs it, naming where it was looked for.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use agent_sandbox_testkit::{helm, kubectl, workspace_root};
use anyhow::{Context, bail, ensure};
use serde::Deserialize;
use serde_json::Value;

/// The chart, relative to the workspace root.
const CHART: &str = "deploy/helm/agent-sandbox";

/// The labels Helm adds to an object's metadata on top of kustomize's; they carry the release and the
/// chart's version, so they are the one difference the comparison allows.
const HELM_LABELS: [&str; 4] = [
    "helm.sh/chart",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
];

/// Kinds only the chart has (its additions); the comparison with kustomize leaves them out.
const HELM_ONLY_KINDS: [&str; 2] = ["PodDisruptionBudget", "ServiceMonitor"];

/// Values that make the chart's containers what deploy/kustomization.yaml makes them: the `latest`
/// tags it sets, and no imagePullPolicy (its Deployments have none).
const AS_KUSTOMIZE: [&str; 4] = [
    "controller.image.tag=latest",
    "router.image.tag=latest",
    "controller.image.pullPolicy=",
    "router.image.pullPolicy=",
];

/// `helm template` arguments rendering the chart with `values` (each a `--set`), CRDs included or not.
fn template_args<'a>(values: &[&'a str], crds: bool) -> Vec<&'a str> {
    let mut args = vec!["template", "agent-sandbox", CHART];
    if crds {
        args.push("--include-crds");
    }
    for value in values {
        args.extend(["--set", value]);
    }
    args
}

/// The objects the chart renders with `values`.
async fn chart(values: &[&str], crds: bool) -> anyhow::Result<Vec<Value>> {
    documents(&helm::ok(&template_args(values, crds)).await?)
}

/// The objects `kubectl kustomize deploy/` renders (what `kubectl apply -k deploy/` applies).
async fn kustomize() -> anyhow::Result<Vec<Value>> {
    let path = workspace_root().join("deploy");
    let output = kubectl::output(&["kustomize", &path.to_string_lossy()]).await?;
    ensure!(
        output.status.success(),
        "kubectl kustomize deploy failed: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    documents(&String::from_utf8(output.stdout)?)
}

/// Every non-empty document of a YAML stream.
fn documents(text: &str) -> anyhow::Result<Vec<Value>> {
    let mut objects = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value = Value::deserialize(document).context("a rendered document is not YAML")?;
        if !value.is_null() {
            objects.push(value);
        }
    }
    Ok(objects)
}

/// The objects of a manifest file of the repository.
fn manifest(path: &str) -> anyhow::Result<Vec<Value>> {
    let path = workspace_root().join(path);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    documents(&text)
}

/// `Kind namespace/name` (`Kind name` for cluster-scoped objects): how a message names an object.
fn key(object: &Value) -> String {
    let kind = object["kind"].as_str().unwrap_or_default();
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    match object["metadata"]["namespace"].as_str() {
        Some(namespace) => format!("{kind} {namespace}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// The objects by [`key`], failing on a key rendered twice.
fn by_key(objects: Vec<Value>, what: &str) -> anyhow::Result<BTreeMap<String, Value>> {
    let mut map = BTreeMap::new();
    for object in objects {
        let key = key(&object);
        ensure!(
            map.insert(key.clone(), object).is_none(),
            "{what} renders {key} twice"
        );
    }
    Ok(map)
}

/// Removes Helm's labels from every `labels` map in `value` (object metadata and pod templates;
/// selectors are `matchLabels` or `selector` and keep them, so a Helm label there is a difference).
fn without_helm_labels(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (field, inner) in map.iter_mut() {
                if field == "labels"
                    && let Some(labels) = inner.as_object_mut()
                {
                    for label in HELM_LABELS {
                        labels.remove(label);
                    }
                }
                without_helm_labels(inner);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(without_helm_labels),
        _ => {}
    }
}

/// The first JSON path (`.spec.template.spec.containers[0].args[3]`) where `ours` and `theirs`
/// differ, with both values there; None when they are equal.
fn first_difference(ours: &Value, theirs: &Value, path: &str) -> Option<String> {
    let shown = |value: Option<&Value>| value.map_or_else(|| "absent".to_owned(), Value::to_string);
    match (ours, theirs) {
        (Value::Object(a), Value::Object(b)) => {
            let fields: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            fields.into_iter().find_map(|field| {
                // Label keys hold dots and slashes: quote them so the path stays readable.
                let here = if field.contains(['.', '/']) {
                    format!("{path}[{field:?}]")
                } else {
                    format!("{path}.{field}")
                };
                match (a.get(field), b.get(field)) {
                    (Some(x), Some(y)) => first_difference(x, y, &here),
                    (x, y) => Some(format!(
                        "{here}: chart {}, kustomize {}",
                        shown(x),
                        shown(y)
                    )),
                }
            })
        }
        (Value::Array(a), Value::Array(b)) => (0..a.len().max(b.len())).find_map(|i| {
            let here = format!("{path}[{i}]");
            match (a.get(i), b.get(i)) {
                (Some(x), Some(y)) => first_difference(x, y, &here),
                (x, y) => Some(format!(
                    "{here}: chart {}, kustomize {}",
                    shown(x),
                    shown(y)
                )),
            }
        }),
        // kustomize re-serialises the CRDs and writes `minimum: 0.0` as `0`, Helm passes crds/
        // through as they are: one number to the API server.
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => None,
        _ if ours == theirs => None,
        _ => Some(format!(
            "{}: chart {ours}, kustomize {theirs}",
            if path.is_empty() { "." } else { path }
        )),
    }
}

/// Asserts that `ours` (rendered by the chart) equals `theirs` (kustomize's) object for object, Helm's
/// labels aside.
fn assert_same_objects(ours: Vec<Value>, theirs: Vec<Value>) -> anyhow::Result<()> {
    let ours = by_key(
        ours.into_iter()
            .filter(|o| !HELM_ONLY_KINDS.contains(&o["kind"].as_str().unwrap_or_default()))
            .map(|mut o| {
                without_helm_labels(&mut o);
                o
            })
            .collect(),
        "the chart",
    )?;
    let theirs = by_key(theirs, "kustomize")?;
    let only_ours: Vec<&String> = ours.keys().filter(|k| !theirs.contains_key(*k)).collect();
    let only_theirs: Vec<&String> = theirs.keys().filter(|k| !ours.contains_key(*k)).collect();
    ensure!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "the chart renders {only_ours:?} that kustomize does not, and not {only_theirs:?} that it does"
    );
    for (key, object) in &ours {
        if let Some(difference) = first_difference(object, &theirs[key], "") {
            bail!("{key} differs from kustomize's at {difference}");
        }
    }
    Ok(())
}

/// The object of `kind` and `name` among `objects`.
fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> anyhow::Result<&'a Value> {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .with_context(|| format!("no {kind} {name} rendered"))
}

/// Whether `objects` hold a `kind` named `name`.
fn has(objects: &[Value], kind: &str, name: &str) -> bool {
    find(objects, kind, name).is_ok()
}

/// The first container's args of Deployment `name`.
fn args(objects: &[Value], name: &str) -> anyhow::Result<Vec<String>> {
    let deployment = find(objects, "Deployment", name)?;
    let args = &deployment["spec"]["template"]["spec"]["containers"][0]["args"];
    Ok(args
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect())
}

/// Whether every label of `selector` is among `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// The `*.yaml` files of `dir` by name.
fn yaml_files(dir: &Path) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let bytes =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            files.insert(name, bytes);
        }
    }
    Ok(files)
}

#[tokio::test]
async fn the_chart_renders_the_kustomize_install_object_for_object() -> anyhow::Result<()> {
    let ours = chart(&AS_KUSTOMIZE, true).await?;
    assert_same_objects(ours, kustomize().await?)
}

/// Helm installs crds/ verbatim, so they must be the files `cargo xtask crdgen` writes to deploy/crds
/// (it writes the chart's copy too, and `--check` checks it).
#[test]
fn the_chart_crds_are_the_generated_ones() -> anyhow::Result<()> {
    let generated = yaml_files(&workspace_root().join("deploy/crds"))?;
    let charted = yaml_files(&workspace_root().join(CHART).join("crds"))?;
    ensure!(!generated.is_empty(), "deploy/crds holds no CRD");
    ensure!(
        charted.keys().eq(generated.keys()),
        "{CHART}/crds holds {:?}, deploy/crds {:?}; run `cargo xtask crdgen`",
        charted.keys().collect::<Vec<_>>(),
        generated.keys().collect::<Vec<_>>()
    );
    for (name, bytes) in &generated {
        ensure!(
            charted[name] == *bytes,
            "{CHART}/crds/{name} differs from deploy/crds/{name}; run `cargo xtask crdgen`"
        );
    }
    Ok(())
}

#[tokio::test]
async fn helm_lint_passes() -> anyhow::Result<()> {
    helm::ok(&["lint", "--strict", CHART]).await?;
    // And with every optional part on, so their templates are linted too.
    helm::ok(&[
        "lint",
        "--strict",
        CHART,
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "router.auth=tokenreview",
        "--set",
        "router.authAudiences={sandbox-router}",
    ])
    .await
    .map(drop)
}

#[tokio::test]
async fn a_misspelled_value_is_rejected_by_the_schema() -> anyhow::Result<()> {
    for (value, named) in [
        ("controler.replicas=3", "controler"),
        ("controller.replica=3", "replica"),
        ("router.podSecurityContext.runAsUsr=1", "runAsUsr"),
        ("router.auth=tokenreviews", "auth"),
    ] {
        let output = helm::output(&template_args(&[value], false)).await?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        ensure!(
            !output.status.success(),
            "--set {value} rendered instead of failing"
        );
        ensure!(
            stderr.contains(named) && stderr.to_lowercase().contains("schema"),
            "--set {value} failed without a schema error naming {named:?}: {}",
            stderr.trim()
        );
    }
    Ok(())
}

#[tokio::test]
async fn optional_parts_render_when_enabled() -> anyhow::Result<()> {
    // The ServiceMonitor selects the metrics Service by its labels and scrapes its port.
    let objects = chart(&["metrics.serviceMonitor.enabled=true"], false).await?;
    let monitor = find(&objects, "ServiceMonitor", "agent-sandbox-controller")?;
    let service = find(&objects, "Service", "agent-sandbox-controller-metrics")?;
    ensure!(
        selects(
            &monitor["spec"]["selector"]["matchLabels"],
            &service["metadata"]["labels"]
        ),
        "the ServiceMonitor's selector {} does not select the metrics Service's labels {}",
        monitor["spec"]["selector"],
        service["metadata"]["labels"]
    );
    let router = find(&objects, "Service", "sandbox-router-svc")?;
    ensure!(
        !selects(
            &monitor["spec"]["selector"]["matchLabels"],
            &router["metadata"]["labels"]
        ),
        "the ServiceMonitor selects the router's Service too"
    );
    ensure!(
        monitor["spec"]["namespaceSelector"]["matchNames"]
            == serde_json::json!([service["metadata"]["namespace"]])
            && monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"],
        "the ServiceMonitor looks in {} at port {}, the Service is in {} with port {}",
        monitor["spec"]["namespaceSelector"],
        monitor["spec"]["endpoints"][0]["port"],
        service["metadata"]["namespace"],
        service["spec"]["ports"][0]["name"]
    );

    // TokenReview authentication: the flag, and kustomize's optional RBAC file as it is.
    let objects = chart(&["router.auth=tokenreview"], false).await?;
    let router_args = args(&objects, "sandbox-router")?;
    ensure!(
        router_args.contains(&"--auth=tokenreview".to_owned()),
        "router.auth=tokenreview starts the router with {router_args:?}"
    );
    let tokenreview: Vec<Value> = objects
        .into_iter()
        .filter(|o| {
            o["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.ends_with("-tokenreview"))
        })
        .collect();
    assert_same_objects(
        tokenreview,
        manifest("deploy/router/rbac-tokenreview.yaml")?,
    )?;

    // Without the router: nothing of it, and everything else as before.
    let default = chart(&[], false).await?;
    let is_router = |o: &Value| o["metadata"]["labels"]["app.kubernetes.io/component"] == "router";
    let without = chart(&["router.enabled=false"], false).await?;
    let left: Vec<String> = without.iter().filter(|o| is_router(o)).map(key).collect();
    ensure!(
        left.is_empty(),
        "router.enabled=false still renders {left:?}"
    );
    let expected: Vec<String> = default.iter().filter(|o| !is_router(o)).map(key).collect();
    let got: Vec<String> = without.iter().map(key).collect();
    ensure!(
        got == expected,
        "router.enabled=false renders {got:?}, expected {expected:?}"
    );

    // The Sandbox controller alone: the flag says so, and its extensions ClusterRole is gone.
    let objects = chart(&["controller.extensions=false"], false).await?;
    let controller_args = args(&objects, "agent-sandbox-controller")?;
    ensure!(
        controller_args.contains(&"--extensions=false".to_owned())
            && !controller_args.contains(&"--extensions=true".to_owned()),
        "controller.extensions=false starts the controller with {controller_args:?}"
    );
    for kind in ["ClusterRole", "ClusterRoleBinding"] {
        ensure!(
            !has(&objects, kind, "agent-sandbox-controller-extensions"),
            "controller.extensions=false still renders {kind} agent-sandbox-controller-extensions"
        );
    }
    Ok(())
}

/// The Helm additions on by default: one PodDisruptionBudget per Deployment, selecting exactly its
/// pods, gone with a single replica (where it would block every drain).
#[tokio::test]
async fn the_disruption_budgets_select_each_deployments_pods() -> anyhow::Result<()> {
    let objects = chart(&[], false).await?;
    for (budget, deployment) in [
        ("agent-sandbox-controller", "agent-sandbox-controller"),
        ("sandbox-router", "sandbox-router"),
    ] {
        let budget = find(&objects, "PodDisruptionBudget", budget)?;
        let deployment = find(&objects, "Deployment", deployment)?;
        ensure!(
            budget["spec"]["selector"] == deployment["spec"]["selector"]
                && budget["spec"]["minAvailable"] == 1,
            "{} ({}) does not keep one pod of {} ({})",
            key(budget),
            budget["spec"],
            key(deployment),
            deployment["spec"]["selector"]
        );
    }
    let objects = chart(&["controller.replicas=1", "router.replicas=1"], false).await?;
    let budgets: Vec<String> = objects
        .iter()
        .filter(|o| o["kind"] == "PodDisruptionBudget")
        .map(key)
        .collect();
    ensure!(
        budgets.is_empty(),
        "one replica each still renders {budgets:?}"
    );
    Ok(())
}

/// Every namespace `value` names: `namespace` fields (metadata, subjects) and ServiceMonitor
/// `matchNames`.
fn namespaces_named(value: &Value, into: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (field, inner) in map {
                match (field.as_str(), inner) {
                    ("namespace", Value::String(namespace)) => {
                        into.insert(namespace.clone());
                    }
                    ("matchNames", Value::Array(names)) => {
                        into.extend(names.iter().filter_map(|n| n.as_str().map(str::to_owned)));
                    }
                    _ => namespaces_named(inner, into),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| namespaces_named(i, into)),
        _ => {}
    }
}

/// `namespace.name` moves every namespaced object and every RBAC or APF subject; the release's own
/// namespace changes nothing.
#[tokio::test]
async fn every_namespaced_object_and_subject_follows_namespace_name() -> anyhow::Result<()> {
    let mut args = template_args(
        &[
            "namespace.name=sandboxes",
            "metrics.serviceMonitor.enabled=true",
        ],
        false,
    );
    args.extend(["--namespace", "elsewhere"]);
    let objects = documents(&helm::ok(&args).await?)?;
    let mut namespaces = BTreeSet::new();
    objects
        .iter()
        .for_each(|o| namespaces_named(o, &mut namespaces));
    ensure!(
        namespaces.iter().eq(["sandboxes"].iter()),
        "namespace.name=sandboxes renders namespaces {namespaces:?}"
    );
    ensure!(
        has(&objects, "Namespace", "sandboxes"),
        "namespace.name=sandboxes renders no Namespace sandboxes"
    );
    let objects = chart(&["namespace.create=false"], false).await?;
    ensure!(
        !objects.iter().any(|o| o["kind"] == "Namespace"),
        "namespace.create=false still renders a Namespace"
    );
    Ok(())
}

/// Without leader election two controllers would reconcile the same objects: one replica only, and no
/// leader-election RBAC.
#[tokio::test]
async fn leader_election_off_allows_one_replica_only() -> anyhow::Result<()> {
    let output = helm::output(&template_args(&["controller.leaderElect=false"], false)).await?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        !output.status.success() && stderr.contains("controller.leaderElect"),
        "two replicas without leader election: exit {}, stderr {}",
        output.status,
        stderr.trim()
    );
    let objects = chart(
        &["controller.leaderElect=false", "controller.replicas=1"],
        false,
    )
    .await?;
    let controller_args = args(&objects, "agent-sandbox-controller")?;
    ensure!(
        controller_args.contains(&"--leader-elect=false".to_owned()),
        "leaderElect=false starts the controller with {controller_args:?}"
    );
    ensure!(
        !has(&objects, "Role", "agent-sandbox-controller-leader-election"),
        "leaderElect=false still renders the leader-election Role"
    );
    Ok(())
}
