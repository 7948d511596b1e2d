//! The firewall that keeps pod traffic on the machine, and the iptables chains the node's programs
//! add (ours, the kubelet's, kube-proxy's, CNI's), found and removed again by `down`.

use agent_sandbox_hostcmd as hostcmd;

use crate::cluster::layout::{KUBERNETES_SERVICE_IP, SERVICE_CIDR, ports};
use crate::cluster::node::config::{BRIDGE, GATEWAY, POD_CIDR};

/// Chain name prefixes of iptables chains the node adds: ours, the kubelet's and kube-proxy's, CNI's.
const CHAIN_PREFIXES: [&str; 3] = ["AGENT-SANDBOX-", "KUBE-", "CNI-"];

/// Our chains: table, the built-in chain each is jumped to from, and its name.
///
/// The guards live in `mangle`, not `filter`: mangle's INPUT and FORWARD hooks run before filter's,
/// and POSTROUTING after every filter chain, so a DROP of ours is final whatever the filter table
/// holds. The node's programs put their own jumps first in filter (kube-router's network-policy
/// controller moves its jumps back to the top on every sync) and ACCEPT there what their rules allow;
/// in filter, ours would be skipped for exactly that traffic.
const FIREWALL: [(&str, &str, &str); 4] = [
    ("mangle", "INPUT", "AGENT-SANDBOX-INPUT"),
    ("mangle", "FORWARD", "AGENT-SANDBOX-FORWARD"),
    ("mangle", "POSTROUTING", "AGENT-SANDBOX-POSTROUTING"),
    ("nat", "PREROUTING", "AGENT-SANDBOX-PREROUTING"),
];

/// The port of the `kubernetes` Service, what in-cluster clients dial (`KUBERNETES_SERVICE_PORT`).
const KUBERNETES_SERVICE_PORT: &str = "443";

/// The firewall: nothing from the pod network leaves through any interface but the bridge, nothing is
/// routed that does not come from or go to the bridge, and no packet for a pod or Service address
/// leaves the host through another interface (e.g. a ClusterIP no kube-proxy rule has claimed yet).
/// Pods reach the host itself only for DNS (CoreDNS on the bridge address), for the API server
/// through the `kubernetes` Service, and to answer connections the host opened; the kubelet's API on
/// the bridge address stays out of their reach.
///
/// The API server listens on loopback only, so it is never reachable from another machine. A pod's
/// connection to the `kubernetes` Service (10.96.0.1:443) is translated to it: DNAT to 127.0.0.1
/// before kube-proxy sees the packet (that Service has no endpoints: a loopback address cannot be
/// one), which the kernel routes only because `route_localnet` is on for the bridge alone
/// ([`super::prepare`]); INPUT then lets exactly the translated connections through and still drops
/// anything else from the bridge to a loopback address.
///
/// An ACCEPT in a mangle chain only ends that chain: the packet still meets the filter table (the
/// network-policy controller's rules among them).
fn firewall_rules() -> Vec<(&'static str, &'static str, Vec<String>)> {
    let v = |parts: &[&str]| parts.iter().map(ToString::to_string).collect::<Vec<_>>();
    let established = ["-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED"];
    let apiserver_port = ports::apiserver().to_string();
    let apiserver = format!("127.0.0.1:{apiserver_port}");
    vec![
        (
            "nat",
            "AGENT-SANDBOX-PREROUTING",
            v(&[
                "-i",
                BRIDGE,
                "-d",
                KUBERNETES_SERVICE_IP,
                "-p",
                "tcp",
                "--dport",
                KUBERNETES_SERVICE_PORT,
                "-j",
                "DNAT",
                "--to-destination",
                &apiserver,
            ]),
        ),
        (
            "mangle",
            "AGENT-SANDBOX-INPUT",
            v(&[&["-i", BRIDGE][..], &established, &["-j", "ACCEPT"]].concat()),
        ),
        (
            "mangle",
            "AGENT-SANDBOX-INPUT",
            v(&[
                "-i", BRIDGE, "-d", GATEWAY, "-p", "udp", "--dport", "53", "-j", "ACCEPT",
            ]),
        ),
        (
            "mangle",
            "AGENT-SANDBOX-INPUT",
            v(&[
                "-i", BRIDGE, "-d", GATEWAY, "-p", "tcp", "--dport", "53", "-j", "ACCEPT",
            ]),
        ),
        (
            "mangle",
            "AGENT-SANDBOX-INPUT",
            v(&[
                "-i",
                BRIDGE,
                "-d",
                "127.0.0.1",
                "-p",
                "tcp",
                "--dport",
                &apiserver_port,
                "-m",
                "conntrack",
                "--ctstate",
                "DNAT",
                "--ctorigdst",
                KUBERNETES_SERVICE_IP,
                "--ctorigdstport",
                KUBERNETES_SERVICE_PORT,
                "-j",
                "ACCEPT",
            ]),
        ),
        (
            "mangle",
            "AGENT-SANDBOX-INPUT",
            v(&["-i", BRIDGE, "-j", "DROP"]),
        ),
        (
            "mangle",
            "AGENT-SANDBOX-FORWARD",
            v(&["-s", POD_CIDR, "!", "-o", BRIDGE, "-j", "DROP"]),
        ),
        (
            "mangle",
            "AGENT-SANDBOX-FORWARD",
            v(&["!", "-i", BRIDGE, "!", "-o", BRIDGE, "-j", "DROP"]),
        ),
        // The host talking to itself (the API server to the kubelet on the bridge address) stays on lo.
        (
            "mangle",
            "AGENT-SANDBOX-POSTROUTING",
            v(&["-o", "lo", "-j", "RETURN"]),
        ),
        // After every filter chain and the Services' DNAT: the final address and interface.
        (
            "mangle",
            "AGENT-SANDBOX-POSTROUTING",
            v(&["-s", POD_CIDR, "!", "-o", BRIDGE, "-j", "DROP"]),
        ),
        (
            "mangle",
            "AGENT-SANDBOX-POSTROUTING",
            v(&["-d", POD_CIDR, "!", "-o", BRIDGE, "-j", "DROP"]),
        ),
        (
            "mangle",
            "AGENT-SANDBOX-POSTROUTING",
            v(&["-d", SERVICE_CIDR, "!", "-o", BRIDGE, "-j", "DROP"]),
        ),
    ]
}

