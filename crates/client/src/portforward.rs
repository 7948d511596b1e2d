//! The port-forward connection: a listener on 127.0.0.1 whose every accepted connection is bridged
//! to the router through its own Kubernetes port-forward stream (what `kubectl port-forward
//! svc/sandbox-router-svc` does, without kubectl).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Api;
use kube::api::ListParams;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::error::{Error, Result, chain};

/// The router's Service, as the SDKs and the install name it.
pub const ROUTER_SERVICE: &str = "sandbox-router-svc";
/// The router Service's port.
pub const ROUTER_SERVICE_PORT: i32 = 8080;

/// How long to wait before accepting again after the listener failed (e.g. out of file
/// descriptors), so a persistent failure does not spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// A running listener; dropping it stops accepting (bridged connections run until they close).
pub(crate) struct Tunnel {
    addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Tunnel {
    /// Checks that Service `sandbox-router-svc` in `namespace` has a Ready pod (so a missing or
    /// broken router is reported here, once, rather than as dropped connections), then listens.
    pub(crate) async fn open(kube: kube::Client, namespace: String) -> Result<Self> {
        let (pod, port) = router_pod(&kube, &namespace).await?;
        tracing::debug!(%namespace, %pod, port, "port-forwarding to the router");
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|err| Error::PortForward {
                message: format!("cannot listen on 127.0.0.1: {err}"),
            })?;
        let addr = listener.local_addr().map_err(|err| Error::PortForward {
            message: format!("the local listener has no address: {err}"),
        })?;
        let accept = tokio::spawn(accept(listener, kube, namespace));
        Ok(Self { addr, accept })
    }

    /// The local address to send requests to.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

async fn accept(listener: TcpListener, kube: kube::Client, namespace: String) {
    loop {
        match listener.accept().await {
            Ok((socket, _)) => {
                tokio::spawn(bridge(socket, kube.clone(), namespace.clone()));
            }
            Err(err) => {
                tracing::warn!(error = %err, "the port-forward listener cannot accept");
                tokio::time::sleep(ACCEPT_RETRY).await;
            }
        }
    }
}

/// Bridges one local connection to a Ready router pod, chosen anew for each connection so a
/// restarted router is picked up; a failure closes the local connection (the request then fails
/// with [`Error::Connection`]) and is logged.
async fn bridge(mut socket: TcpStream, kube: kube::Client, namespace: String) {
    if let Err(err) = forward(&mut socket, kube, &namespace).await {
        tracing::warn!(error = %err, "port-forward connection to the router failed");
    }
}

async fn forward(socket: &mut TcpStream, kube: kube::Client, namespace: &str) -> Result<()> {
    let (pod, port) = router_pod(&kube, namespace).await?;
    let failed = |what: &str, message: String| Error::PortForward {
        message: format!("{what} pod {namespace}/{pod} port {port}: {message}"),
    };
    let pods: Api<Pod> = Api::namespaced(kube, namespace);
    let mut forwarder = pods
        .portforward(&pod, &[port])
        .await
        .map_err(|err| failed("opening a stream to", chain(&err)))?;
    let mut upstream = forwarder
        .take_stream(port)
        .ok_or_else(|| failed("no stream to", "the port-forward has none".to_owned()))?;
    let copied = tokio::io::copy_bidirectional(socket, &mut upstream).await;
    drop(upstream);
    let joined = forwarder.join().await;
    copied.map_err(|err| failed("copying to", err.to_string()))?;
    joined.map_err(|err| failed("closing the stream to", chain(&err)))
}

/// A Ready pod behind Service `sandbox-router-svc` in `namespace`, and the container port its
/// service port 8080 targets.
async fn router_pod(kube: &kube::Client, namespace: &str) -> Result<(String, u16)> {
    let service_name = format!("Service {namespace}/{ROUTER_SERVICE}");
    let missing = |what: String| Error::PortForward { message: what };
    let service = Api::<Service>::namespaced(kube.clone(), namespace)
        .get_opt(ROUTER_SERVICE)
        .await
        .map_err(|err| Error::kube(format!("reading {service_name}"), &err))?
        .ok_or_else(|| {
            missing(format!(
                "{service_name} not found (is the router installed?)"
            ))
        })?;
    let spec = service.spec.unwrap_or_default();
    let service_port = spec
        .ports
        .iter()
        .flatten()
        .find(|p| p.port == ROUTER_SERVICE_PORT)
        .ok_or_else(|| missing(format!("{service_name} has no port {ROUTER_SERVICE_PORT}")))?;
    let selector = spec
        .selector
        .filter(|s| !s.is_empty())
        .ok_or_else(|| missing(format!("{service_name} selects no pods")))?;
    let selector: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let pods = Api::<Pod>::namespaced(kube.clone(), namespace)
        .list(&ListParams::default().labels(&selector.join(",")))
        .await
        .map_err(|err| Error::kube(format!("listing the pods of {service_name}"), &err))?;
    let pod = pods
        .items
        .iter()
        .find(|pod| is_ready(pod))
        .ok_or_else(|| missing(format!("{service_name} has no Ready pod")))?;
    let port = container_port(service_port, pod).ok_or_else(|| {
        missing(format!(
            "port {ROUTER_SERVICE_PORT} of {service_name} targets no port of its pod"
        ))
    })?;
    Ok((pod.metadata.name.clone().unwrap_or_default(), port))
}

/// Whether `pod` is Ready and not being deleted.
fn is_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The container port `service_port` targets in `pod`: its `targetPort` number, the container
/// port of that name, or (no `targetPort`) the service port itself, as Services define it.
fn container_port(service_port: &ServicePort, pod: &Pod) -> Option<u16> {
    let number = match &service_port.target_port {
        None => service_port.port,
        Some(IntOrString::Int(number)) => *number,
        Some(IntOrString::String(name)) => {
            pod.spec
                .as_ref()?
                .containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| p.name.as_deref() == Some(name.as_str()))?
                .container_port
        }
    };
    u16::try_from(number).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(ready: &str, ports: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "sandbox-router-abc"},
            "spec": {"containers": [{"name": "router", "ports": ports}]},
            "status": {"conditions": [{"type": "Ready", "status": ready}]},
        }))
        .unwrap()
    }

    fn service_port(target: Option<IntOrString>) -> ServicePort {
        ServicePort {
            port: 8080,
            target_port: target,
            ..ServicePort::default()
        }
    }

    #[test]
    fn named_target_ports_resolve_through_the_pods_container_ports() {
        let pod = pod(
            "True",
            json!([{"name": "metrics", "containerPort": 9090}, {"name": "http", "containerPort": 8081}]),
        );
        let named = service_port(Some(IntOrString::String("http".into())));
        assert_eq!(container_port(&named, &pod), Some(8081));
        let number = service_port(Some(IntOrString::Int(8443)));
        assert_eq!(container_port(&number, &pod), Some(8443));
        assert_eq!(container_port(&service_port(None), &pod), Some(8080));
        let unknown = service_port(Some(IntOrString::String("grpc".into())));
        assert_eq!(container_port(&unknown, &pod), None);
        let negative = service_port(Some(IntOrString::Int(-1)));
        assert_eq!(container_port(&negative, &pod), None);
    }

    #[test]
    fn only_ready_pods_that_are_not_terminating_are_used() {
        assert!(is_ready(&pod("True", json!([]))));
        assert!(!is_ready(&pod("False", json!([]))));
        let mut terminating = pod("True", json!([]));
        terminating.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        assert!(!is_ready(&terminating));
    }
}
