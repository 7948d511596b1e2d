//! What `cluster up` writes into the fresh cluster: kwok's stages, the fake nodes, the default StorageClass.

/// Annotation a test sets on a Running pod on a fake node to end it: value `Succeeded` or `Failed`.
pub const FINISH_ANNOTATION: &str = "agent-sandbox.test/finish";

/// kwok's configuration: its options ([`KWOK_OPTIONS`]) and how fake nodes and the pods bound to them
/// move through their lifecycle.
///
/// * node-up: a new fake node becomes Ready with capacity for 110 pods.
/// * node-refresh: Ready nodes refresh their condition timestamps every ~20 s (leases are kept by kwok).
/// * pod-run: a scheduled pod becomes Running and Ready at once, with a pod IP.
/// * pod-finish-succeeded / pod-finish-failed: a Running pod annotated with [`FINISH_ANNOTATION`]
///   ends with exit code 0 or 1.
/// * pod-remove: a pod being deleted is removed (its finalizers, if any, are respected).
pub fn kwok_config() -> String {
    let stages = [
        node_up(),
        node_refresh(),
        pod_run(),
        pod_remove(),
        pod_finish("pod-finish-succeeded", "Succeeded", 0, "Completed"),
        pod_finish("pod-finish-failed", "Failed", 1, "Error"),
    ];
    let mut docs = vec![KWOK_OPTIONS.to_string()];
    docs.extend(stages.iter().map(Stage::render));
    docs.join("---\n")
}

/// kwok's own options. It plays at most 4 pod stages at once by default, each an API write: with the
/// whole control plane on two cores that made only ~8–35 pods Running per second and bounded every
/// pool refill and `scale` run (docs/benchmarks.md). 32 lets the API server be the bound. A given
/// configuration is not defaulted field by field, so the other options are kwok's defaults, spelled out.
const KWOK_OPTIONS: &str = r#"apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokConfiguration
options:
  podPlayStageParallelism: 32
  nodePlayStageParallelism: 4
  nodeLeaseParallelism: 4
  podsOnNodeSyncParallelism: 1
  enableDebuggingHandlers: true
  enableContentionProfiling: false
  enableProfilingHandler: true
  enablePodsOnNodeSyncListPager: true
  enablePodsOnNodeSyncStreamWatch: false
"#;

/// A kwok Stage: the objects of `kind` its `selector` matches (after `delay`, if any) get `next`.
/// `selector` and `next` are YAML for the body of those keys, indented four spaces.
struct Stage<'a> {
    name: &'a str,
    kind: &'a str,
    selector: String,
    delay: Option<&'a str>,
    next: String,
}

impl Stage<'_> {
    fn render(&self) -> String {
        let delay = self.delay.unwrap_or_default();
        format!(
            "apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: {name}
spec:
  resourceRef:
    apiGroup: v1
    kind: {kind}
  selector:
{selector}{delay}  next:
{next}",
            name = self.name,
            kind = self.kind,
            selector = self.selector,
            next = self.next,
        )
    }
}

/// A `matchExpressions` selector body of `(key, operator, values)` terms; `values` is a YAML flow
/// list, or empty for operators that take none.
fn match_expressions(terms: &[(&str, &str, &str)]) -> String {
    let mut out = String::from("    matchExpressions:\n");
    for (key, operator, values) in terms {
        out.push_str(&format!("    - key: {key}\n      operator: {operator}\n"));
        if !values.is_empty() {
            out.push_str(&format!("      values: {values}\n"));
        }
    }
    out
}

/// The selector term "not being deleted".
const NOT_DELETED: (&str, &str, &str) = (".metadata.deletionTimestamp", "DoesNotExist", "");

/// The selector key of an object's Ready condition status.
const READY_STATUS: &str = r#"'.status.conditions.[] | select( .type == "Ready" ) | .status'"#;

/// A `statusTemplate` body: `template` (Go template lines, indented as the status' fields) after a
/// `$at` set to now.
fn status_template(template: &str) -> String {
    format!("    statusTemplate: |\n      {{{{ $at := Now | Quote }}}}\n{template}")
}

/// The conditions a fake node reports once up: type, status, reason.
const NODE_CONDITIONS: [(&str, &str, &str); 5] = [
    ("Ready", "True", "KubeletReady"),
    ("MemoryPressure", "False", "KubeletHasSufficientMemory"),
    ("DiskPressure", "False", "KubeletHasNoDiskPressure"),
    ("PIDPressure", "False", "KubeletHasSufficientPID"),
    ("NetworkUnavailable", "False", "RouteCreated"),
];

