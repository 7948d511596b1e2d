//! Command-line flags (upstream's names and defaults where they apply) and their validation.

use agent_sandbox_api::validate::{is_dns_label, is_dns_subdomain};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use agent_sandbox_api::validate::ValidationContext;
use agent_sandbox_kube::ExtensionSettings;
use agent_sandbox_kube::{LeaderElection, Settings};
use agent_sandbox_warmpool::member::MemberConfig;
use agent_sandbox_warmpool::pool::Config as PoolConfig;
use agent_sandbox_webhook::WebhookSettings;
use anyhow::{Context as _, bail};
use clap::{ArgAction, Parser, ValueEnum};
use garde::Validate;
use k8s_openapi::jiff::SignedDuration;

/// Where an operator may list extra label domains claims may put on Pods (one per line or
/// comma-separated; mounted from a ConfigMap).
const ALLOWED_LABEL_DOMAINS_FILE: &str = "/etc/sandbox-config/allowed-label-domains";

/// Where the in-cluster namespace of the controller's Pod is mounted.
const NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The Agent Sandbox controller.
#[derive(Debug, Parser, Validate)]
#[command(name = "agent-sandbox-controller", disable_version_flag = true)]
pub struct Flags {
    /// Print the version and exit.
    #[arg(long)]
    #[garde(skip)]
    pub version: bool,

    /// Path to a kubeconfig; default: $KUBECONFIG, ~/.kube/config, then in-cluster configuration.
    #[arg(long)]
    #[garde(skip)]
    pub kubeconfig: Option<PathBuf>,

    /// Address of the metrics endpoint (`/metrics`); `:PORT` listens on all interfaces, port 0 picks a
    /// free port (the bound address is logged).
    #[arg(long, default_value = ":8080")]
    #[garde(custom(bind_address))]
    pub metrics_bind_address: String,

    /// Address of the `/healthz` and `/readyz` probes; same forms as --metrics-bind-address.
    #[arg(long, default_value = ":8081")]
    #[garde(custom(bind_address))]
    pub health_probe_bind_address: String,

    /// Elect a leader through a Lease so only one replica acts (`--leader-elect=false` to disable).
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    #[garde(skip)]
    pub leader_elect: bool,

    /// Namespace of the leader election Lease; empty: the namespace the Pod runs in.
    #[arg(long, default_value = "")]
    #[garde(custom(optional_dns_label))]
    pub leader_election_namespace: String,

    /// Name of the leader election Lease.
    #[arg(long, default_value = "agent-sandbox-controller")]
    #[garde(custom(dns_subdomain))]
    pub leader_election_id: String,

    /// Enable the SandboxClaim, SandboxTemplate and SandboxWarmPool controllers.
    #[arg(long, default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    #[garde(skip)]
    pub extensions: bool,

    /// Cluster DNS domain used in `status.serviceFQDN`.
    #[arg(long, default_value = "cluster.local")]
    #[garde(custom(dns_subdomain))]
    pub cluster_domain: String,

    /// Client-side API request rate; negative: unlimited. Accepted for compatibility (not applied).
    #[arg(long, default_value_t = -1.0, allow_negative_numbers = true)]
    #[garde(custom(finite))]
    pub kube_api_qps: f32,

    /// Client-side API burst; must be > 0. Accepted for compatibility (not applied).
    #[arg(long, default_value_t = 10, allow_negative_numbers = true)]
    #[garde(range(min = 1))]
    pub kube_api_burst: i64,

    /// Maximum concurrent Sandbox reconciles.
    #[arg(long, default_value_t = 100, allow_negative_numbers = true)]
    #[garde(range(min = 1, max = 65535))]
    pub sandbox_concurrent_workers: i64,

    /// Maximum concurrent SandboxClaim reconciles (with --extensions).
    #[arg(long, default_value_t = 50, allow_negative_numbers = true)]
    #[garde(range(min = 1, max = 65535))]
    pub sandbox_claim_concurrent_workers: i64,

    /// Maximum concurrent SandboxWarmPool reconciles (with --extensions).
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    #[garde(range(min = 1, max = 65535))]
    pub sandbox_warm_pool_concurrent_workers: i64,

    /// Maximum concurrent SandboxTemplate reconciles (with --extensions).
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    #[garde(range(min = 1, max = 65535))]
    pub sandbox_template_concurrent_workers: i64,

    /// Most Sandboxes a warm pool creates or deletes in one pass.
    #[arg(long, default_value_t = 300, allow_negative_numbers = true)]
    #[garde(range(min = 1, max = 4294967295))]
    pub sandbox_warm_pool_max_batch_size: i64,

