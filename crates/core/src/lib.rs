//! Secrets Manager semantics over a Region's store and key service. Every AWS operation lives
//! in its own file under `ops/`, named after the operation (`ops/get_secret_value.rs`).

pub mod authorize;
pub mod error;
pub mod failback;
pub mod failover;
pub mod kms;
pub mod model;
pub mod ops;
pub mod outbox;
pub mod purge;
pub mod region;
pub mod replication;
pub mod rotation;
pub mod schedule;
pub mod secret;
pub mod validate;
pub mod view;

pub use error::{Error, ErrorCode, Result};
pub use region::{Caller, Clock, RegionService, SystemClock};

/// Runs `futures` concurrently on the current task and returns their outputs in order (few
/// futures: polling them together is enough concurrency). On the SQLite store, the commits of
/// such futures share one transaction (group commit).
pub async fn join_all<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<_> = futures.collect();
    let mut out = Vec::with_capacity(handles.len());
    // Destinations are few; polling them together is enough concurrency.
    let mut pinned: Vec<_> = handles.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if done[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => done[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.extend(done.into_iter().flatten());
    out
}
