//! The request contract: which Sandbox, port and pod a request is for, read from `X-Sandbox-*`
//! headers. Pure: no I/O, no clock.

use std::net::IpAddr;
use std::time::Duration;

use agent_sandbox_api::validate::is_dns_label;
use hyper::HeaderMap;

/// Sandbox name (required; a DNS-1123 label).
pub const SANDBOX_ID: &str = "x-sandbox-id";
/// Sandbox namespace (default [`DEFAULT_NAMESPACE`]).
pub const SANDBOX_NAMESPACE: &str = "x-sandbox-namespace";
/// Port in the pod (default [`DEFAULT_PORT`]).
pub const SANDBOX_PORT: &str = "x-sandbox-port";
/// The pod IP the client believes the Sandbox has; only honoured when it is one.
pub const SANDBOX_POD_IP: &str = "x-sandbox-pod-ip";
/// The Sandbox's UID: the request is only forwarded if the named Sandbox has it.
pub const SANDBOX_UID: &str = "x-sandbox-uid";
/// Seconds to wait for the sandbox's response, capped by `--proxy-timeout`.
pub const SANDBOX_TIMEOUT: &str = "x-sandbox-timeout";

/// Upstream's default namespace when `X-Sandbox-Namespace` is absent.
pub const DEFAULT_NAMESPACE: &str = "default";
/// Upstream's default port: the legacy python-runtime API.
pub const DEFAULT_PORT: u16 = 8888;

/// Longest UID accepted: Kubernetes UIDs are 36-character UUIDs; the slack allows other forms
/// without letting a header grow without bound in logs.
const MAX_UID_LEN: usize = 128;

/// Where one request goes, as its headers say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Namespace of the Sandbox.
    pub namespace: String,
    /// Name of the Sandbox.
    pub name: String,
    /// Port in the pod.
    pub port: u16,
    /// The pod IP the client named, if any.
    pub pod_ip: Option<IpAddr>,
    /// The Sandbox UID the client named, if any.
    pub uid: Option<String>,
    /// How long the client is willing to wait, if it said so.
    pub timeout: Option<Duration>,
}

/// A header that breaks the contract; answered with 400 and this text as `detail`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// `X-Sandbox-ID` is absent or empty.
    #[error("X-Sandbox-ID header is required")]
    MissingId,
    /// A header value is not visible ASCII.
    #[error("{0} header is not valid text")]
    NotText(&'static str),
    /// `X-Sandbox-ID` is not a DNS-1123 label.
    #[error(
        "invalid X-Sandbox-ID {0:?}: must be a DNS-1123 label (lower-case letters, digits and '-', at most 63)"
    )]
    BadId(String),
    /// `X-Sandbox-Namespace` is not a DNS-1123 label.
    #[error("invalid X-Sandbox-Namespace {0:?}: must be a DNS-1123 label")]
    BadNamespace(String),
    /// `X-Sandbox-Port` is not an integer in 1..=65535.
    #[error("invalid X-Sandbox-Port {0:?}: must be an integer from 1 to 65535")]
    BadPort(String),
    /// `X-Sandbox-Pod-IP` is not an IP address literal.
    #[error("invalid X-Sandbox-Pod-IP {0:?}: must be an IP address")]
    BadPodIp(String),
    /// `X-Sandbox-UID` is empty, too long or has characters no UID has.
    #[error("invalid X-Sandbox-UID {0:?}")]
    BadUid(String),
}

/// Reads the route from the request headers. `X-Sandbox-Timeout` that is not a positive finite
/// number of seconds is ignored (the proxy's own timeout applies), as upstream's router does: the
/// SDKs send it on every request and a bad value should not fail a request that is otherwise fine.
pub fn parse(headers: &HeaderMap) -> Result<Route, HeaderError> {
    let name = text(headers, SANDBOX_ID, "X-Sandbox-ID")?
        .filter(|v| !v.is_empty())
        .ok_or(HeaderError::MissingId)?;
    if !is_dns_label(name) {
        return Err(HeaderError::BadId(clip(name)));
    }
    let namespace = match text(headers, SANDBOX_NAMESPACE, "X-Sandbox-Namespace")? {
        None | Some("") => DEFAULT_NAMESPACE,
        Some(ns) if is_dns_label(ns) => ns,
        Some(ns) => return Err(HeaderError::BadNamespace(clip(ns))),
    };
    let port = match text(headers, SANDBOX_PORT, "X-Sandbox-Port")? {
        None | Some("") => DEFAULT_PORT,
        // Digits only: Rust's integer parser would also take a leading '+'.
        Some(p) => Some(p)
            .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|p| p.parse::<u16>().ok())
            .filter(|p| *p != 0)
            .ok_or_else(|| HeaderError::BadPort(clip(p)))?,
    };
    let pod_ip = match text(headers, SANDBOX_POD_IP, "X-Sandbox-Pod-IP")? {
        None | Some("") => None,
        Some(ip) => Some(
            ip.parse::<IpAddr>()
                .map_err(|_| HeaderError::BadPodIp(clip(ip)))?,
        ),
    };
    let uid = match text(headers, SANDBOX_UID, "X-Sandbox-UID")? {
        None | Some("") => None,
        Some(uid) if is_uid(uid) => Some(uid.to_owned()),
        Some(uid) => return Err(HeaderError::BadUid(clip(uid))),
    };
    let timeout = text(headers, SANDBOX_TIMEOUT, "X-Sandbox-Timeout")
        .ok()
        .flatten()
        .and_then(|t| t.trim().parse::<f64>().ok())
        .filter(|t| t.is_finite() && *t > 0.0)
        .and_then(|t| Duration::try_from_secs_f64(t).ok());
    Ok(Route {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        port,
        pod_ip,
        uid,
        timeout,
    })
}

