//! The SSRF guard's address rules: kinds of address the router never connects to, whatever the
//! catalog says. The catalog already limits targets to IPs of Sandbox pods it watches; these rules
//! are the second wall, for a pod status that names something else (a host-network pod has the
//! node's address, a broken CNI may report anything). Pure.

use std::net::IpAddr;

/// Why an address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `0.0.0.0/8` or `::`: "this host" on most stacks.
    #[error("an unspecified address")]
    Unspecified,
    /// `127.0.0.0/8` or `::1`: the router's own host.
    #[error("a loopback address")]
    Loopback,
    /// `169.254.0.0/16` or `fe80::/10`: cloud metadata services live here.
    #[error("a link-local address")]
    LinkLocal,
    /// Multicast or the IPv4 broadcast address: never one pod.
    #[error("a multicast or broadcast address")]
    Multicast,
    /// An address of the Kubernetes API server.
    #[error("an address of the Kubernetes API server")]
    ApiServer,
}

/// The address rules, with the API server's addresses (known at start-up) added.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    api_server: Vec<IpAddr>,
    loopback_allowed: bool,
}

impl Guard {
    /// Rules that also refuse these API server addresses.
    pub fn new(api_server: impl IntoIterator<Item = IpAddr>) -> Self {
        Self {
            api_server: api_server.into_iter().map(|ip| ip.to_canonical()).collect(),
            loopback_allowed: false,
        }
    }

    /// Test seam: the in-process tests serve their "sandboxes" on 127.0.0.1, so they need
    /// loopback targets. Deliberately not reachable from any flag: the binary never allows them.
    pub fn allowing_loopback_for_tests(mut self) -> Self {
        self.loopback_allowed = true;
        self
    }

    /// `Ok` when the router may connect to `ip`.
    pub fn check(&self, ip: IpAddr) -> Result<(), Refusal> {
        // An IPv4-mapped IPv6 address (::ffff:127.0.0.1) is judged as the IPv4 address it is.
        let ip = ip.to_canonical();
        if self.api_server.contains(&ip) {
            return Err(Refusal::ApiServer);
        }
        match ip {
            IpAddr::V4(v4) => {
                if v4.octets()[0] == 0 {
                    Err(Refusal::Unspecified)
                } else if v4.is_loopback() {
                    self.loopback()
                } else if v4.is_link_local() {
                    Err(Refusal::LinkLocal)
                } else if v4.is_multicast() || v4.is_broadcast() {
                    Err(Refusal::Multicast)
                } else {
                    Ok(())
                }
            }
            IpAddr::V6(v6) => {
                if v6.is_unspecified() {
                    Err(Refusal::Unspecified)
                } else if v6.is_loopback() {
                    self.loopback()
                } else if v6.is_unicast_link_local() {
                    Err(Refusal::LinkLocal)
                } else if v6.is_multicast() {
                    Err(Refusal::Multicast)
                } else {
                    Ok(())
                }
            }
        }
    }

    fn loopback(&self) -> Result<(), Refusal> {
        if self.loopback_allowed {
            Ok(())
        } else {
            Err(Refusal::Loopback)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(guard: &Guard, ip: &str) -> Result<(), Refusal> {
        guard.check(ip.parse().unwrap())
    }

    #[test]
    fn pod_network_addresses_pass() {
        let guard = Guard::default();
        for ip in [
            "10.88.0.5",
            "192.168.1.50",
            "100.64.3.2",
            "fd00::5",
            "2001:db8::7",
        ] {
            assert_eq!(check(&guard, ip), Ok(()), "{ip}");
        }
    }

    #[test]
    fn host_metadata_and_group_addresses_are_refused() {
        let guard = Guard::default();
        for (ip, refusal) in [
            ("127.0.0.1", Refusal::Loopback),
            ("127.8.9.10", Refusal::Loopback),
            ("::1", Refusal::Loopback),
            ("::ffff:127.0.0.1", Refusal::Loopback),
            ("169.254.169.254", Refusal::LinkLocal),
            ("::ffff:169.254.169.254", Refusal::LinkLocal),
            ("fe80::1", Refusal::LinkLocal),
            ("0.0.0.0", Refusal::Unspecified),
            ("0.1.2.3", Refusal::Unspecified),
            ("::", Refusal::Unspecified),
            ("224.0.0.1", Refusal::Multicast),
            ("255.255.255.255", Refusal::Multicast),
            ("ff02::1", Refusal::Multicast),
        ] {
            assert_eq!(check(&guard, ip), Err(refusal), "{ip}");
        }
    }

    #[test]
    fn the_api_server_is_refused_in_either_spelling() {
        let guard = Guard::new(["10.96.0.1".parse().unwrap()]);
        assert_eq!(check(&guard, "10.96.0.1"), Err(Refusal::ApiServer));
        assert_eq!(check(&guard, "::ffff:10.96.0.1"), Err(Refusal::ApiServer));
        assert_eq!(check(&guard, "10.96.0.2"), Ok(()));
    }

    #[test]
    fn only_the_test_seam_allows_loopback() {
        let guard = Guard::default().allowing_loopback_for_tests();
        assert_eq!(check(&guard, "127.0.0.1"), Ok(()));
        assert_eq!(check(&guard, "169.254.169.254"), Err(Refusal::LinkLocal));
    }
}
