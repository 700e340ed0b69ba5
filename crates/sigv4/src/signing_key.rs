//! SigV4 signing-key derivation and a small, bounded cache of derived keys.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::authorization::TERMINATOR;

type HmacSha256 = Hmac<Sha256>;

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// `kSigning`, the key that signs the string to sign. Zeroized on drop; its
/// `Debug` shows nothing.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct SigningKey([u8; 32]);

impl SigningKey {
    /// The HMAC chain `"AWS4" + secret → date → region → service → aws4_request`.
    pub(crate) fn derive(secret_access_key: &str, date: &str, region: &str, service: &str) -> Self {
        let mut secret = Zeroizing::new(Vec::with_capacity(4 + secret_access_key.len()));
        secret.extend_from_slice(b"AWS4");
        secret.extend_from_slice(secret_access_key.as_bytes());
        let k_date = Zeroizing::new(hmac_sha256(&secret, date.as_bytes()));
        let k_region = Zeroizing::new(hmac_sha256(&*k_date, region.as_bytes()));
        let k_service = Zeroizing::new(hmac_sha256(&*k_region, service.as_bytes()));
        Self(hmac_sha256(&*k_service, TERMINATOR.as_bytes()))
    }

    /// HMAC-SHA256 of `data` under this key.
    pub(crate) fn sign(&self, data: &[u8]) -> [u8; 32] {
        hmac_sha256(&self.0, data)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

/// Cache key. The secret is represented by a SHA-256 fingerprint, never by the
/// access key id alone: when a secret is rotated under the same access key id
/// the old derived key must not be reused.
#[derive(PartialEq, Eq, Hash, Zeroize, ZeroizeOnDrop)]
struct CacheKey {
    secret_fingerprint: [u8; 32],
    date: String,
    region: String,
    service: String,
}

struct CachedKey {
    key: SigningKey,
    /// Insertion order, for evicting the oldest entry.
    inserted: u64,
}

#[derive(Default)]
struct CacheState {
    entries: HashMap<CacheKey, CachedKey>,
    next_insertion: u64,
}

/// A thread-safe cache of derived signing keys, at most `capacity` entries.
///
/// A key is valid for one (secret, date, region, service): a busy server needs
/// one entry per access key and region per day, so the bound is generous. When
/// full, entries for other dates go first (yesterday's keys are dead weight),
/// then the oldest entry. Evicted keys are zeroized.
pub(crate) struct SigningKeyCache {
    state: Mutex<CacheState>,
    capacity: usize,
}

impl SigningKeyCache {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            state: Mutex::new(CacheState::default()),
            capacity: capacity.max(1),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().entries.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheState> {
        // The state is a plain map; a panic elsewhere cannot leave it torn.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Returns the cached key or derives (and caches) it. Derivation runs
    /// outside the lock.
    pub(crate) fn get_or_derive(
        &self,
        secret_access_key: &str,
        date: &str,
        region: &str,
        service: &str,
    ) -> SigningKey {
        let mut fingerprint = Sha256::new();
        fingerprint.update(b"coffer-sigv4 signing-key cache\0");
        fingerprint.update(secret_access_key.as_bytes());
        let cache_key = CacheKey {
            secret_fingerprint: fingerprint.finalize().into(),
            date: date.to_owned(),
            region: region.to_owned(),
            service: service.to_owned(),
        };
        if let Some(cached) = self.lock().entries.get(&cache_key) {
            return cached.key.clone();
        }

        let key = SigningKey::derive(secret_access_key, date, region, service);
        let mut state = self.lock();
        if state.entries.len() >= self.capacity {
            state.entries.retain(|existing, _| existing.date == date);
        }
        if state.entries.len() >= self.capacity {
            let oldest = state
                .entries
                .iter()
                .min_by_key(|(_, cached)| cached.inserted)
                .map(|(existing, _)| CacheKey {
                    secret_fingerprint: existing.secret_fingerprint,
                    date: existing.date.clone(),
                    region: existing.region.clone(),
                    service: existing.service.clone(),
                });
            if let Some(oldest) = oldest {
                state.entries.remove(&oldest);
            }
        }
        let inserted = state.next_insertion;
        state.next_insertion += 1;
        state.entries.insert(
            cache_key,
            CachedKey {
                key: key.clone(),
                inserted,
            },
        );
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    #[test]
    fn derived_key_matches_the_aws_documentation_example() {
        // "Examples of how to derive a signing key for Signature Version 4",
        // AWS General Reference: 20120215 / us-east-1 / iam.
        let key = SigningKey::derive(SECRET, "20120215", "us-east-1", "iam");
        assert_eq!(
            hex::encode(key.0),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }

    #[test]
    fn cache_hit_returns_the_same_key() {
        let cache = SigningKeyCache::with_capacity(8);
        let first = cache.get_or_derive(SECRET, "20150830", "us-east-1", "service");
        let second = cache.get_or_derive(SECRET, "20150830", "us-east-1", "service");
        assert_eq!(first.0, second.0);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn another_secret_gets_its_own_entry() {
        let cache = SigningKeyCache::with_capacity(8);
        let old = cache.get_or_derive(SECRET, "20150830", "us-east-1", "service");
        let new = cache.get_or_derive("rotated", "20150830", "us-east-1", "service");
        assert_ne!(old.0, new.0);
        assert_eq!(
            new.0,
            SigningKey::derive("rotated", "20150830", "us-east-1", "service").0
        );
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn scope_elements_are_part_of_the_cache_key() {
        let cache = SigningKeyCache::with_capacity(8);
        let base = cache.get_or_derive(SECRET, "20150830", "us-east-1", "service");
        for (date, region, service) in [
            ("20150831", "us-east-1", "service"),
            ("20150830", "eu-west-1", "service"),
            ("20150830", "us-east-1", "secretsmanager"),
        ] {
            let other = cache.get_or_derive(SECRET, date, region, service);
            assert_ne!(base.0, other.0);
            assert_eq!(other.0, SigningKey::derive(SECRET, date, region, service).0);
        }
        assert_eq!(cache.len(), 4);
    }

    #[test]
    fn full_cache_drops_other_dates_first_then_the_oldest_entry() {
        let cache = SigningKeyCache::with_capacity(3);
        cache.get_or_derive("a", "20150829", "r", "s");
        cache.get_or_derive("b", "20150830", "r", "s");
        cache.get_or_derive("c", "20150830", "r", "s");
        // Full: the 20150829 entry goes.
        cache.get_or_derive("d", "20150830", "r", "s");
        assert_eq!(cache.len(), 3);
        // Full, all one date: the oldest ("b") goes; "c" and "d" stay hits.
        cache.get_or_derive("e", "20150830", "r", "s");
        assert_eq!(cache.len(), 3);
        let state = cache.lock();
        let mut order: Vec<u64> = state.entries.values().map(|c| c.inserted).collect();
        order.sort_unstable();
        assert_eq!(order, [2, 3, 4]);
    }

    #[test]
    fn debug_output_hides_key_material() {
        let key = SigningKey::derive(SECRET, "20150830", "us-east-1", "service");
        let shown = format!("{key:?}");
        assert_eq!(shown, "SigningKey(<redacted>)");
        assert!(!shown.contains(&hex::encode(key.0)));
    }
}
