//! Bounded retries: how long to wait before trying again, and how many times.
//!
//! Every place in Coffer that tries something again after a failure takes its pauses from one
//! [`Backoff`]: a first pause, doubled (or multiplied by its `factor`) on each retry up to a
//! cap, spread by random [`Jitter`] so that the nodes or tasks that failed together do not try
//! again in lockstep, and a bound on the attempts. The callers keep their own numbers:
//!
//! - the PostgreSQL store re-running a transaction after a serialization failure or a
//!   deadlock (`store/src/postgres.rs`);
//! - a writer that lost an optimistic race reloading and trying again (`core/src/secret.rs`);
//! - the worker supervisor restarting a worker that panicked (`replication/src/workers.rs`);
//! - replication deliveries and rotations, whose next attempt is written into the outbox row
//!   (`replication/src/worker.rs`; no jitter there: the rows fail at different moments).
//!
//! It is a crate of its own, below every other, because the store is among its users and the
//! store knows nothing of the crates above it; it holds nothing but this policy, so every crate
//! can depend on it without a cycle.
//!
//! Jitter comes from `rand`'s thread-local generator, not from the clock: two nodes that read
//! the clock in the same microsecond would otherwise pick the same pause.

use std::future::Future;
use std::time::Duration;

/// How a pause is spread around the one the policy computed (its *ceiling*).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Jitter {
    /// Exactly the ceiling: for schedules written down (an outbox row's next attempt), where
    /// the rows already fail at different moments.
    None,
    /// Anywhere between nothing and the ceiling ("full jitter"): the widest spread, for
    /// contenders that retry many times.
    Full,
    /// Between half the ceiling and the ceiling ("equal jitter"): spread, but never much
    /// shorter than the policy says.
    Equal,
}

/// A retry policy: the pause before each retry and the most attempts.
///
/// Built with `const` methods, so each caller names its policy as a constant:
///
/// ```
/// use std::time::Duration;
/// use coffer_retry::{Backoff, Jitter};
///
/// // 10 ms, 20 ms, 40 ms, ... at most 320 ms, each taken between half and all of it; six
/// // attempts in all.
/// const POLICY: Backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(320))
///     .jitter(Jitter::Equal)
///     .attempts(6);
/// assert!(POLICY.delay(1) >= Duration::from_millis(5));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    factor: u32,
    jitter: Jitter,
    attempts: u32,
    immediate: u32,
    plus: Duration,
}

impl Backoff {
    /// Pauses of `first`, doubling up to `max`, without jitter, with no bound on the attempts.
    pub const fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            first,
            max,
            factor: 2,
            jitter: Jitter::None,
            attempts: u32::MAX,
            immediate: 0,
            plus: Duration::ZERO,
        }
    }

    /// Each pause is the one before times `factor` (2 unless set; 1 keeps it constant).
    pub const fn factor(mut self, factor: u32) -> Backoff {
        self.factor = factor;
        self
    }

    pub const fn jitter(mut self, jitter: Jitter) -> Backoff {
        self.jitter = jitter;
        self
    }

    /// At most `attempts` attempts in all, the first included (so `attempts - 1` retries).
    pub const fn attempts(mut self, attempts: u32) -> Backoff {
        self.attempts = attempts;
        self
    }

    /// The first `retries` retries come at once (after a yield to the scheduler), without a
    /// pause; the growing pauses start after them.
    pub const fn immediate_retries(mut self, retries: u32) -> Backoff {
        self.immediate = retries;
        self
    }

    /// A fixed amount added to every pause after the jitter (not to immediate retries).
    pub const fn plus(mut self, fixed: Duration) -> Backoff {
        self.plus = fixed;
        self
    }

    /// The most attempts, the first included.
    pub const fn max_attempts(&self) -> u32 {
        self.attempts
    }

    /// The pause before retry number `retry` (1 for the first retry; 0 counts as 1) before
    /// jitter: `first` times `factor` to the power of the retries before it, at most `max`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let retry = retry.max(1);
        if retry <= self.immediate {
            return Duration::ZERO;
        }
        let mut pause = self.first;
        // Stops as soon as the cap is reached, so this runs a few dozen times at most.
        for _ in 1..retry - self.immediate {
            if pause >= self.max || pause.is_zero() || self.factor <= 1 {
                break;
            }
            pause = pause.saturating_mul(self.factor);
        }
        pause.min(self.max)
    }

    /// The pause before retry number `retry` (1 for the first retry): the ceiling, spread by
    /// the jitter, plus the fixed amount.
    pub fn delay(&self, retry: u32) -> Duration {
        if retry.max(1) <= self.immediate {
            return Duration::ZERO;
        }
        let ceiling = self.ceiling(retry);
        let jittered = match self.jitter {
            Jitter::None => ceiling,
            Jitter::Full => ceiling.mul_f64(rand::random::<f64>()),
            Jitter::Equal => {
                let half = ceiling / 2;
                half + half.mul_f64(rand::random::<f64>())
            }
        };
        jittered.saturating_add(self.plus)
    }

    /// The retries of one operation, for a loop that cannot be a closure (see [`Retries`]).
    pub const fn retries(&self) -> Retries {
        Retries {
            policy: *self,
            done: 0,
        }
    }
}

/// The retries one operation has made under a [`Backoff`].
#[derive(Clone, Debug)]
pub struct Retries {
    policy: Backoff,
    done: u32,
}

impl Retries {
    /// Counts one more retry and says how long to wait before it, or `None` when the attempts
    /// are spent (the caller gives up with the error it has).
    pub fn next_delay(&mut self) -> Option<Duration> {
        if self.done.saturating_add(1) >= self.policy.attempts {
            return None;
        }
        self.done += 1;
        Some(self.policy.delay(self.done))
    }

