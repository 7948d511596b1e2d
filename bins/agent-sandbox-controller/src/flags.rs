//! The command-line flags: upstream's names and defaults where they apply, each with the check of its
//! value (the checks themselves are in [`crate::values`]).

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser, ValueEnum};
use garde::Validate;

use crate::values::{
    bind_address, dns_label, dns_subdomain, finite, finite_non_negative, https_url,
    optional_dns_label, parse_duration, positive,
};

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// One-shot commands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Store every object at v1beta1, prune the CRDs' storedVersions and make them serve v1beta1 only,
    /// as upstream 1.0 expects (docs/upgrade.md). A dry run unless --apply.
    MigrateStorage {
        /// Change the cluster; without it, report what would change and check every object.
        #[arg(long)]
        apply: bool,
    },
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
    #[arg(long, global = true)]
    #[garde(skip)]
    pub kubeconfig: Option<PathBuf>,

    /// A one-shot command to run instead of the controller.
    #[command(subcommand)]
    #[garde(skip)]
    pub command: Option<Command>,

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

    /// Serve the v1alpha1 ⇄ v1beta1 conversion webhook: only the migration install (deploy/migration)
    /// needs it; the default install's CRDs serve v1beta1 alone, as upstream 1.0's do.
    #[arg(long, default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
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
