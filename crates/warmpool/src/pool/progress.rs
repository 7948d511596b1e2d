//! Whether the pool is progressing: a Warning when stuck members are held because they are
//! unschedulable, a Normal event when that ends.

use std::time::Duration;

use agent_sandbox_api::conditions::events as reasons;
use agent_sandbox_core::events::{Event, EventType};

use super::config::Config;

/// What the pass reports about progress.
pub(super) struct Progress {
    /// Events to publish (only on a change).
    pub events: Vec<Event>,
    /// The pool is not progressing (remembered for the next pass).
    pub not_progressing: bool,
    /// Look again after this long while holding unschedulable members.
    pub recheck: Option<Duration>,
}

/// Go's rendering of a duration (`5m0s`, `90s` → `1m30s`), as in upstream's event message.
pub(super) fn go_duration(d: Duration) -> String {
    let total = d.as_secs();
    let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

/// The progress report, given how many members are held unschedulable, how many are desired and
/// whether the last pass reported the pool as not progressing.
pub(super) fn report(
    unschedulable: u32,
    desired: u32,
    was_not_progressing: bool,
    config: &Config,
) -> Progress {
    if unschedulable == 0 {
        let events = was_not_progressing.then(|| Event {
            type_: EventType::Normal,
            reason: reasons::WARM_POOL_PROGRESSING,
            action: "Reconciling",
            note: "Warm pool is progressing again".to_owned(),
        });
        return Progress {
            events: events.into_iter().collect(),
            not_progressing: false,
            recheck: None,
        };
    }
    let events = (!was_not_progressing).then(|| Event {
        type_: EventType::Warning,
        reason: reasons::WARM_POOL_NOT_PROGRESSING,
        action: "Reconciling",
        note: format!(
            "{unschedulable}/{desired} sandboxes are unschedulable past the {} readiness grace period; holding them instead of replacing (replacements would be equally unschedulable)",
            go_duration(config.readiness_grace)
        ),
    });
    Progress {
        events: events.into_iter().collect(),
        not_progressing: true,
        recheck: Some(config.unschedulable_recheck),
    }
}
