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
    let mut docs = vec![
        KWOK_OPTIONS.to_string(),
        NODE_UP.to_string(),
        NODE_REFRESH.to_string(),
        POD_RUN.to_string(),
        POD_REMOVE.to_string(),
    ];
    for (phase, code, reason) in [("Succeeded", 0, "Completed"), ("Failed", 1, "Error")] {
        docs.push(pod_finish(phase, code, reason));
    }
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

const NODE_UP: &str = r#"apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: node-up
spec:
  resourceRef:
    apiGroup: v1
    kind: Node
  selector:
    matchExpressions:
    - key: .metadata.deletionTimestamp
      operator: DoesNotExist
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: NotIn
      values: ["True"]
  next:
    statusTemplate: |
      {{ $at := Now | Quote }}
      addresses:
      - type: InternalIP
        address: {{ NodeIP | Quote }}
      - type: Hostname
        address: {{ .metadata.name | Quote }}
      capacity:
        cpu: "32"
        memory: 256Gi
        pods: "110"
        ephemeral-storage: 1Ti
      allocatable:
        cpu: "32"
        memory: 256Gi
        pods: "110"
        ephemeral-storage: 1Ti
      conditions:
      - type: Ready
        status: "True"
        reason: KubeletReady
        message: fake node driven by kwok
        lastHeartbeatTime: {{ $at }}
        lastTransitionTime: {{ $at }}
      - type: MemoryPressure
        status: "False"
        reason: KubeletHasSufficientMemory
        lastHeartbeatTime: {{ $at }}
        lastTransitionTime: {{ $at }}
      - type: DiskPressure
        status: "False"
        reason: KubeletHasNoDiskPressure
        lastHeartbeatTime: {{ $at }}
        lastTransitionTime: {{ $at }}
      - type: PIDPressure
        status: "False"
        reason: KubeletHasSufficientPID
        lastHeartbeatTime: {{ $at }}
        lastTransitionTime: {{ $at }}
      - type: NetworkUnavailable
        status: "False"
        reason: RouteCreated
        lastHeartbeatTime: {{ $at }}
        lastTransitionTime: {{ $at }}
      daemonEndpoints:
        kubeletEndpoint:
          Port: 10250
      nodeInfo:
        architecture: amd64
        operatingSystem: linux
        kubeletVersion: fake
        kubeProxyVersion: fake
        containerRuntimeVersion: fake
      phase: Running
"#;

const NODE_REFRESH: &str = r#"apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: node-refresh
spec:
  resourceRef:
    apiGroup: v1
    kind: Node
  selector:
    matchExpressions:
    - key: .metadata.deletionTimestamp
      operator: DoesNotExist
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: In
      values: ["True"]
  delay:
    durationMilliseconds: 20000
    jitterDurationMilliseconds: 25000
  next:
    statusTemplate: |
      {{ $at := Now | Quote }}
      conditions:
      {{ range .status.conditions }}
      - type: {{ .type | Quote }}
        status: {{ .status | Quote }}
        reason: {{ .reason | Quote }}
        lastHeartbeatTime: {{ $at }}
        lastTransitionTime: {{ .lastTransitionTime | Quote }}
      {{ end }}
"#;

const POD_RUN: &str = r#"apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-run
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: .metadata.deletionTimestamp
      operator: DoesNotExist
    - key: .status.phase
      operator: In
      values: ["Pending"]
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: NotIn
      values: ["True"]
  next:
    statusTemplate: |
      {{ $at := Now | Quote }}
      phase: Running
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
"#;

const POD_REMOVE: &str = r#"apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-remove
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: .metadata.deletionTimestamp
      operator: Exists
  next:
    delete: true
"#;

fn pod_finish(phase: &str, exit_code: i32, reason: &str) -> String {
    format!(
        r#"apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-finish-{name}
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchAnnotations:
      {FINISH_ANNOTATION}: {phase}
    matchExpressions:
    - key: .metadata.deletionTimestamp
      operator: DoesNotExist
    - key: .status.phase
      operator: In
      values: ["Running"]
  next:
    statusTemplate: |
      {{{{ $at := Now | Quote }}}}
      phase: {phase}
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
"#,
        name = phase.to_lowercase(),
    )
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