/// What a fake node offers, as both its capacity and what is allocatable.
const NODE_RESOURCES: &str = r#"        cpu: "32"
        memory: 256Gi
        pods: "110"
        ephemeral-storage: 1Ti
"#;

/// A new fake node becomes Ready with capacity for 110 pods.
fn node_up() -> Stage<'static> {
    let mut conditions = String::new();
    for (type_, status, reason) in NODE_CONDITIONS {
        conditions.push_str(&format!(
            "      - type: {type_}\n        status: \"{status}\"\n        reason: {reason}\n"
        ));
        if type_ == "Ready" {
            conditions.push_str("        message: fake node driven by kwok\n");
        }
        conditions.push_str(
            "        lastHeartbeatTime: {{ $at }}\n        lastTransitionTime: {{ $at }}\n",
        );
    }
    let status = format!(
        r#"      addresses:
      - type: InternalIP
        address: {{{{ NodeIP | Quote }}}}
      - type: Hostname
        address: {{{{ .metadata.name | Quote }}}}
      capacity:
{NODE_RESOURCES}      allocatable:
{NODE_RESOURCES}      conditions:
{conditions}      daemonEndpoints:
        kubeletEndpoint:
          Port: 10250
      nodeInfo:
        architecture: amd64
        operatingSystem: linux
        kubeletVersion: fake
        kubeProxyVersion: fake
        containerRuntimeVersion: fake
      phase: Running
"#
    );
    Stage {
        name: "node-up",
        kind: "Node",
        selector: match_expressions(&[NOT_DELETED, (READY_STATUS, "NotIn", r#"["True"]"#)]),
        delay: None,
        next: status_template(&status),
    }
}

/// Ready nodes refresh their condition timestamps every ~20 s.
fn node_refresh() -> Stage<'static> {
    Stage {
        name: "node-refresh",
        kind: "Node",
        selector: match_expressions(&[NOT_DELETED, (READY_STATUS, "In", r#"["True"]"#)]),
        delay: Some(
            "  delay:\n    durationMilliseconds: 20000\n    jitterDurationMilliseconds: 25000\n",
        ),
        next: status_template(
            r#"      conditions:
      {{ range .status.conditions }}
      - type: {{ .type | Quote }}
        status: {{ .status | Quote }}
        reason: {{ .reason | Quote }}
        lastHeartbeatTime: {{ $at }}
        lastTransitionTime: {{ .lastTransitionTime | Quote }}
      {{ end }}
"#,
        ),
    }
}

/// A scheduled pod becomes Running and Ready at once, with a pod IP.
fn pod_run() -> Stage<'static> {
    Stage {
        name: "pod-run",
        kind: "Pod",
        selector: match_expressions(&[
            NOT_DELETED,
            (".status.phase", "In", r#"["Pending"]"#),
            (READY_STATUS, "NotIn", r#"["True"]"#),
        ]),
        delay: None,
        next: status_template(
            r#"      phase: Running
      startTime: {{ $at }}
      hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
      podIP: {{ PodIPWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) | Quote }}
      conditions:
      {{ range (list "PodReadyToStartContainers" "Initialized" "ContainersReady" "Ready") }}
      - type: {{ . }}
        status: "True"
        lastTransitionTime: {{ $at }}
      {{ end }}
      {{ range .spec.readinessGates }}
      - type: {{ .conditionType | Quote }}
        status: "True"
        lastTransitionTime: {{ $at }}
      {{ end }}
      containerStatuses:
      {{ range .spec.containers }}
      - name: {{ .name | Quote }}
        image: {{ .image | Quote }}
        imageID: ""
        ready: true
        started: true
        restartCount: 0
        state:
          running:
            startedAt: {{ $at }}
      {{ end }}
      initContainerStatuses:
      {{ range .spec.initContainers }}
      - name: {{ .name | Quote }}
        image: {{ .image | Quote }}
        imageID: ""
        ready: true
        restartCount: 0
        state:
          terminated:
            exitCode: 0
            reason: Completed
            startedAt: {{ $at }}
            finishedAt: {{ $at }}
      {{ end }}
"#,
        ),
    }
}

/// A pod being deleted is removed (its finalizers, if any, are respected).
fn pod_remove() -> Stage<'static> {
    Stage {
        name: "pod-remove",
        kind: "Pod",
        selector: match_expressions(&[(".metadata.deletionTimestamp", "Exists", "")]),
        delay: None,
        next: "    delete: true\n".to_owned(),
    }
}

/// A Running pod annotated with [`FINISH_ANNOTATION`]`: <phase>` ends with `exit_code`.
fn pod_finish(name: &'static str, phase: &str, exit_code: i32, reason: &str) -> Stage<'static> {
    let selector = format!(
        "    matchAnnotations:\n      {FINISH_ANNOTATION}: {phase}\n{}",
        match_expressions(&[NOT_DELETED, (".status.phase", "In", r#"["Running"]"#)])
    );
    Stage {
        name,
        kind: "Pod",
        selector,
        delay: None,
        next: status_template(&format!(
            r#"      phase: {phase}
      conditions:
      {{{{ range (list "ContainersReady" "Ready") }}}}
      - type: {{{{ . }}}}
        status: "False"
        reason: PodCompleted
        lastTransitionTime: {{{{ $at }}}}
      {{{{ end }}}}
      containerStatuses:
      {{{{ range .spec.containers }}}}
      - name: {{{{ .name | Quote }}}}
        image: {{{{ .image | Quote }}}}
        imageID: ""
        ready: false
        started: false
        restartCount: 0
        state:
          terminated:
            exitCode: {exit_code}
            reason: {reason}
            startedAt: {{{{ $at }}}}
            finishedAt: {{{{ $at }}}}
      {{{{ end }}}}
"#
        )),
    }
}

/// `count` fake nodes for kwok to manage, plus the default StorageClass.
///
/// The StorageClass uses the controller manager's host-path provisioner (test-only, enabled by
/// `--enable-hostpath-provisioner`), so every claim of the default class is provisioned and bound
/// by the real PV controller with `Immediate` binding.
pub fn bootstrap(count: usize) -> String {
    let mut docs = vec![STORAGE_CLASS.to_string()];
    for i in 0..count {
        docs.push(format!(
            r#"apiVersion: v1
kind: Node
metadata:
  name: kwok-node-{i}
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/hostname: kwok-node-{i}
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
spec: {{}}
"#
        ));
    }
    docs.join("---\n")
}

const STORAGE_CLASS: &str = r#"apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: kubernetes.io/host-path
reclaimPolicy: Delete
volumeBindingMode: Immediate
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(text: &str) -> Vec<serde_yaml::Value> {
        text.split("---\n")
            .map(|doc| serde_yaml::from_str(doc).expect("valid YAML"))
            .collect()
    }

    #[test]
    fn kwok_config_is_valid_yaml_with_options_and_uniquely_named_stages() {
        let mut stages = docs(&kwok_config());
        let options = stages.remove(0);
        assert_eq!(options["kind"], "KwokConfiguration");
        assert_eq!(options["options"]["podPlayStageParallelism"], 32);
        let mut names: Vec<&str> = stages
            .iter()
            .map(|s| s["metadata"]["name"].as_str().expect("name"))
            .collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "node-refresh",
                "node-up",
                "pod-finish-failed",
                "pod-finish-succeeded",
                "pod-remove",
                "pod-run"
            ]
        );
        for stage in &stages {
            assert_eq!(stage["kind"], "Stage");
        }
    }

    #[test]
    fn finish_stages_match_the_annotation_and_set_the_exit_code() {
        let stages = docs(&kwok_config());
        let failed = stages
            .iter()
            .find(|s| s["metadata"]["name"] == "pod-finish-failed")
            .expect("pod-finish-failed");
        assert_eq!(
            failed["spec"]["selector"]["matchAnnotations"][FINISH_ANNOTATION],
            "Failed"
        );
        let template = failed["spec"]["next"]["statusTemplate"]
            .as_str()
            .expect("template");
        assert!(template.contains("phase: Failed"));
        assert!(template.contains("exitCode: 1"));
    }

    #[test]
    fn bootstrap_has_the_default_class_and_the_requested_nodes() {
        let docs = docs(&bootstrap(4));
        let nodes: Vec<_> = docs.iter().filter(|d| d["kind"] == "Node").collect();
        assert_eq!(nodes.len(), 4);
        assert!(
            nodes
                .iter()
                .all(|n| n["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake")
        );
        let class = docs
            .iter()
            .find(|d| d["kind"] == "StorageClass")
            .expect("StorageClass");
        assert_eq!(
            class["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"],
            "true"
        );
    }
}