    /// How long a warm pool waits after losing members before refilling (Go duration, e.g. `500ms`,
    /// `2s`; 0: refill at once).
    #[arg(long, default_value = "0", value_parser = parse_duration)]
    #[garde(skip)]
    pub sandbox_warm_pool_replenish_delay: Duration,

    /// Most Sandboxes a warm pool creates per second (0: unlimited).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    #[garde(custom(finite_non_negative))]
    pub sandbox_warm_pool_max_refill_rate: f64,

    /// A warm pool member not Ready after this long is replaced, unless it is unschedulable.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    #[garde(custom(positive))]
    pub sandbox_warm_pool_readiness_grace_period: Duration,

    /// How often a warm pool holding unschedulable members looks again.
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    #[garde(custom(positive))]
    pub sandbox_warm_pool_unschedulable_recheck_interval: Duration,

    /// Mark warm pool Pods `cluster-autoscaler.kubernetes.io/safe-to-evict: "true"` unless the
    /// template says otherwise.
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    #[garde(skip)]
    pub enable_warm_pool_eviction: bool,

    /// Publish no Events about SandboxClaims.
    #[arg(long, default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    #[garde(skip)]
    pub disable_claim_events: bool,

    /// Do not persist the first-observed and trace-context annotations on SandboxClaims.
    #[arg(long, default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    #[garde(skip)]
    pub disable_claim_observability_annotations: bool,

    /// Watch only Pods and Services carrying the `agents.x-k8s.io/sandbox-name-hash` label (unlabelled
    /// objects meant for adoption are then invisible until labelled).
    #[arg(long, default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    #[garde(skip)]
    pub cache_label_selectors: bool,

    /// Serve the v1alpha1 ⇄ v1beta1 conversion webhook (`--enable-webhook=false`: the CRDs must then
    /// use conversion strategy None).
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    #[garde(skip)]
    pub enable_webhook: bool,

    /// Port of the conversion webhook (HTTPS, all interfaces).
    #[arg(long, default_value_t = 9443)]
    #[garde(skip)]
    pub webhook_port: u16,

    /// Directory of the webhook's certificate and key.
    #[arg(long, default_value = "/tmp/k8s-webhook-server/serving-certs")]
    #[garde(skip)]
    pub webhook_cert_dir: PathBuf,

    /// Certificate file in --webhook-cert-dir (pre-provisioned certificates only).
    #[arg(long, default_value = "tls.crt")]
    #[garde(length(min = 1))]
    pub webhook_cert_name: String,

    /// Key file in --webhook-cert-dir (pre-provisioned certificates only).
    #[arg(long, default_value = "tls.key")]
    #[garde(length(min = 1))]
    pub webhook_key_name: String,

    /// Service in front of the webhook (the certificate's names and the CRDs' clientConfig).
    #[arg(long, default_value = "agent-sandbox-webhook-service")]
    #[garde(custom(dns_label))]
    pub webhook_service_name: String,

    /// Namespace of the webhook Service and of the Secret `agent-sandbox-webhook-certs`.
    #[arg(long, default_value = "agent-sandbox-system")]
    #[garde(custom(dns_label))]
    pub webhook_namespace: String,

    /// Generate (or reuse from the Secret `agent-sandbox-webhook-certs`) the webhook certificates and
    /// patch the CRDs' conversion config with the CA; `false`: serve pre-provisioned files.
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    #[garde(skip)]
    pub manage_webhook_certs: bool,

    /// Local mode: the CRDs call this `https://` URL instead of the Service (for an API server on the
    /// same host, which cannot resolve Services); its host is added to the certificate.
    #[arg(long)]
    #[garde(custom(https_url))]
    pub webhook_url: Option<String>,

    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    #[garde(skip)]
    pub log_format: LogFormat,
}

