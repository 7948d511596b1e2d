//! The objects the scenarios create.

use serde_json::{Value, json};

/// The image of every benchmark pod (kwok never pulls it).
pub const IMAGE: &str = agent_sandbox_testkit::fixtures::IMAGE;

/// The busybox image `cargo xtask cluster up` imports into the real node's containerd.
pub const REAL_NODE_IMAGE: &str = "localhost/agent-sandbox/busybox:local";

/// A Sandbox without a pool: one container, no Service, no volumes.
pub fn sandbox(name: &str) -> Value {
    json!({
        "apiVersion": "agents.x-k8s.io/v1beta1",
        "kind": "Sandbox",
        "metadata": {"name": name},
        "spec": {"podTemplate": {
            "metadata": {"labels": {"app": "agent-sandbox-bench"}},
            "spec": {"automountServiceAccountToken": false,
                     "containers": [{"name": "agent", "image": IMAGE}]},
        }},
    })
}

/// A Sandbox whose Pod really runs on the local cluster's real node under `runtime_class` (`gvisor`
/// or `runc`; the RuntimeClass places it there): busybox sleeping, Ready when the process started.
pub fn real_sandbox(name: &str, runtime_class: &str) -> Value {
    let mut sandbox = sandbox(name);
    let spec = &mut sandbox["spec"]["podTemplate"]["spec"];
    spec["runtimeClassName"] = json!(runtime_class);
    spec["terminationGracePeriodSeconds"] = json!(1);
    spec["containers"] = json!([{"name": "agent", "image": REAL_NODE_IMAGE,
                                 "imagePullPolicy": "Never", "command": ["sleep", "3600"]}]);
    sandbox
}