/// The header's value as text, `None` when absent.
fn text<'a>(
    headers: &'a HeaderMap,
    name: &str,
    shown: &'static str,
) -> Result<Option<&'a str>, HeaderError> {
    headers
        .get(name)
        .map(|v| {
            v.to_str()
                .map(str::trim)
                .map_err(|_| HeaderError::NotText(shown))
        })
        .transpose()
}

/// UIDs are UUIDs in practice; anything made of hex digits and dashes of sane length passes.
fn is_uid(uid: &str) -> bool {
    uid.len() <= MAX_UID_LEN && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// A header value as quoted in an error: at most 80 characters, so a huge header cannot flood logs.
fn clip(value: &str) -> String {
    value.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(
                hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    #[test]
    fn defaults_apply_when_only_the_id_is_given() {
        let route = parse(&headers(&[("X-Sandbox-ID", "my-sandbox")])).unwrap();
        assert_eq!(
            route,
            Route {
                namespace: "default".into(),
                name: "my-sandbox".into(),
                port: 8888,
                pod_ip: None,
                uid: None,
                timeout: None,
            }
        );
    }

    #[test]
    fn every_header_is_read() {
        let route = parse(&headers(&[
            ("X-Sandbox-ID", "sb"),
            ("X-Sandbox-Namespace", "team-a"),
            ("X-Sandbox-Port", "9090"),
            ("X-Sandbox-Pod-IP", "10.88.0.7"),
            ("X-Sandbox-UID", "0b5c4b7e-1f2a-4c3d-9e8f-7a6b5c4d3e2f"),
            ("X-Sandbox-Timeout", "2.5"),
        ]))
        .unwrap();
        assert_eq!(route.namespace, "team-a");
        assert_eq!(route.port, 9090);
        assert_eq!(route.pod_ip, Some("10.88.0.7".parse().unwrap()));
        assert_eq!(
            route.uid.as_deref(),
            Some("0b5c4b7e-1f2a-4c3d-9e8f-7a6b5c4d3e2f")
        );
        assert_eq!(route.timeout, Some(Duration::from_millis(2500)));
    }

    #[test]
    fn the_id_is_required_and_must_be_a_label() {
        assert_eq!(parse(&HeaderMap::new()), Err(HeaderError::MissingId));
        assert_eq!(
            parse(&headers(&[("X-Sandbox-ID", "")])),
            Err(HeaderError::MissingId)
        );
        for bad in ["bad.sandbox.id", "Upper", "-lead", "a_b", &"a".repeat(64)] {
            assert!(
                matches!(
                    parse(&headers(&[("X-Sandbox-ID", bad)])),
                    Err(HeaderError::BadId(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn namespace_port_ip_and_uid_are_validated() {
        let with = |k: &str, v: &str| parse(&headers(&[("X-Sandbox-ID", "sb"), (k, v)]));
        assert!(matches!(
            with("X-Sandbox-Namespace", "bad namespace!"),
            Err(HeaderError::BadNamespace(_))
        ));
        for bad in ["0", "65536", "-80", "not-a-number", "80.5", "+80"] {
            assert!(
                matches!(with("X-Sandbox-Port", bad), Err(HeaderError::BadPort(_))),
                "{bad}"
            );
        }
        for bad in ["not-an-ip", "999.999.999.999", "10.20.30", "10.0.0.1:80"] {
            assert!(
                matches!(with("X-Sandbox-Pod-IP", bad), Err(HeaderError::BadPodIp(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            with("X-Sandbox-UID", "not a uid"),
            Err(HeaderError::BadUid(_))
        ));
        assert!(matches!(
            with("X-Sandbox-UID", &"a".repeat(129)),
            Err(HeaderError::BadUid(_))
        ));
        assert_eq!(
            with("X-Sandbox-Pod-IP", "fd00::5").unwrap().pod_ip,
            Some("fd00::5".parse().unwrap())
        );
    }

    #[test]
    fn a_bad_timeout_falls_back_to_the_proxy_timeout() {
        for ignored in ["0", "-1", "inf", "NaN", "soon", "1e400"] {
            let route = parse(&headers(&[
                ("X-Sandbox-ID", "sb"),
                ("X-Sandbox-Timeout", ignored),
            ]))
            .unwrap();
            assert_eq!(route.timeout, None, "{ignored}");
        }
    }

    #[test]
    fn non_text_values_are_rejected_and_long_values_clipped() {
        let mut map = headers(&[("X-Sandbox-ID", "sb")]);
        map.insert(
            SANDBOX_NAMESPACE,
            HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap(),
        );
        assert_eq!(
            parse(&map),
            Err(HeaderError::NotText("X-Sandbox-Namespace"))
        );
        let long = "x".repeat(500);
        let Err(HeaderError::BadPort(shown)) = parse(&headers(&[
            ("X-Sandbox-ID", "sb"),
            ("X-Sandbox-Port", &long),
        ])) else {
            panic!("expected BadPort");
        };
        assert_eq!(shown.len(), 80);
    }
}
