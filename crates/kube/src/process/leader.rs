//! Lease-based leader election (coordination.k8s.io/v1 Lease), with controller-runtime's timings:
//! 15 s lease, 10 s renew deadline, 2 s retry; the lease is released on graceful shutdown.
//!
//! Expiry is judged by the local clock since the lease record last changed (not by comparing the
//! holder's `renewTime` with our clock), so clock skew between replicas cannot cause two leaders.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::{Api, Client};

use crate::process::signal::Signal;
use crate::runtime::writes::Writer;

/// Lease timings and identity.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity (holderIdentity).
    pub identity: String,
    /// How long a lease is valid without renewal.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before giving up leadership.
    pub renew_deadline: Duration,
    /// Interval between attempts.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// controller-runtime's default timings.
    pub fn new(namespace: String, name: String, identity: String) -> Self {
        Self {
            namespace,
            name,
            identity,
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// What to do with the lease as last read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// No lease yet: create it holding it.
    Create,
    /// We hold it: renew.
    Renew,
    /// Free or expired: take it over.
    TakeOver,
    /// Someone else holds a live lease: wait.
    Wait,
}

/// The holder and renew time last seen, and when (local clock) that record last changed.
#[derive(Clone, Debug, Default)]
pub struct Observation {
    record: Option<(Option<String>, Option<MicroTime>)>,
    changed_at: Option<Instant>,
}

impl Observation {
    /// Notes the lease record read at `now`.
    pub fn observe(&mut self, spec: Option<&LeaseSpec>, now: Instant) {
        let record = spec.map(|s| (s.holder_identity.clone(), s.renew_time.clone()));
        if record != self.record || self.changed_at.is_none() {
            self.record = record;
            self.changed_at = Some(now);
        }
    }

    fn unchanged_for(&self, now: Instant) -> Duration {
        self.changed_at
            .map_or(Duration::ZERO, |at| now.saturating_duration_since(at))
    }
}

/// Decides the next step for `identity` given the lease as read and how long it has not changed.
pub fn decide(
    lease: Option<&Lease>,
    identity: &str,
    observation: &Observation,
    default_duration: Duration,
    now: Instant,
) -> Step {
    let Some(lease) = lease else {
        return Step::Create;
    };
    let spec = lease.spec.as_ref();
    let holder = spec
        .and_then(|s| s.holder_identity.as_deref())
        .filter(|h| !h.is_empty());
    match holder {
        Some(h) if h == identity => Step::Renew,
        None => Step::TakeOver,
        Some(_) => {
            let duration = spec
                .and_then(|s| s.lease_duration_seconds)
                .and_then(|s| u64::try_from(s).ok())
                .map_or(default_duration, Duration::from_secs);
            if observation.unchanged_for(now) >= duration {
                Step::TakeOver
            } else {
                Step::Wait
            }
        }
    }
}

/// Takes part in the election for one Lease.
pub struct Elector {
    api: Api<Lease>,
    writer: Writer,
    config: LeaseConfig,
    observation: Observation,
}

/// Leadership ended without being asked to.
#[derive(Debug, thiserror::Error)]
#[error("leader election lost: the lease {0} could not be renewed within the renew deadline")]
pub struct LeadershipLost(pub String);

impl Elector {
    /// An elector for `config`.
    pub fn new(client: Client, config: LeaseConfig) -> Self {
        Self {
            api: Api::namespaced(client.clone(), &config.namespace),
            writer: Writer::new(client),
            config,
            observation: Observation::default(),
        }
    }

    fn spec(&self, now: Timestamp, acquire: bool, transitions: Option<i32>) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: i32::try_from(self.config.lease_duration.as_secs()).ok(),
            acquire_time: acquire.then_some(MicroTime(now)),
            renew_time: Some(MicroTime(now)),
            lease_transitions: transitions,
            ..LeaseSpec::default()
        }
    }

    /// One attempt to acquire or renew; true when we hold the lease afterwards.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let current = self.api.get_opt(&self.config.name).await?;
        let now = Instant::now();
        self.observation
            .observe(current.as_ref().and_then(|l| l.spec.as_ref()), now);
        let step = decide(
            current.as_ref(),
            &self.config.identity,
            &self.observation,
            self.config.lease_duration,
            now,
        );
        let wall = Timestamp::now();
        let result = match (step, current) {
            (Step::Wait, _) => return Ok(false),
            (Step::Create, _) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.config.name.clone()),
                        namespace: Some(self.config.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(self.spec(wall, true, Some(0))),
                };
                self.writer.create(&self.config.namespace, &lease).await
            }
            (Step::Renew, Some(mut lease)) => {
                let old = lease.spec.take().unwrap_or_default();
                let mut spec = self.spec(wall, false, old.lease_transitions);
                spec.acquire_time = old.acquire_time;
                lease.spec = Some(spec);
                self.writer.replace(&self.config.namespace, &lease).await
            }
            (Step::TakeOver, Some(mut lease)) => {
                let transitions = lease
                    .spec
                    .as_ref()
                    .and_then(|s| s.lease_transitions)
                    .unwrap_or(0)
                    .saturating_add(1);
                lease.spec = Some(self.spec(wall, true, Some(transitions)));
                self.writer.replace(&self.config.namespace, &lease).await
            }
            (Step::Renew | Step::TakeOver, None) => return Ok(false),
        };
        match result {
            Ok(lease) => {
                self.observation
                    .observe(lease.spec.as_ref(), Instant::now());
                Ok(true)
            }
            // Another replica won the race (409 on replace, or create of an existing lease).
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Waits until this replica holds the lease.
    pub async fn acquire(&mut self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    tracing::info!(lease = %self.config.name, identity = %self.config.identity, "acquired leadership");
                    return;
                }
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, "leader election attempt failed"),
            }
            tokio::time::sleep(self.config.retry_period).await;
        }
    }

    /// Renews the lease until `release` is raised (then releases it and returns Ok) or renewal fails
    /// for longer than the renew deadline.
    pub async fn hold(mut self, release: Signal) -> Result<(), LeadershipLost> {
        let mut last_renewed = Instant::now();
        let mut released = std::pin::pin!(release.raised());
        loop {
            let stopping = tokio::select! {
                _ = &mut released => true,
                _ = tokio::time::sleep(self.config.retry_period) => false,
            };
            if stopping {
                self.release().await;
                return Ok(());
            }
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renewed = Instant::now(),
                Ok(false) => return Err(LeadershipLost(self.config.name.clone())),
                Err(error) => tracing::warn!(%error, "lease renewal failed"),
            }
            if last_renewed.elapsed() >= self.config.renew_deadline {
                return Err(LeadershipLost(self.config.name.clone()));
            }
        }
    }

    /// Gives the lease up so a standby takes over at once instead of after the lease duration.
    async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.config.name).await else {
            return;
        };
        let holder = lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref());
        if holder != Some(self.config.identity.as_str()) {
            return;
        }
        if let Some(spec) = lease.spec.as_mut() {
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            spec.renew_time = Some(MicroTime(Timestamp::now()));
        }
        match self.writer.replace(&self.config.namespace, &lease).await {
            Ok(_) => tracing::info!(lease = %self.config.name, "released leadership"),
            Err(error) => tracing::warn!(%error, "failed to release the lease"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DURATION: Duration = Duration::from_secs(15);

    fn lease(holder: Option<&str>, renew_secs: i64) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_owned),
                lease_duration_seconds: Some(15),
                renew_time: Some(MicroTime(
                    Timestamp::from_second(renew_secs).unwrap_or(Timestamp::UNIX_EPOCH),
                )),
                ..LeaseSpec::default()
            }),
        }
    }

    fn observed(lease: &Lease, at: Instant) -> Observation {
        let mut o = Observation::default();
        o.observe(lease.spec.as_ref(), at);
        o
    }

    #[test]
    fn no_lease_is_created() {
        let now = Instant::now();
        assert_eq!(
            decide(None, "me", &Observation::default(), DURATION, now),
            Step::Create
        );
    }

    #[test]
    fn our_own_lease_is_renewed_and_a_free_one_taken() {
        let now = Instant::now();
        let mine = lease(Some("me"), 1);
        assert_eq!(
            decide(Some(&mine), "me", &observed(&mine, now), DURATION, now),
            Step::Renew
        );
        for free in [lease(None, 1), lease(Some(""), 1)] {
            assert_eq!(
                decide(Some(&free), "me", &observed(&free, now), DURATION, now),
                Step::TakeOver
            );
        }
    }

    #[test]
    fn another_holder_is_waited_for_until_its_record_is_stale_for_the_lease_duration() {
        let t0 = Instant::now();
        let theirs = lease(Some("them"), 1);
        let observation = observed(&theirs, t0);
        assert_eq!(
            decide(
                Some(&theirs),
                "me",
                &observation,
                DURATION,
                t0 + Duration::from_secs(14)
            ),
            Step::Wait
        );
        assert_eq!(
            decide(Some(&theirs), "me", &observation, DURATION, t0 + DURATION),
            Step::TakeOver
        );
    }

    #[test]
    fn a_renewal_by_the_holder_restarts_the_local_expiry_clock() {
        let t0 = Instant::now();
        let mut observation = observed(&lease(Some("them"), 1), t0);
        let renewed = lease(Some("them"), 2);
        let t1 = t0 + Duration::from_secs(10);
        observation.observe(renewed.spec.as_ref(), t1);
        assert_eq!(
            decide(
                Some(&renewed),
                "me",
                &observation,
                DURATION,
                t0 + Duration::from_secs(20)
            ),
            Step::Wait
        );
        // Re-reading the same record does not restart it.
        observation.observe(renewed.spec.as_ref(), t1 + Duration::from_secs(5));
        assert_eq!(
            decide(Some(&renewed), "me", &observation, DURATION, t1 + DURATION),
            Step::TakeOver
        );
    }
}
