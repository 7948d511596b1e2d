//! When this process first saw each claim: the start of the controller-startup latency, kept until
//! the claim's first Ready stamps it.

use std::collections::HashMap;
use std::sync::Mutex;

use agent_sandbox_api::v1beta1::SandboxClaim;
use agent_sandbox_core::Timestamp;
use kube::runtime::reflector::ObjectRef;

/// First sightings by claim, with the UID seen (a re-created claim starts again).
#[derive(Default)]
pub struct FirstObserved {
    seen: Mutex<HashMap<ObjectRef<SandboxClaim>, (String, Timestamp)>>,
}

impl FirstObserved {
    /// Records the first sighting of `claim` (of this UID).
    pub fn observe(&self, claim: &SandboxClaim) {
        let uid = claim.metadata.uid.clone().unwrap_or_default();
        if let Ok(mut seen) = self.seen.lock() {
            let entry = seen
                .entry(ObjectRef::from(claim))
                .or_insert_with(|| (uid.clone(), Timestamp::now()));
            if entry.0 != uid {
                *entry = (uid, Timestamp::now());
            }
        }
    }

    /// When `claim` (this UID) was first seen.
    pub fn get(&self, claim: &SandboxClaim) -> Option<Timestamp> {
        let seen = self.seen.lock().ok()?;
        let (uid, at) = seen.get(&ObjectRef::from(claim))?;
        (claim.metadata.uid.as_ref() == Some(uid)).then_some(*at)
    }

    /// Drops the sighting once it has been used.
    pub fn drain(&self, claim: &SandboxClaim) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.remove(&ObjectRef::from(claim));
        }
    }

    /// Forgets a deleted claim (unless a claim of the same name and another UID replaced it).
    pub fn forget(&self, claim: &SandboxClaim) {
        let key = ObjectRef::from(claim);
        if let Ok(mut seen) = self.seen.lock()
            && seen.get(&key).map(|(uid, _)| uid) == claim.metadata.uid.as_ref()
        {
            seen.remove(&key);
        }
    }
}