/// Creates (or empties) our chains, fills them and jumps to them first.
pub fn install() -> anyhow::Result<()> {
    for (table, _, chain) in FIREWALL {
        if iptables(&["-t", table, "-N", chain]).is_err() {
            iptables(&["-t", table, "-F", chain])?;
        }
    }
    for (table, chain, rule) in firewall_rules() {
        let mut args = vec!["-t", table, "-A", chain];
        args.extend(rule.iter().map(String::as_str));
        iptables(&args)?;
    }
    keep_firewall_first()
}

/// Puts the jumps to our chains first in their built-in chains. kube-proxy inserts its own jump at
/// the top of nat PREROUTING when it starts (the Services' DNAT, which must not see the `kubernetes`
/// Service first), so this runs again once it is up.
pub fn keep_firewall_first() -> anyhow::Result<()> {
    for (table, builtin, chain) in FIREWALL {
        while iptables(&["-t", table, "-D", builtin, "-j", chain]).is_ok() {}
        iptables(&["-t", table, "-I", builtin, "1", "-j", chain])?;
    }
    Ok(())
}

/// Every iptables/ip6tables chain (as `family/table/name`) whose name has one of [`CHAIN_PREFIXES`].
pub fn chains() -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for family in ["iptables", "ip6tables"] {
        for table in ["filter", "nat", "mangle", "raw"] {
            let Ok(rules) = hostcmd::output(family, &["-w", "-t", table, "-S"]) else {
                continue;
            };
            for line in rules.lines() {
                if let Some(name) = line.strip_prefix("-N ")
                    && CHAIN_PREFIXES.iter().any(|p| name.starts_with(p))
                {
                    out.push(format!("{family}/{table}/{name}"));
                }
            }
        }
    }
    Ok(out)
}

/// Removes the chains that were not there before the node started, and every jump to them.
pub fn remove_chains(before: &[String]) -> anyhow::Result<()> {
    let added: Vec<String> = chains()?
        .into_iter()
        .filter(|c| !before.contains(c))
        .collect();
    for family in ["iptables", "ip6tables"] {
        for table in ["filter", "nat", "mangle", "raw"] {
            let ours: Vec<&str> = added
                .iter()
                .filter_map(|c| c.strip_prefix(&format!("{family}/{table}/")))
                .collect();
            if ours.is_empty() {
                continue;
            }
            let rules = hostcmd::output(family, &["-w", "-t", table, "-S"])?;
            // Jumps into our chains from chains that stay (built-in or pre-existing ones).
            for rule in rules.lines().filter_map(|l| l.strip_prefix("-A ")) {
                let mut words = rule.split_whitespace();
                let chain = words.next().unwrap_or_default();
                let target = rule
                    .split(" -j ")
                    .nth(1)
                    .and_then(|t| t.split_whitespace().next());
                if !ours.contains(&chain) && target.is_some_and(|t| ours.contains(&t)) {
                    // `-S` prints rules shell-quoted (comments have spaces): let the shell split it.
                    run_quiet("sh", &["-c", &format!("{family} -w -t {table} -D {rule}")])?;
                }
            }
            for chain in &ours {
                run_quiet(family, &["-w", "-t", table, "-F", chain])?;
            }
            for chain in &ours {
                run_quiet(family, &["-w", "-t", table, "-X", chain])?;
            }
        }
    }
    Ok(())
}

fn iptables(args: &[&str]) -> anyhow::Result<()> {
    let mut all = vec!["-w"];
    all.extend_from_slice(args);
    run_quiet("iptables", &all)
}

fn run_quiet(program: &str, args: &[&str]) -> anyhow::Result<()> {
    hostcmd::output(program, args).map(|_| ())
}