/// Parses `:PORT`, `HOST:PORT` or `[V6]:PORT`.
pub fn parse_bind_address(value: &str) -> Option<SocketAddr> {
    if let Some(port) = value.strip_prefix(':') {
        return port
            .parse()
            .ok()
            .map(|port| SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
    }
    value.parse().ok()
}

fn bind_address(value: &str, _: &()) -> garde::Result {
    match parse_bind_address(value) {
        Some(_) => Ok(()),
        None => Err(garde::Error::new(format!(
            "{value:?} is not an address: use :PORT, IP:PORT or [IPv6]:PORT"
        ))),
    }
}

fn dns_subdomain(value: &str, _: &()) -> garde::Result {
    if is_dns_subdomain(value) {
        Ok(())
    } else {
        Err(garde::Error::new(format!(
            "{value:?} is not a DNS subdomain (lower-case alphanumerics, '-' and '.')"
        )))
    }
}

fn dns_label(value: &str, _: &()) -> garde::Result {
    if is_dns_label(value) {
        Ok(())
    } else {
        Err(garde::Error::new(format!("{value:?} is not a DNS label")))
    }
}

fn https_url(value: &Option<String>, _: &()) -> garde::Result {
    match value {
        Some(url) if agent_sandbox_webhook::url_host(url).is_none() => Err(garde::Error::new(
            format!("{url:?} is not an https:// URL with a host"),
        )),
        _ => Ok(()),
    }
}

fn optional_dns_label(value: &str, _: &()) -> garde::Result {
    if value.is_empty() || is_dns_label(value) {
        Ok(())
    } else {
        Err(garde::Error::new(format!(
            "{value:?} is not a namespace name"
        )))
    }
}

fn finite_non_negative(value: &f64, _: &()) -> garde::Result {
    if value.is_finite() && *value >= 0.0 {
        Ok(())
    } else {
        Err(garde::Error::new("must be a finite number, 0 or more"))
    }
}

fn positive(value: &Duration, _: &()) -> garde::Result {
    if value.is_zero() {
        Err(garde::Error::new("must be longer than 0"))
    } else {
        Ok(())
    }
}

/// Parses a Go duration (`0`, `300ms`, `5m`, `1h30m`, `1.5s`); negative values are refused.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    if value.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    let parsed: SignedDuration = value
        .parse()
        .map_err(|_| format!("{value:?} is not a duration (examples: 0, 500ms, 2s, 5m, 1h30m)"))?;
    Duration::try_from(parsed).map_err(|_| format!("{value:?} is negative"))
}

fn finite(value: &f32, _: &()) -> garde::Result {
    if value.is_finite() {
        Ok(())
    } else {
        Err(garde::Error::new("must be a finite number"))
    }
}

/// This replica's identity: the Pod name (or host name) plus a per-process suffix.
fn identity() -> String {
    let host = std::env::var("POD_NAME")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "agent-sandbox-controller".to_owned());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{host}_{}-{nanos:08x}", std::process::id())
}

fn leader_election_namespace(flag: &str) -> anyhow::Result<String> {
    if !flag.is_empty() {
        return Ok(flag.to_owned());
    }
    if let Ok(namespace) = std::env::var("POD_NAMESPACE")
        && !namespace.is_empty()
    {
        return Ok(namespace);
    }
    match std::fs::read_to_string(NAMESPACE_FILE) {
        Ok(namespace) if !namespace.trim().is_empty() => Ok(namespace.trim().to_owned()),
        _ => bail!(
            "--leader-election-namespace is required when not running in a cluster (or pass --leader-elect=false)"
        ),
    }
}

