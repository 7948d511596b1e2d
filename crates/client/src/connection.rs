//! How requests reach a sandbox: through a router (at a URL, or through a port-forward to the one
//! in the cluster) with `X-Sandbox-*` headers naming the sandbox, or straight to its pod IP.

use std::net::IpAddr;

use hyper::Uri;
use tokio::sync::OnceCell;
use tonic::transport::{Channel, Endpoint};

use crate::error::{Error, Result};
use crate::http::{self, HttpClient, Route};
use crate::portforward::Tunnel;

/// The runtime's legacy python-runtime API (`/execute`, `/exists/…`).
pub const LEGACY_PORT: u16 = 8888;
/// The runtime's sandboxd files REST API (`/v1/files/…`).
pub const REST_PORT: u16 = 8080;
/// The runtime's `process.v1.ProcessService` gRPC service.
pub const GRPC_PORT: u16 = 9090;

/// Where the install puts the router (the Python SDK's default `router_namespace`).
pub const ROUTER_NAMESPACE: &str = "agent-sandbox-system";

/// The router's request headers.
pub mod headers {
    /// The Sandbox's name.
    pub const SANDBOX_ID: &str = "X-Sandbox-ID";
    /// The Sandbox's namespace.
    pub const SANDBOX_NAMESPACE: &str = "X-Sandbox-Namespace";
    /// The port in the Sandbox's pod.
    pub const SANDBOX_PORT: &str = "X-Sandbox-Port";
}

/// How a [`SandboxClient`](crate::SandboxClient) reaches its sandboxes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Connection {
    /// A router at `url` (`http://host:port`, no path): an ingress, a port-forward you keep open,
    /// the Service's cluster DNS name from inside the cluster. The Python SDK's
    /// `SandboxDirectConnectionConfig(api_url=…)`. TLS is not supported: terminate it in front.
    Router {
        /// The router's base URL.
        url: String,
    },
    /// A port-forward through the Kubernetes API to a Ready pod of Service `sandbox-router-svc` in
    /// `namespace`, opened when first needed: a local listener on 127.0.0.1 whose every connection
    /// is bridged over its own port-forward stream (no kubectl involved). The Python SDK's default,
    /// `SandboxLocalTunnelConnectionConfig`. Needs `get` on services, `list` on pods and `create`
    /// on `pods/portforward` in that namespace.
    PortForward {
        /// Namespace of the router's Service.
        namespace: String,
    },
    /// Straight to the sandbox's pod IP (ports 8888, 8080 and 9090), without a router: for
    /// clients that route to pod IPs, such as a pod in the cluster the template's NetworkPolicy
    /// admits. The Python SDK's `SandboxInClusterConnectionConfig` /
    /// `SandboxdInClusterConnectionConfig(mode="in-cluster-pod-ip")`.
    Direct,
}

impl Connection {
    /// A port-forward to the router in `agent-sandbox-system`.
    pub fn port_forward() -> Self {
        Connection::PortForward {
            namespace: ROUTER_NAMESPACE.to_owned(),
        }
    }
}

/// The port-forward to the router in `agent-sandbox-system`, as the Python SDK defaults to.
impl Default for Connection {
    fn default() -> Self {
        Self::port_forward()
    }
}

/// Which sandbox a request is for.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Target<'a> {
    /// Namespace of the Sandbox.
    pub namespace: &'a str,
    /// Name of the Sandbox.
    pub name: &'a str,
    /// The pod IP to use for a direct connection.
    pub pod_ip: Option<&'a str>,
}

/// The route through a router at `base` to `port` of `target`'s pod.
pub(crate) fn router_route(base: &str, target: Target<'_>, port: u16) -> Route {
    Route {
        base: base.to_owned(),
        headers: vec![
            (headers::SANDBOX_ID, target.name.to_owned()),
            (headers::SANDBOX_NAMESPACE, target.namespace.to_owned()),
            (headers::SANDBOX_PORT, port.to_string()),
        ],
    }
}

