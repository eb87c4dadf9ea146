//! The disappearing-message sweeper: a tokio task that sleeps until the earliest
//! `expires_at` and deletes what is due.
//!
//! There is no polling loop. The task computes the next deadline from the `expires_at`
//! index and sleeps on it; a write that adds or moves an expiry wakes it through a
//! [`tokio::sync::Notify`] permit (never lost: `notify_one` stores it if the task is busy),
//! and the task recomputes the deadline.

use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};

use crate::model::{StoreEvent, UnixMillis};
use crate::store::Store;

/// Wait (ms) before retrying a failed sweep when no new expiry arrives in the meantime.
const RETRY_AFTER_FAILURE_MS: UnixMillis = 5_000;

/// Why the sweeper could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SweeperError {
    /// [`Sweeper::spawn`] was called outside a tokio runtime.
    #[error("the sweeper needs a tokio runtime (call it from within one)")]
    NoRuntime,
}

/// A running sweeper. Dropping it stops the task.
#[derive(Debug)]
pub struct Sweeper {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Sweeper {
    /// Starts the sweeper for `store` on the current tokio runtime. Run one per profile.
    ///
    /// # Errors
    /// [`SweeperError::NoRuntime`] outside a tokio runtime.
    pub fn spawn(store: Store) -> Result<Self, SweeperError> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| SweeperError::NoRuntime)?;
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = handle.spawn(run(store, stop_rx));
        Ok(Self {
            stop: Some(stop_tx),
            task: Some(task),
        })
    }

    /// Stops the task and waits for it to finish its current sweep.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Sweeper {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The sweeper's last wait, published for tests that must act only once the sweeper has
/// computed its deadline and is really waiting (instead of sleeping and hoping).
#[cfg(feature = "test-support")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweeperPark {
    /// How many times the sweeper has started waiting since the store opened.
    pub parks: u64,
    /// The store-clock time it will wake at unless notified; `None` when nothing expires.
    pub wake_at: Option<UnixMillis>,
}

async fn run(store: Store, mut stop: oneshot::Receiver<()>) {
    let inner = store.inner.clone();
    loop {
        // The database work runs on the blocking pool so the runtime's workers stay free.
        let worker = store.clone();
        let swept = tokio::task::spawn_blocking(move || {
            worker.sweep_expired().and_then(|_| worker.next_expiry())
        })
        .await;
        let now_ms = inner.clock.now_ms();
        let wake_at = match swept {
            Ok(Ok(next)) => next,
            Ok(Err(e)) => {
                let _ = inner.events.send(StoreEvent::SweepFailed {
                    error: e.to_string(),
                });
                Some(now_ms.saturating_add(RETRY_AFTER_FAILURE_MS))
            }
            Err(join) => {
                let _ = inner.events.send(StoreEvent::SweepFailed {
                    error: format!("sweep task failed: {join}"),
                });
                Some(now_ms.saturating_add(RETRY_AFTER_FAILURE_MS))
            }
        };
        let deadline = wake_at.map(|at| {
            let wait_ms = at.saturating_sub(now_ms).max(0);
            Instant::now() + Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0))
        });
        let notified = inner.expiry_changed.notified();
        tokio::pin!(notified);
        // Registers as a waiter; true when a stored permit (a change since the sweep) was
        // taken, in which case the loop goes round again at once.
        let already_notified = notified.as_mut().enable();
        #[cfg(feature = "test-support")]
        if !already_notified {
            inner.sweeper_parks.send_modify(|p| {
                p.parks += 1;
                p.wake_at = wake_at;
            });
        }
        #[cfg(not(feature = "test-support"))]
        let _ = already_notified;
        tokio::select! {
            _ = &mut stop => return,
            () = &mut notified => {}
            () = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {}
        }
    }
}
