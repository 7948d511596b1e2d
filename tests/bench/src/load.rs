//! Load shaping: create objects at a fixed rate or all at once, recording when each create call started.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// How creates are issued.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// `n` per second, each create on its own task (up to `max_in_flight` at a time).
    Rate(f64),
    /// As fast as `max_in_flight` concurrent calls allow.
    Unpaced,
}

/// Creates `count` objects with `create(i)` (which returns the object's name), paced by `pace`, at
/// most `max_in_flight` calls at once. Returns each name with the moment its create call started;
/// fails if any create failed (naming the first error and how many failed).
pub async fn create_all<F, Fut>(
    count: usize,
    pace: Pace,
    max_in_flight: usize,
    create: F,
) -> anyhow::Result<Vec<(String, Instant)>>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<String>> + Send + 'static,
{
    let create = Arc::new(create);
    let permits = Arc::new(Semaphore::new(max_in_flight.max(1)));
    let mut tasks = JoinSet::new();
    let mut tick = match pace {
        Pace::Rate(rate) if rate > 0.0 => {
            let mut i = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
            // Behind schedule (a slow machine), catch up at once: the offered rate is what we promise.
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            Some(i)
        }
        _ => None,
    };
    for i in 0..count {
        if let Some(t) = tick.as_mut() {
            t.tick().await;
        }
        let permit = Arc::clone(&permits).acquire_owned().await?;
        let create = Arc::clone(&create);
        tasks.spawn(async move {
            let started = Instant::now();
            let result = create(i).await;
            drop(permit);
            result.map(|name| (name, started))
        });
    }
    let mut out = Vec::with_capacity(count);
    let mut failures = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined? {
            Ok(x) => out.push(x),
            Err(e) => failures.push(e),
        }
    }
    if let Some(first) = failures.first() {
        bail!(
            "{} of {count} creates failed; the first: {first:#}",
            failures.len()
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn creates_every_object_once_and_reports_failures() -> anyhow::Result<()> {
        let made = create_all(20, Pace::Unpaced, 4, |i| async move { Ok(format!("o{i}")) }).await?;
        let mut names: Vec<String> = made.into_iter().map(|(n, _)| n).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 20);
        let failed = create_all(3, Pace::Rate(1000.0), 2, |i| async move {
            if i == 1 {
                bail!("boom")
            } else {
                Ok(String::new())
            }
        })
        .await;
        assert!(failed.is_err_and(|e| e.to_string().contains("1 of 3 creates failed")));
        Ok(())
    }
}