/// The route straight to `port` of `target`'s pod IP.
pub(crate) fn direct_route(target: Target<'_>, port: u16) -> Result<Route> {
    let not_ready = |message: String| Error::NotReady {
        namespace: target.namespace.to_owned(),
        name: target.name.to_owned(),
        message,
    };
    let ip = target
        .pod_ip
        .ok_or_else(|| not_ready("it has no pod IP (suspended, or not started)".to_owned()))?;
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| not_ready(format!("its pod IP {ip:?} is not an IP address")))?;
    let base = match ip {
        IpAddr::V4(v4) => format!("http://{v4}:{port}"),
        IpAddr::V6(v6) => format!("http://[{v6}]:{port}"),
    };
    Ok(Route {
        base,
        headers: Vec::new(),
    })
}

/// The pod IP to connect to: the first IPv4 address, else the first IP address (as the Python SDK
/// chooses in dual-stack clusters).
pub(crate) fn select_pod_ip(ips: &[String]) -> Option<String> {
    let parsed: Vec<IpAddr> = ips.iter().filter_map(|ip| ip.parse().ok()).collect();
    parsed
        .iter()
        .find(|ip| ip.is_ipv4())
        .or_else(|| parsed.first())
        .map(IpAddr::to_string)
}

/// A router URL as the base of requests: `http://authority`, refusing what this client cannot
/// honour (another scheme, a path prefix, which gRPC cannot carry, or a query).
pub(crate) fn router_base(url: &str) -> Result<String> {
    let invalid = |why: &str| Error::InvalidArgument(format!("router URL {url:?}: {why}"));
    let uri: Uri = url.parse().map_err(|_| invalid("not a URL"))?;
    if uri.scheme_str() != Some("http") {
        return Err(invalid(
            "only http:// is supported (terminate TLS in front of the client)",
        ));
    }
    let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(invalid("a path or query cannot be routed"));
    }
    Ok(format!("http://{authority}"))
}

/// The router as resolved once: its base URL, one gRPC channel to it, and the port-forward that
/// keeps it reachable (if that is how it is reached).
struct RouterEndpoint {
    base: String,
    grpc: Channel,
    /// Kept for as long as the client lives; dropping it stops accepting connections.
    _tunnel: Option<Tunnel>,
}

/// What every request goes through: the Kubernetes client, the connection mode, its lazily opened
/// router endpoint and one pooled HTTP client; shared by a client and its sandbox handles.
pub(crate) struct Transport {
    kube: kube::Client,
    connection: Connection,
    /// `None` for direct connections.
    router: OnceCell<Option<RouterEndpoint>>,
    http: HttpClient,
}

impl Transport {
    /// A transport for `connection`; nothing is opened until the first request.
    pub(crate) fn new(kube: kube::Client, connection: Connection) -> Self {
        Self {
            kube,
            connection,
            router: OnceCell::new(),
            http: http::client(),
        }
    }

    /// The Kubernetes client.
    pub(crate) fn kube(&self) -> &kube::Client {
        &self.kube
    }

    /// The pooled HTTP client.
    pub(crate) fn http(&self) -> &HttpClient {
        &self.http
    }

    /// The router endpoint, opened on first use; `None` for direct connections.
    async fn router(&self) -> Result<Option<&RouterEndpoint>> {
        let open = || async {
            let (base, tunnel) = match &self.connection {
                Connection::Direct => return Ok(None),
                Connection::Router { url } => (router_base(url)?, None),
                Connection::PortForward { namespace } => {
                    let tunnel = Tunnel::open(self.kube.clone(), namespace.clone()).await?;
                    (format!("http://{}", tunnel.addr()), Some(tunnel))
                }
            };
            Ok::<_, Error>(Some(RouterEndpoint {
                grpc: lazy_channel(&base)?,
                base,
                _tunnel: tunnel,
            }))
        };
        Ok(self.router.get_or_try_init(open).await?.as_ref())
    }

