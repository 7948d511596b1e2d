use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use agent_sandbox_warmpool::member::MemberConfig;
use agent_sandbox_warmpool::pool::Config as PoolConfig;
use clap::Parser;

use crate::flags::Flags;

fn parse(args: &[&str]) -> Flags {
    let mut argv = vec!["agent-sandbox-controller"];
    argv.extend_from_slice(args);
    match Flags::try_parse_from(argv) {
        Ok(flags) => flags,
        Err(error) => panic!("{error}"),
    }
}

/// Each `(args, needle)`: `base` plus `args` parse but are refused by `settings()` with an error that
/// contains `needle` (the flag's name).
fn assert_rejected<const N: usize>(base: &[&str], cases: [(Vec<&str>, &str); N]) {
    for (args, needle) in cases {
        let mut all = base.to_vec();
        all.extend(args.iter().copied());
        let error = parse(&all)
            .settings()
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert!(
            error.as_ref().is_err_and(|e| e.contains(needle)),
            "{args:?}: {error:?}"
        );
    }
}

#[test]
fn defaults_mirror_upstream() {
    let flags = parse(&["--leader-election-namespace", "ns"]);
    assert_eq!(flags.metrics_bind_address, ":8080");
    assert_eq!(flags.health_probe_bind_address, ":8081");
    assert!(flags.leader_elect);
    assert!(!flags.extensions);
    assert_eq!(flags.cluster_domain, "cluster.local");
    assert_eq!(flags.kube_api_qps, -1.0);
    assert_eq!(flags.kube_api_burst, 10);
    assert_eq!(flags.sandbox_concurrent_workers, 100);
    assert!(!flags.enable_webhook);
    assert!(flags.manage_webhook_certs);
    assert_eq!(flags.webhook_port, 9443);
    assert_eq!(
        flags.webhook_cert_dir,
        PathBuf::from("/tmp/k8s-webhook-server/serving-certs")
    );
    assert_eq!(
        (
            flags.webhook_cert_name.as_str(),
            flags.webhook_key_name.as_str()
        ),
        ("tls.crt", "tls.key")
    );
    assert_eq!(flags.webhook_service_name, "agent-sandbox-webhook-service");
    assert_eq!(flags.webhook_namespace, "agent-sandbox-system");
    assert_eq!(flags.webhook_url, None);
    let settings = flags.settings().map_err(|e| e.to_string());
    let settings = settings
        .as_ref()
        .map(|s| (s.metrics_address, s.controllers.concurrent_workers));
    assert_eq!(
        settings,
        Ok((
            "0.0.0.0:8080"
                .parse()
                .unwrap_or(SocketAddr::from(([0; 4], 1))),
            100
        ))
    );
}

#[test]
fn leader_election_can_be_switched_off_and_ports_picked_freely() {
    let flags = parse(&[
        "--leader-elect=false",
        "--metrics-bind-address",
        "127.0.0.1:0",
        "--health-probe-bind-address=[::1]:0",
    ]);
    let settings = flags.settings().map_err(|e| e.to_string());
    assert!(
        settings.as_ref().is_ok_and(|s| s.leader_election.is_none()),
        "{settings:?}"
    );
    assert!(settings.is_ok_and(|s| s.health_address.port() == 0 && s.health_address.is_ipv6()));
}

#[test]
fn bad_values_are_rejected_with_the_flag_named() {
    assert_rejected(
        &["--leader-elect=false"],
        [
            (
                vec!["--sandbox-concurrent-workers", "0"],
                "--sandbox-concurrent-workers: lower than 1",
            ),
            (vec!["--kube-api-burst", "-1"], "--kube-api-burst"),
            (
                vec!["--metrics-bind-address", "nonsense"],
                "--metrics-bind-address",
            ),
            (vec!["--cluster-domain", "Not_A_Domain"], "--cluster-domain"),
            (
                vec!["--leader-election-namespace", "UPPER"],
                "--leader-election-namespace",
            ),
            (vec!["--webhook-cert-name="], "--webhook-cert-name"),
            (vec!["--webhook-namespace", "a.b"], "--webhook-namespace"),
            (
                vec!["--webhook-url", "http://127.0.0.1:9443/convert"],
                "--webhook-url",
            ),
        ],
    );
}

