//! Re-running a transaction that lost to a concurrent one: serialization failures (SQLSTATE
//! 40001, routine on SERIALIZABLE distributed databases) and deadlocks (40P01) are tried again a
//! few times with a short jittered backoff (`retrying!`); after that a write reports
//! `Conflict` (the caller reloads and retries) and anything else a backend error.

use std::sync::Arc;
use std::time::Duration;

use coffer_retry::{Backoff, Jitter};

use crate::StoreError;

/// Re-runs after a serialization failure or a deadlock before giving up.
pub(super) const MAX_RETRIES: u32 = 5;

/// An error inside one attempt: either worth another attempt or final.
pub(super) enum PgError {
    Retry(sqlx::Error),
    Final(StoreError),
}

pub(super) type PgResult<T> = std::result::Result<T, PgError>;

pub(super) fn sqlstate(err: &sqlx::Error) -> Option<String> {
    match err {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

impl From<sqlx::Error> for PgError {
    fn from(err: sqlx::Error) -> Self {
        match sqlstate(&err).as_deref() {
            // serialization_failure, deadlock_detected
            Some("40001") | Some("40P01") => PgError::Retry(err),
            _ => PgError::Final(StoreError::from(err)),
        }
    }
}

impl From<StoreError> for PgError {
    fn from(err: StoreError) -> Self {
        PgError::Final(err)
    }
}

/// How a transaction that lost to a concurrent one (or a schema creation that collided) is run
/// again: 5 ms, 10 ms, 20 ms, ... (at most 160 ms) plus up to as much again of random jitter,
/// i.e. 10 ms doubling to 320 ms with equal jitter, so two nodes (or two tasks of one node)
/// that collided do not collide again in lockstep; `MAX_RETRIES` times at most.
pub(super) const RETRIES: Backoff =
    Backoff::new(Duration::from_millis(10), Duration::from_millis(320))
        .jitter(Jitter::Equal)
        .attempts(MAX_RETRIES + 1);

#[cfg(test)]
fn backoff_pause(attempt: u32) -> Duration {
    RETRIES.delay(attempt)
}

/// What a transaction that kept losing to concurrent ones reports.
#[derive(Clone, Copy)]
pub(super) enum Exhausted {
    /// A write whose caller reloads and retries on `Conflict`.
    Conflict,
    Backend,
}

pub(super) fn exhausted(what: &str, how: Exhausted, err: sqlx::Error) -> StoreError {
    tracing::warn!(
        "{what}: still failing after {} attempts on concurrent transactions: {err}",
        MAX_RETRIES + 1
    );
    match how {
        Exhausted::Conflict => StoreError::Conflict,
        Exhausted::Backend => StoreError::DatabaseDuring {
            doing: format!(
                "{what}: still failing after {} attempts on concurrent transactions",
                MAX_RETRIES + 1
            ),
            source: Arc::new(err),
        },
    }
}

/// Evaluates `$attempt` (an expression producing a `PgResult` future) until it succeeds, fails
/// for good, or has been retried `MAX_RETRIES` times.
macro_rules! retrying {
    ($what:expr, $how:expr, $attempt:expr) => {{
        let mut retries = $crate::postgres::retrying::RETRIES.retries();
        loop {
            match $attempt.await {
                Ok(value) => break Ok(value),
                Err($crate::postgres::retrying::PgError::Final(err)) => break Err(err),
                Err($crate::postgres::retrying::PgError::Retry(err)) => {
                    match retries.next_delay() {
                        None => break Err($crate::postgres::retrying::exhausted($what, $how, err)),
                        Some(pause) => {
                            tracing::debug!(
                                "{}: retrying ({}) after {err}",
                                $what,
                                retries.count()
                            );
                            coffer_retry::pause(pause).await;
                        }
                    }
                }
            }
        }
    }};
}
pub(super) use retrying;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_160_ms_with_up_to_as_much_again_of_jitter() {
        for attempt in 1..10u32 {
            let base = 5u64 << (attempt - 1).min(5);
            let pauses: std::collections::HashSet<Duration> =
                (0..64).map(|_| backoff_pause(attempt)).collect();
            for p in &pauses {
                assert!(
                    *p >= Duration::from_millis(base) && *p <= Duration::from_millis(2 * base),
                    "{attempt}: {p:?}"
                );
            }
            // Random, not the same for everyone who collided at one instant.
            assert!(pauses.len() > 1, "{attempt}: {pauses:?}");
        }
    }
}