impl Flags {
    /// Validates the flags and turns them into the adapter's settings.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        self.validate().map_err(|report| {
            let problems: Vec<String> = report
                .iter()
                .map(|(path, error)| format!("--{}: {error}", path.to_string().replace('_', "-")))
                .collect();
            anyhow::anyhow!("invalid flags: {}", problems.join("; "))
        })?;
        let address = |value: &str, flag: &str| {
            parse_bind_address(value).with_context(|| format!("invalid --{flag} {value:?}"))
        };
        let leader_election = if self.leader_elect {
            Some(LeaderElection {
                namespace: leader_election_namespace(&self.leader_election_namespace)?,
                lease_name: self.leader_election_id.clone(),
            })
        } else {
            None
        };
        Ok(Settings {
            cluster_domain: self.cluster_domain.clone(),
            concurrent_workers: u16::try_from(self.sandbox_concurrent_workers)
                .context("--sandbox-concurrent-workers is out of range")?,
            scoped_child_caches: self.cache_label_selectors,
            metrics_address: address(&self.metrics_bind_address, "metrics-bind-address")?,
            health_address: address(&self.health_probe_bind_address, "health-probe-bind-address")?,
            leader_election,
            identity: identity(),
            extensions: self
                .extensions
                .then(|| self.extension_settings())
                .transpose()?,
        })
    }

    /// The conversion webhook's settings; `None` with `--enable-webhook=false`.
    pub fn webhook(&self) -> Option<WebhookSettings> {
        self.enable_webhook.then(|| WebhookSettings {
            address: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), self.webhook_port),
            cert_dir: self.webhook_cert_dir.clone(),
            cert_name: self.webhook_cert_name.clone(),
            key_name: self.webhook_key_name.clone(),
            service_name: self.webhook_service_name.clone(),
            namespace: self.webhook_namespace.clone(),
            cluster_domain: self.cluster_domain.clone(),
            manage_certs: self.manage_webhook_certs,
            url: self.webhook_url.clone(),
        })
    }

    fn extension_settings(&self) -> anyhow::Result<ExtensionSettings> {
        let workers = |value: i64, flag: &str| {
            u16::try_from(value).with_context(|| format!("--{flag} is out of range"))
        };
        Ok(ExtensionSettings {
            template_workers: workers(
                self.sandbox_template_concurrent_workers,
                "sandbox-template-concurrent-workers",
            )?,
            pool_workers: workers(
                self.sandbox_warm_pool_concurrent_workers,
                "sandbox-warm-pool-concurrent-workers",
            )?,
            claim_workers: workers(
                self.sandbox_claim_concurrent_workers,
                "sandbox-claim-concurrent-workers",
            )?,
            pool: PoolConfig {
                readiness_grace: self.sandbox_warm_pool_readiness_grace_period,
                unschedulable_recheck: self.sandbox_warm_pool_unschedulable_recheck_interval,
                max_batch: u32::try_from(self.sandbox_warm_pool_max_batch_size)
                    .context("--sandbox-warm-pool-max-batch-size is out of range")?,
                replenish_delay: self.sandbox_warm_pool_replenish_delay,
                max_refill_rate: self.sandbox_warm_pool_max_refill_rate,
                member: MemberConfig {
                    eviction_annotation: self.enable_warm_pool_eviction,
                },
            },
            claim_events: !self.disable_claim_events,
            claim_observability_annotations: !self.disable_claim_observability_annotations,
            claim_validation: ValidationContext::from_allowed_domains(
                // A missing file means the default allow-list, as upstream.
                &std::fs::read_to_string(ALLOWED_LABEL_DOMAINS_FILE).unwrap_or_default(),
            ),
        })
    }

    /// Workers of every controller that runs.
    fn total_workers(&self) -> i64 {
        let extensions = if self.extensions {
            self.sandbox_claim_concurrent_workers
                .saturating_add(self.sandbox_warm_pool_concurrent_workers)
                .saturating_add(self.sandbox_template_concurrent_workers)
        } else {
            0
        };
        self.sandbox_concurrent_workers.saturating_add(extensions)
    }

    /// Settings that are valid but probably not meant (upstream warns on the same).
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let total = self.total_workers();
        if total > 1000 {
            warnings.push(format!("{total} concurrent workers in all is above 1000"));
        }
        if self.kube_api_qps > 0.0 && total > self.kube_api_burst {
            warnings.push(format!(
                "{total} concurrent workers in all exceed --kube-api-burst={}",
                self.kube_api_burst
            ));
        }
        warnings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Flags {
        let mut argv = vec!["agent-sandbox-controller"];
        argv.extend_from_slice(args);
        match Flags::try_parse_from(argv) {
            Ok(flags) => flags,
            Err(error) => panic!("{error}"),
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
        assert!(flags.enable_webhook);
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
            .map(|s| (s.metrics_address, s.concurrent_workers));
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
        for (args, needle) in [
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
        ] {
            let mut all = vec!["--leader-elect=false"];
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
    fn the_webhook_can_be_switched_off_or_run_in_local_mode() {
        let off = parse(&["--leader-elect=false", "--enable-webhook=false"]);
        assert!(off.settings().is_ok_and(|_| off.webhook().is_none()));
        let local = parse(&[
            "--leader-elect=false",
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
    fn bind_addresses_accept_upstream_forms() {
        assert_eq!(
            parse_bind_address(":9090"),
            Some(SocketAddr::from(([0, 0, 0, 0], 9090)))
        );
        assert_eq!(
            parse_bind_address("127.0.0.1:0"),
            Some(SocketAddr::from(([127, 0, 0, 1], 0)))
        );
        assert_eq!(parse_bind_address("localhost"), None);
    }

    #[test]
    fn extension_flags_default_to_upstream_values() {
        let flags = parse(&["--leader-elect=false", "--extensions"]);
        let settings = flags.settings().map_err(|e| e.to_string());
        let extensions = settings.map(|s| s.extensions);
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
        assert!(off.is_ok_and(|s| s.extensions.is_none()));
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
        let extensions = flags.settings().map(|s| s.extensions).ok().flatten();
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
        for (args, needle) in [
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
        ] {
            let mut all = vec!["--leader-elect=false", "--extensions"];
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
        let argv = [
            "agent-sandbox-controller",
            "--sandbox-warm-pool-replenish-delay=soon",
        ];
        assert!(Flags::try_parse_from(argv).is_err());
    }

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("5 parsecs").is_err());
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
}
