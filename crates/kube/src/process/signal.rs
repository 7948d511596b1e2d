//! Stopping: the operating system's request, and a flag every task of the process can wait for.

use std::sync::Arc;

use tokio::sync::watch;

/// Completes when SIGTERM or SIGINT arrives.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

/// A flag raised once, that any number of tasks wait for.
#[derive(Clone, Debug)]
pub struct Signal(Arc<watch::Sender<bool>>);

impl Default for Signal {
    fn default() -> Self {
        Self(Arc::new(watch::channel(false).0))
    }
}

impl Signal {
    /// Raises the flag (again is harmless).
    pub fn raise(&self) {
        self.0.send_replace(true);
    }

    /// True once raised.
    pub fn is_raised(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes once the flag is raised.
    pub fn raised(&self) -> impl Future<Output = ()> + Send + Sync + 'static {
        let mut receiver = self.0.subscribe();
        async move {
            // The sender lives as long as any clone of the signal; a dropped one counts as raised.
            let _ = receiver.wait_for(|raised| *raised).await;
        }
    }

    /// Completes once this flag or `other` is raised.
    pub fn either(&self, other: &Signal) -> impl Future<Output = ()> + Send + Sync + 'static {
        let (this, other) = (self.raised(), other.raised());
        async move {
            futures::future::select(Box::pin(this), Box::pin(other)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_waiter_wakes_once_raised_even_if_it_waited_first() {
        let signal = Signal::default();
        let early = tokio::spawn(signal.raised());
        assert!(!signal.is_raised());
        signal.raise();
        assert!(signal.is_raised());
        assert!(early.await.is_ok());
        signal.raised().await;
        Signal::default().either(&signal).await;
    }
}