    /// Where a request to `port` of `target` goes.
    pub(crate) async fn route(&self, target: Target<'_>, port: u16) -> Result<Route> {
        match self.router().await? {
            Some(router) => Ok(router_route(&router.base, target, port)),
            None => direct_route(target, port),
        }
    }

    /// A gRPC channel to `target`'s process service and the headers its requests carry.
    pub(crate) async fn grpc(&self, target: Target<'_>) -> Result<(Channel, Route)> {
        match self.router().await? {
            Some(router) => Ok((
                router.grpc.clone(),
                router_route(&router.base, target, GRPC_PORT),
            )),
            None => {
                let route = direct_route(target, GRPC_PORT)?;
                Ok((lazy_channel(&route.base)?, route))
            }
        }
    }
}

/// A gRPC channel to `base` (prior-knowledge HTTP/2, what the router passes through), connected
/// on first use.
fn lazy_channel(base: &str) -> Result<Channel> {
    Endpoint::from_shared(base.to_owned())
        .map(|endpoint| endpoint.connect_lazy())
        .map_err(|err| Error::InvalidArgument(format!("gRPC endpoint {base:?}: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGET: Target<'static> = Target {
        namespace: "agents",
        name: "python-pool-x7k2q",
        pod_ip: Some("10.88.0.5"),
    };

    #[test]
    fn router_routes_name_the_sandbox_in_headers() {
        assert_eq!(
            router_route("http://127.0.0.1:28080", TARGET, REST_PORT),
            Route {
                base: "http://127.0.0.1:28080".into(),
                headers: vec![
                    ("X-Sandbox-ID", "python-pool-x7k2q".into()),
                    ("X-Sandbox-Namespace", "agents".into()),
                    ("X-Sandbox-Port", "8080".into()),
                ],
            }
        );
    }

    #[test]
    fn direct_routes_go_to_the_pod_ip_without_headers() {
        let route = direct_route(TARGET, GRPC_PORT).unwrap();
        assert_eq!(route.base, "http://10.88.0.5:9090");
        assert!(route.headers.is_empty());
        let v6 = Target {
            pod_ip: Some("fd00::5"),
            ..TARGET
        };
        assert_eq!(
            direct_route(v6, LEGACY_PORT).unwrap().base,
            "http://[fd00::5]:8888"
        );
        for pod_ip in [None, Some("not-an-ip")] {
            let err = direct_route(Target { pod_ip, ..TARGET }, LEGACY_PORT).unwrap_err();
            assert!(matches!(err, Error::NotReady { .. }), "{err}");
        }
    }

    #[test]
    fn pod_ips_prefer_ipv4() {
        let ips = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            select_pod_ip(&ips(&["fd00::5", "10.88.0.5"])).as_deref(),
            Some("10.88.0.5")
        );
        assert_eq!(
            select_pod_ip(&ips(&["junk", "fd00::5"])).as_deref(),
            Some("fd00::5")
        );
        assert_eq!(select_pod_ip(&ips(&[])), None);
    }

    #[test]
    fn router_urls_are_plain_http_bases() {
        assert_eq!(
            router_base("http://127.0.0.1:28080/").unwrap(),
            "http://127.0.0.1:28080"
        );
        assert_eq!(
            router_base("http://sandbox-router-svc.agent-sandbox-system:8080").unwrap(),
            "http://sandbox-router-svc.agent-sandbox-system:8080"
        );
        for url in [
            "https://router.example",
            "http://router.example/sandboxes",
            "http://router.example/?a=b",
            "router.example:8080",
            "",
        ] {
            let err = router_base(url).unwrap_err();
            assert!(matches!(err, Error::InvalidArgument(_)), "{url}: {err}");
        }
    }

    #[test]
    fn the_default_connection_is_the_sdks_port_forward() {
        assert_eq!(
            Connection::default(),
            Connection::PortForward {
                namespace: "agent-sandbox-system".into()
            }
        );
    }
}
