//! Sign-in throttling: a token bucket per source address (every attempt takes a token) and one
//! per access key id (every *failed* attempt takes a token). A bucket holds a minute's worth of
//! attempts and refills continuously, so a client that keeps within the rate never waits and a
//! guesser gets that many tries a minute at most. Refused attempts are answered `429` with
//! `Retry-After`, before the key is looked up.
//!
//! The per-key bucket counts failures only, so the key's owner is not locked out by their own
//! successes; someone guessing at a key slows down that key's sign-ins (not its API calls, and
//! not other keys') until the guessing stops.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Buckets kept at most per kind; past it, full (idle) buckets are dropped.
const MAX_BUCKETS: usize = 50_000;

struct Bucket {
    tokens: f64,
    at: Instant,
}

struct Buckets {
    per_minute: u32,
    map: Mutex<HashMap<String, Bucket>>,
}

impl Buckets {
    fn new(per_minute: u32) -> Buckets {
        Buckets {
            per_minute: per_minute.max(1),
            map: Mutex::new(HashMap::new()),
        }
    }

    fn refill(&self, b: &mut Bucket, now: Instant) {
        let capacity = self.per_minute as f64;
        let rate = capacity / 60.0;
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(capacity);
        b.at = now;
    }

    /// Takes a token if `take`, else only checks that one is there; `Err(wait)` when empty.
    fn check(&self, key: &str, now: Instant, take: bool) -> Result<(), Duration> {
        let capacity = self.per_minute as f64;
        let mut map = self.map.lock().expect("throttle lock");
        if map.len() >= MAX_BUCKETS && !map.contains_key(key) {
            map.retain(|_, b| {
                let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
                b.tokens + elapsed * capacity / 60.0 < capacity
            });
        }
        let bucket = map.entry(key.to_string()).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        self.refill(bucket, now);
        if bucket.tokens < 1.0 {
            let wait = (1.0 - bucket.tokens) * 60.0 / capacity;
            return Err(Duration::from_secs_f64(wait.max(1.0)));
        }
        if take {
            bucket.tokens -= 1.0;
        }
        Ok(())
    }
}

pub struct SignInThrottle {
    per_address: Buckets,
    per_key: Buckets,
}

impl SignInThrottle {
    pub fn new(per_address_per_minute: u32, failures_per_key_per_minute: u32) -> SignInThrottle {
        SignInThrottle {
            per_address: Buckets::new(per_address_per_minute),
            per_key: Buckets::new(failures_per_key_per_minute),
        }
    }

    /// An attempt from `address`: `Err(wait)` when it has used its minute's worth.
    pub fn attempt_from(&self, address: &str, now: Instant) -> Result<(), Duration> {
        self.per_address.check(address, now, true)
    }

    /// Whether `access_key_id` may try now (it has failures left this minute).
    pub fn key_may_try(&self, access_key_id: &str, now: Instant) -> Result<(), Duration> {
        self.per_key.check(access_key_id, now, false)
    }

    /// A failed attempt for `access_key_id`.
    pub fn key_failed(&self, access_key_id: &str, now: Instant) {
        let _ = self.per_key.check(access_key_id, now, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_minutes_worth_then_waits_then_refills() {
        let t = SignInThrottle::new(5, 100);
        let t0 = Instant::now();
        for _ in 0..5 {
            t.attempt_from("192.0.2.1", t0).unwrap();
        }
        let wait = t.attempt_from("192.0.2.1", t0).unwrap_err();
        assert!(
            wait >= Duration::from_secs(1) && wait <= Duration::from_secs(12),
            "{wait:?}"
        );
        // Another address is not affected; after 12 s one more attempt is allowed.
        t.attempt_from("192.0.2.2", t0).unwrap();
        t.attempt_from("192.0.2.1", t0 + Duration::from_secs(12))
            .unwrap();
    }

    #[test]
    fn only_failures_use_up_a_keys_attempts() {
        let t = SignInThrottle::new(1000, 3);
        let t0 = Instant::now();
        for _ in 0..10 {
            t.key_may_try("AKIAGOOD", t0).unwrap();
        }
        for _ in 0..3 {
            t.key_may_try("AKIAGUESSED", t0).unwrap();
            t.key_failed("AKIAGUESSED", t0);
        }
        assert!(t.key_may_try("AKIAGUESSED", t0).is_err());
        t.key_may_try("AKIAGOOD", t0).unwrap();
    }
}
