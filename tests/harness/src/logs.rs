//! Diagnostics printed when a test fails: the namespace's events and pods, the components' log tails.

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};

use crate::cluster;
use crate::workspace::workspace_root;

/// Prints the last `lines` lines of every component log of the local cluster (if that is the one in use).
pub fn dump_components(lines: usize) {
    if !cluster::is_local_cluster() {
        return;
    }
    let dir = workspace_root().join("target").join("cluster").join("logs");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("[testkit] no component logs in {}", dir.display());
        return;
    };
    let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        eprintln!("===== last {lines} lines of {} =====", path.display());
        for line in &all[all.len().saturating_sub(lines)..] {
            eprintln!("{line}");
        }
    }
}

/// Prints the events and pod phases of a namespace.
pub async fn dump_namespace(client: &Client, namespace: &str) {
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    match events.list(&ListParams::default()).await {
        Ok(list) => {
            eprintln!("===== events in {namespace} =====");
            for e in list {
                eprintln!(
                    "{} {}/{}: {} {}",
                    e.type_.clone().unwrap_or_default(),
                    e.involved_object.kind.clone().unwrap_or_default(),
                    e.involved_object.name.clone().unwrap_or_default(),
                    e.reason.clone().unwrap_or_default(),
                    e.message.clone().unwrap_or_default()
                );
            }
        }
        Err(err) => eprintln!("[testkit] could not list events in {namespace}: {err}"),
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    if let Ok(list) = pods.list(&ListParams::default()).await {
        eprintln!("===== pods in {namespace} =====");
        for p in list {
            let phase = p.status.as_ref().and_then(|s| s.phase.clone());
            let node = p.spec.as_ref().and_then(|s| s.node_name.clone());
            eprintln!("{} phase={phase:?} node={node:?}", p.name_any());
        }
    }
}
