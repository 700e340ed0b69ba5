//! The node's background workers, supervised: the deletion purge (with KMS key rotation) and
//! the replication worker (its lanes deliver replication and rotation messages) each run as a
//! task that [`Workers::spawn`] restarts when it panics or ends while the node is not
//! stopping, after a growing, jittered pause, with an error in the log. Each worker's state is
//! in `/metrics`: `coffer_worker_running{worker}` (1 while it runs, 0 while it waits to be
//! restarted or after it stopped) and `coffer_worker_restarts_total{worker}`.
//!
//! Without this, a panic in a loop ended it for good and silently: a node would stop
//! purging, or stop replicating a Region, until restarted.

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use coffer_retry::{Backoff, Jitter};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The first pause before a restart; it doubles with each failure in a row, up to
/// [`MAX_PAUSE`]. A worker that ran for [`HEALTHY_RUN`] before failing starts over at the first.
const FIRST_PAUSE: Duration = Duration::from_secs(1);
const MAX_PAUSE: Duration = Duration::from_secs(60);
const HEALTHY_RUN: Duration = Duration::from_secs(300);
const RESTARTS: Backoff = Backoff::new(FIRST_PAUSE, MAX_PAUSE).jitter(Jitter::Equal);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Worker {
    worker: String,
}

/// The supervisor of a node's workers and their metrics.
pub struct Workers {
    registry: Mutex<Registry>,
    running: Family<Worker, Gauge>,
    restarts: Family<Worker, Counter>,
}

impl Default for Workers {
    fn default() -> Self {
        Workers::new()
    }
}

impl Workers {
    pub fn new() -> Workers {
        let mut registry = Registry::with_prefix("coffer_worker");
        let running = Family::<Worker, Gauge>::default();
        let restarts = Family::<Worker, Counter>::default();
        registry.register(
            "running",
            "1 while the background worker runs, 0 while it waits to be restarted or after it stopped",
            running.clone(),
        );
        registry.register(
            "restarts",
            "Times the background worker panicked or ended unexpectedly and was restarted",
            restarts.clone(),
        );
        Workers {
            registry: Mutex::new(registry),
            running,
            restarts,
        }
    }

    /// Runs `work()` as the worker `name` until `stop` turns true; restarts it (a new
    /// `work()`) whenever it panics or returns before that. The returned task ends once the
    /// worker has stopped.
    pub fn spawn<F, Fut>(
        &self,
        name: &str,
        mut stop: watch::Receiver<bool>,
        mut work: F,
    ) -> JoinHandle<()>
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let label = Worker {
            worker: name.to_string(),
        };
        let running = self.running.get_or_create(&label).clone();
        let restarts = self.restarts.get_or_create(&label).clone();
        let name = name.to_string();
        tokio::spawn(async move {
            let mut failures = 0u32;
            loop {
                running.set(1);
                let started = Instant::now();
                let ended = tokio::spawn(work()).await;
                running.set(0);
                if *stop.borrow() {
                    return;
                }
                let why = match ended {
                    Ok(()) => "ended".to_string(),
                    Err(e) if e.is_panic() => format!("panicked ({})", panic_text(e.into_panic())),
                    // Cancelled: the runtime is shutting down.
                    Err(_) => return,
                };
                if started.elapsed() >= HEALTHY_RUN {
                    failures = 0;
                }
                failures += 1;
                restarts.inc();
                let pause = pause_after(failures);
                tracing::error!(
                    worker = %name,
                    restarts = restarts.get(),
                    "Background worker {name} {why}; restarting it in {:.1} s",
                    pause.as_secs_f64()
                );
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = stop.changed() => return,
                }
            }
        })
    }

    /// The text exposition format of the workers' metrics.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

/// The pause before restart number `failures` (in a row): FIRST_PAUSE doubled each time up to
/// MAX_PAUSE, then a random amount of up to half of it taken off ("equal jitter"), so the
/// workers of several nodes that failed together do not restart in lockstep.
fn pause_after(failures: u32) -> Duration {
    RESTARTS.delay(failures)
}

/// What a panic said, when it said it with a string (as `panic!` and `expect` do).
fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "no message".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A worker that panics twice and then works is restarted twice, shows as running, and
    /// stops (without another restart) when the node stops.
    #[tokio::test(start_paused = true)]
    async fn a_panicking_worker_is_restarted_until_the_node_stops() {
        let workers = Workers::new();
        let (stop_tx, stop) = watch::channel(false);
        let runs = Arc::new(AtomicU32::new(0));
        let counted = runs.clone();
        let stopping = stop.clone();
        let task = workers.spawn("purge", stop, move || {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            let mut stopping = stopping.clone();
            async move {
                if n < 2 {
                    panic!("purge bug {n}");
                }
                let _ = stopping.changed().await;
            }
        });
        // Paused time: the pauses before restarts pass as soon as every task waits.
        while runs.load(Ordering::SeqCst) < 3 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        expect_purge(&workers, 1, 2);
        stop_tx.send(true).unwrap();
        task.await.unwrap();
        assert_eq!(
            runs.load(Ordering::SeqCst),
            3,
            "not restarted after the stop"
        );
        expect_purge(&workers, 0, 2);
    }

    /// The purge worker's samples in `/metrics`.
    fn expect_purge(workers: &Workers, running: u32, restarts: u32) {
        let text = workers.render();
        for sample in [
            format!(r#"coffer_worker_running{{worker="purge"}} {running}"#),
            format!(r#"coffer_worker_restarts_total{{worker="purge"}} {restarts}"#),
        ] {
            assert!(text.contains(&sample), "{sample} in {text}");
        }
    }

    /// A worker that returns on its own while the node runs is restarted too.
    #[tokio::test(start_paused = true)]
    async fn a_worker_that_ends_early_is_restarted() {
        let workers = Workers::new();
        let (stop_tx, stop) = watch::channel(false);
        let runs = Arc::new(AtomicU32::new(0));
        let counted = runs.clone();
        let task = workers.spawn("replication", stop, move || {
            counted.fetch_add(1, Ordering::SeqCst);
            async {}
        });
        while runs.load(Ordering::SeqCst) < 3 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stop_tx.send(true).unwrap();
        task.await.unwrap();
        assert!(workers.render().contains(r#"worker="replication""#));
    }

    #[test]
    fn pauses_grow_to_a_minute_with_jitter() {
        for failures in 1..40 {
            let full = FIRST_PAUSE
                .saturating_mul(1u32 << (failures - 1).min(16))
                .min(MAX_PAUSE);
            let pause = pause_after(failures);
            assert!(pause >= full / 2 && pause <= full, "{failures}: {pause:?}");
        }
        assert!(pause_after(30) >= MAX_PAUSE / 2);
    }
}