    /// The retries made so far.
    pub fn count(&self) -> u32 {
        self.done
    }
}

/// Waits `pause`; a zero pause only yields, so the tasks that made the contended change first
/// can finish it.
pub async fn pause(how_long: Duration) {
    if how_long.is_zero() {
        tokio::task::yield_now().await;
    } else {
        tokio::time::sleep(how_long).await;
    }
}

/// Runs `op` until it succeeds, fails with an error `retryable` refuses, or has made the
/// policy's attempts; pausing as the policy says between attempts. The error returned is the
/// last one, so a caller tells "gave up" from "refused" by the error itself.
pub async fn retry<T, E, F, Fut>(
    policy: &Backoff,
    mut op: F,
    mut retryable: impl FnMut(&E) -> bool,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut retries = policy.retries();
    loop {
        match op().await {
            Ok(value) => return Ok(value),
            Err(e) if !retryable(&e) => return Err(e),
            Err(e) => match retries.next_delay() {
                Some(p) => pause(p).await,
                None => return Err(e),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn pauses_grow_by_the_factor_and_stop_at_the_cap() {
        let policy = Backoff::new(100 * MS, 5000 * MS);
        let ceilings: Vec<u128> = (1..10).map(|r| policy.ceiling(r).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        // No jitter: the pause is the ceiling.
        assert_eq!(policy.delay(3), 400 * MS);
        // Retry 0 is taken as the first, and a huge retry number stays at the cap.
        assert_eq!(policy.ceiling(0), 100 * MS);
        assert_eq!(policy.ceiling(u32::MAX), 5000 * MS);
        let tripled = Backoff::new(MS, Duration::from_secs(3600)).factor(3);
        assert_eq!(tripled.ceiling(4), 27 * MS);
        let constant = Backoff::new(50 * MS, Duration::from_secs(1)).factor(1);
        assert_eq!(constant.ceiling(1_000_000), 50 * MS);
        let none = Backoff::new(Duration::ZERO, MS);
        assert_eq!(none.ceiling(u32::MAX), Duration::ZERO);
    }

    #[test]
    fn jitter_stays_within_its_bounds_and_varies() {
        let policy = Backoff::new(10 * MS, 320 * MS);
        for retry in 1..12 {
            let ceiling = policy.ceiling(retry);
            let equal: Vec<Duration> = (0..64)
                .map(|_| policy.jitter(Jitter::Equal).delay(retry))
                .collect();
            let full: Vec<Duration> = (0..64)
                .map(|_| policy.jitter(Jitter::Full).delay(retry))
                .collect();
            assert!(equal.iter().all(|p| *p >= ceiling / 2 && *p <= ceiling));
            assert!(full.iter().all(|p| *p <= ceiling));
            // Random: not one pause for everyone who failed at the same instant.
            for pauses in [&equal, &full] {
                assert!(pauses.iter().any(|p| *p != pauses[0]), "{pauses:?}");
            }
        }
        let floored = policy.jitter(Jitter::Full).plus(Duration::from_micros(500));
        for _ in 0..64 {
            let p = floored.delay(1);
            assert!(p >= Duration::from_micros(500) && p <= Duration::from_micros(10_500));
        }
    }

    #[test]
    fn immediate_retries_come_first_without_a_pause() {
        let policy = Backoff::new(MS, 32 * MS)
            .immediate_retries(2)
            .plus(Duration::from_micros(500));
        assert_eq!(policy.delay(1), Duration::ZERO);
        assert_eq!(policy.delay(2), Duration::ZERO);
        assert_eq!(policy.ceiling(3), MS);
        assert_eq!(policy.delay(3), MS + Duration::from_micros(500));
        assert_eq!(policy.ceiling(8), 32 * MS);
    }

    #[test]
    fn the_attempts_are_bounded() {
        let mut retries = Backoff::new(MS, 8 * MS).attempts(4).retries();
        let pauses: Vec<Option<Duration>> = (0..5).map(|_| retries.next_delay()).collect();
        assert_eq!(
            pauses,
            [Some(MS), Some(2 * MS), Some(4 * MS), None, None],
            "four attempts: three retries"
        );
        assert_eq!(retries.count(), 3);
        let mut once = Backoff::new(MS, MS).attempts(1).retries();
        assert_eq!(once.next_delay(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_stops_after_the_last_attempt_with_its_error() {
        let calls = Cell::new(0u32);
        let policy = Backoff::new(10 * MS, 40 * MS).attempts(5);
        let started = tokio::time::Instant::now();
        let result: Result<(), u32> = retry(
            &policy,
            || {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move { Err(n) }
            },
            |_| true,
        )
        .await;
        assert_eq!(result, Err(5), "the last attempt's error");
        assert_eq!(calls.get(), 5);
        // 10 + 20 + 40 + 40 ms of pauses between the five attempts.
        assert_eq!(started.elapsed(), 110 * MS);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_returns_an_error_it_may_not_retry_at_once() {
        let calls = Cell::new(0u32);
        let started = tokio::time::Instant::now();
        let result: Result<(), &str> = retry(
            &Backoff::new(Duration::from_secs(1), Duration::from_secs(1)).attempts(10),
            || {
                calls.set(calls.get() + 1);
                async { Err("refused") }
            },
            |e| *e != "refused",
        )
        .await;
        assert_eq!(result, Err("refused"));
        assert_eq!(calls.get(), 1);
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_returns_the_first_success() {
        let calls = Cell::new(0u32);
        let result: Result<u32, &str> = retry(
            &Backoff::new(MS, MS).attempts(10),
            || {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move { if n < 3 { Err("busy") } else { Ok(n) } }
            },
            |_| true,
        )
        .await;
        assert_eq!(result, Ok(3));
    }
}
