//! The firewall that keeps pod traffic on the machine, and the iptables chains the node's programs
//! add (ours, the kubelet's, kube-proxy's, CNI's), found and removed again by `down`.

use agent_sandbox_hostcmd as hostcmd;

use crate::cluster::layout::SERVICE_CIDR;
use crate::cluster::node::config::{BRIDGE, GATEWAY, POD_CIDR};

/// Chain name prefixes of iptables chains the node adds: ours, the kubelet's and kube-proxy's, CNI's.
const CHAIN_PREFIXES: [&str; 3] = ["AGENT-SANDBOX-", "KUBE-", "CNI-"];

/// Our firewall chains and the built-in chain each is jumped to from.
const FIREWALL: [(&str, &str); 3] = [
    ("INPUT", "AGENT-SANDBOX-INPUT"),
    ("FORWARD", "AGENT-SANDBOX-FORWARD"),
    ("OUTPUT", "AGENT-SANDBOX-OUTPUT"),
];

/// The firewall: nothing from the pod network leaves through any interface but the bridge, nothing is
/// routed that does not come from or go to the bridge, and no packet for a pod or Service address
/// leaves the host through another interface (e.g. a ClusterIP no kube-proxy rule has claimed yet).
/// Pods reach the host itself only for DNS (CoreDNS on the bridge address) and to answer connections
/// the host opened; the kubelet's API on the same address stays out of their reach.
fn firewall_rules() -> Vec<(&'static str, Vec<String>)> {
    let v = |parts: &[&str]| parts.iter().map(ToString::to_string).collect::<Vec<_>>();
    let established = ["-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED"];
    vec![
        (
            "AGENT-SANDBOX-INPUT",
            v(&[&["-i", BRIDGE][..], &established, &["-j", "ACCEPT"]].concat()),
        ),
        (
            "AGENT-SANDBOX-INPUT",
            v(&[
                "-i", BRIDGE, "-d", GATEWAY, "-p", "udp", "--dport", "53", "-j", "ACCEPT",
            ]),
        ),
        (
            "AGENT-SANDBOX-INPUT",
            v(&[
                "-i", BRIDGE, "-d", GATEWAY, "-p", "tcp", "--dport", "53", "-j", "ACCEPT",
            ]),
        ),
        ("AGENT-SANDBOX-INPUT", v(&["-i", BRIDGE, "-j", "DROP"])),
        (
            "AGENT-SANDBOX-FORWARD",
            v(&["-s", POD_CIDR, "!", "-o", BRIDGE, "-j", "DROP"]),
        ),
        (
            "AGENT-SANDBOX-FORWARD",
            v(&["!", "-i", BRIDGE, "!", "-o", BRIDGE, "-j", "DROP"]),
        ),
        // The host talking to itself (the API server to the kubelet on the bridge address) stays on lo.
        ("AGENT-SANDBOX-OUTPUT", v(&["-o", "lo", "-j", "RETURN"])),
        (
            "AGENT-SANDBOX-OUTPUT",
            v(&["-d", POD_CIDR, "!", "-o", BRIDGE, "-j", "DROP"]),
        ),
        (
            "AGENT-SANDBOX-OUTPUT",
            v(&["-d", SERVICE_CIDR, "!", "-o", BRIDGE, "-j", "DROP"]),
        ),
    ]
}

/// Creates (or empties) our chains, fills them and jumps to them first.
pub fn install() -> anyhow::Result<()> {
    for (_, chain) in FIREWALL {
        if iptables(&["-t", "filter", "-N", chain]).is_err() {
            iptables(&["-t", "filter", "-F", chain])?;
        }
    }
    for (chain, rule) in firewall_rules() {
        let mut args = vec!["-t", "filter", "-A", chain];
        args.extend(rule.iter().map(String::as_str));
        iptables(&args)?;
    }
    keep_firewall_first()
}

/// Puts the jumps to our firewall chains first in FORWARD and OUTPUT. The kubelet and kube-proxy
/// insert their own jumps at the top when they start (with ACCEPT rules behind them), so this runs
/// again once they are up.
pub fn keep_firewall_first() -> anyhow::Result<()> {
    for (builtin, chain) in FIREWALL {
        while iptables(&["-t", "filter", "-D", builtin, "-j", chain]).is_ok() {}
        iptables(&["-t", "filter", "-I", builtin, "1", "-j", chain])?;
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
