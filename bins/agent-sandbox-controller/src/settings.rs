//! From flags to the adapter's settings: validation, the leader election namespace, this replica's
//! identity, and warnings about settings that are valid but probably not meant.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use agent_sandbox_api::validate::ValidationContext;
use agent_sandbox_kube::{
    ControllerSettings, ExtensionSettings, LeaderElection, Settings, replica_identity,
};
use agent_sandbox_warmpool::member::MemberConfig;
use agent_sandbox_warmpool::pool::Config as PoolConfig;
use agent_sandbox_webhook::WebhookSettings;
use anyhow::{Context as _, bail};
use garde::Validate;

use crate::flags::Flags;
use crate::values::parse_bind_address;

/// Where an operator may list extra label domains claims may put on Pods (one per line or
/// comma-separated; mounted from a ConfigMap).
const ALLOWED_LABEL_DOMAINS_FILE: &str = "/etc/sandbox-config/allowed-label-domains";

/// Where the in-cluster namespace of the controller's Pod is mounted.
const NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

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
            controllers: ControllerSettings {
                cluster_domain: self.cluster_domain.clone(),
                concurrent_workers: u16::try_from(self.sandbox_concurrent_workers)
                    .context("--sandbox-concurrent-workers is out of range")?,
                scoped_child_caches: self.cache_label_selectors,
                identity: replica_identity(),
                extensions: self
                    .extensions
                    .then(|| self.extension_settings())
                    .transpose()?,
            },
            metrics_address: address(&self.metrics_bind_address, "metrics-bind-address")?,
            health_address: address(&self.health_probe_bind_address, "health-probe-bind-address")?,
            leader_election,
        })
    }

    /// The conversion webhook's settings; `None` unless `--enable-webhook=true`.
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
        if !self.enable_webhook && self.webhook_url.is_some() {
            warnings.push("--webhook-url has no effect without --enable-webhook=true".to_owned());
        }
        warnings
    }
}

#[cfg(test)]
mod tests;
