//! Leading: wait for the lease (a standby stays ready and waits), hold it while the controllers run,
//! and give it up only after they stopped, so a standby never acts while this replica still
//! finishes passes.

use kube::Client;
use tokio::task::JoinHandle;

use crate::process::leader::{Elector, LeadershipLost, LeaseConfig};
use crate::process::servers::Readiness;
use crate::process::settings::LeaderElection;
use crate::process::signal::Signal;

/// This replica leads (or runs without an election).
pub struct Leadership {
    /// Raised when the lease could not be renewed.
    lost: Signal,
    held: Option<(JoinHandle<Result<(), LeadershipLost>>, Signal)>,
}

impl Leadership {
    /// Waits until this replica leads; `None` when `stop` is raised first. Without an election the
    /// replica leads at once.
    pub async fn acquire(
        client: &Client,
        election: Option<&LeaderElection>,
        identity: &str,
        ready: &Readiness,
        stop: &Signal,
    ) -> Option<Self> {
        let lost = Signal::default();
        let Some(election) = election else {
            return Some(Self { lost, held: None });
        };
        let mut elector = Elector::new(
            client.clone(),
            LeaseConfig::new(
                election.namespace.clone(),
                election.lease_name.clone(),
                identity.to_owned(),
            ),
        );
        // A standby replica is healthy and ready: it is waiting by design.
        ready.set(true);
        tracing::info!(lease = %election.lease_name, namespace = %election.namespace, "waiting for leadership");
        tokio::select! {
            _ = elector.acquire() => {}
            _ = stop.raised() => return None,
        }
        ready.set(false);
        let release = Signal::default();
        let held = {
            let (lost, release) = (lost.clone(), release.clone());
            tokio::spawn(async move {
                let result = elector.hold(release).await;
                if result.is_err() {
                    lost.raise();
                }
                result
            })
        };
        Some(Self {
            lost,
            held: Some((held, release)),
        })
    }

    /// Raised when leadership is lost.
    pub fn lost(&self) -> &Signal {
        &self.lost
    }

    /// Releases the lease; an error when it had been lost.
    pub async fn release(self) -> Result<(), LeadershipLost> {
        let Some((held, release)) = self.held else {
            return Ok(());
        };
        release.raise();
        held.await.unwrap_or(Ok(()))
    }
}