#[test]
fn the_webhook_is_off_by_default_and_can_run_in_local_mode() {
    let off = parse(&["--leader-elect=false"]);
    assert!(off.settings().is_ok_and(|_| off.webhook().is_none()));
    let local = parse(&[
        "--leader-elect=false",
        "--enable-webhook=true",
        "--webhook-port=19443",
        "--webhook-url=https://127.0.0.1:19443/convert",
    ]);
    let webhook = local.settings().map(|_| local.webhook());
    assert!(
        webhook.as_ref().is_ok_and(|w| w.as_ref().is_some_and(|w| {
            w.address.port() == 19443
                && w.url.as_deref() == Some("https://127.0.0.1:19443/convert")
                && w.manage_certs
        })),
        "{webhook:?}"
    );
}

#[test]
fn unknown_flags_and_malformed_numbers_fail_parsing() {
    let argv = ["agent-sandbox-controller", "--no-such-flag"];
    assert!(Flags::try_parse_from(argv).is_err());
    let argv = ["agent-sandbox-controller", "--kube-api-burst", "ten"];
    assert!(Flags::try_parse_from(argv).is_err());
}

#[test]
fn extension_flags_default_to_upstream_values() {
    let flags = parse(&["--leader-elect=false", "--extensions"]);
    let settings = flags.settings().map_err(|e| e.to_string());
    let extensions = settings.map(|s| s.controllers.extensions);
    let Ok(Some(extensions)) = extensions else {
        panic!("{extensions:?}");
    };
    assert_eq!(
        (
            extensions.template_workers,
            extensions.pool_workers,
            extensions.claim_workers
        ),
        (1, 1, 50)
    );
    assert_eq!(extensions.pool, PoolConfig::default());
    assert!(extensions.claim_events && extensions.claim_observability_annotations);
    let off = parse(&["--leader-elect=false"]).settings();
    assert!(off.is_ok_and(|s| s.controllers.extensions.is_none()));
}

#[test]
fn extension_flags_are_applied_and_validated() {
    let flags = parse(&[
        "--leader-elect=false",
        "--extensions=true",
        "--sandbox-warm-pool-max-batch-size=7",
        "--sandbox-warm-pool-replenish-delay=1500ms",
        "--sandbox-warm-pool-max-refill-rate=2.5",
        "--sandbox-warm-pool-readiness-grace-period=1h30m",
        "--sandbox-warm-pool-unschedulable-recheck-interval=10s",
        "--enable-warm-pool-eviction=false",
        "--disable-claim-events",
        "--disable-claim-observability-annotations",
    ]);
    let extensions = flags
        .settings()
        .map(|s| s.controllers.extensions)
        .ok()
        .flatten();
    let Some(extensions) = extensions else {
        panic!("settings refused");
    };
    assert_eq!(
        extensions.pool,
        PoolConfig {
            readiness_grace: Duration::from_secs(5400),
            unschedulable_recheck: Duration::from_secs(10),
            max_batch: 7,
            replenish_delay: Duration::from_millis(1500),
            max_refill_rate: 2.5,
            member: MemberConfig {
                eviction_annotation: false
            },
        }
    );
    assert!(!extensions.claim_events && !extensions.claim_observability_annotations);
    assert_rejected(
        &["--leader-elect=false", "--extensions"],
        [
            (
                vec!["--sandbox-warm-pool-max-batch-size=0"],
                "--sandbox-warm-pool-max-batch-size",
            ),
            (
                vec!["--sandbox-warm-pool-max-refill-rate=-1"],
                "--sandbox-warm-pool-max-refill-rate",
            ),
            (
                vec!["--sandbox-warm-pool-readiness-grace-period=0"],
                "--sandbox-warm-pool-readiness-grace-period",
            ),
            (
                vec!["--sandbox-claim-concurrent-workers=0"],
                "--sandbox-claim-concurrent-workers",
            ),
        ],
    );
    let argv = [
        "agent-sandbox-controller",
        "--sandbox-warm-pool-replenish-delay=soon",
    ];
    assert!(Flags::try_parse_from(argv).is_err());
}

#[test]
fn warnings_match_upstream_thresholds() {
    let flags = parse(&[
        "--leader-elect=false",
        "--sandbox-concurrent-workers=2000",
        "--kube-api-qps=5",
    ]);
    assert_eq!(flags.warnings().len(), 2);
}

#[test]
fn a_webhook_url_without_the_webhook_is_warned_about() {
    let flags = parse(&["--webhook-url=https://127.0.0.1:19443/convert"]);
    assert_eq!(
        flags.warnings(),
        ["--webhook-url has no effect without --enable-webhook=true"]
    );
    let enabled = parse(&[
        "--enable-webhook=true",
        "--webhook-url=https://127.0.0.1:19443/convert",
    ]);
    assert!(enabled.warnings().is_empty());
}
