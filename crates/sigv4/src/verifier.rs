//! The verification steps after parsing: clock skew, scope date, signature.

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use http::{HeaderMap, Method, Uri};
use std::fmt;
use zeroize::Zeroizing;

use crate::authorization::Authorization;
use crate::canonical;
use crate::error::{MAX_CLOCK_SKEW_MINUTES, SigV4Error};
use crate::signing_key::SigningKeyCache;

/// Derived keys kept at most. One per (secret, day, region, service) in use.
const SIGNING_KEY_CACHE_CAPACITY: usize = 1024;

/// Verifies SigV4 signatures; holds a bounded, thread-safe cache of derived
/// signing keys keyed on (fingerprint of the secret, date, region, service).
///
/// Share one `Verifier` across the server (`Arc<Verifier>` or a field of the
/// app state); it is `Send + Sync`.
pub struct Verifier {
    signing_keys: SigningKeyCache,
}

impl Default for Verifier {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("cached_signing_keys", &self.signing_keys.len())
            .finish()
    }
}

impl Verifier {
    /// A verifier with an empty signing-key cache.
    pub fn new() -> Self {
        Self {
            signing_keys: SigningKeyCache::with_capacity(SIGNING_KEY_CACHE_CAPACITY),
        }
    }

    /// Checks a parsed request against the caller's secret access key.
    ///
    /// In order, first failure wins:
    /// 1. request time within ±5 minutes of `now` → else `Signature expired` /
    ///    `Signature not yet current`;
    /// 2. credential-scope date equal to the date of `X-Amz-Date` → else
    ///    `Date in Credential scope does not match …`;
    /// 3. signature recomputed from `method`, `uri`, the client's
    ///    `SignedHeaders` taken from `headers`, and the *raw* `body` bytes,
    ///    compared in constant time → else the standard mismatch error, which
    ///    carries the canonical request and string to sign like AWS's does.
    ///
    /// Pass `uri` and `headers` exactly as received: the `Host` header (or the
    /// HTTP/2 authority in `uri`) must be what the client signed, port included.
    /// Pass `body` untouched: clients hash the bytes they sent (boto3's JSON has
    /// spaces), so never re-serialise before verifying.
    #[allow(clippy::too_many_arguments)] // the signature the HTTP layer was promised
    pub fn verify(
        &self,
        auth: &Authorization,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
        secret_access_key: &str,
        now: DateTime<Utc>,
    ) -> Result<(), SigV4Error> {
        check_clock_skew(auth.request_time, now)?;
        check_scope_date(auth)?;

        let payload_hash = canonical::payload_hash(headers, body, &auth.service);
        let canonical_request = canonical::canonical_request(
            method,
            uri,
            headers,
            &auth.signed_headers,
            &auth.service,
            &payload_hash,
        );
        let string_to_sign = canonical::string_to_sign(
            &auth.amz_date,
            &auth.scope_date,
            &auth.region,
            &auth.service,
            &canonical_request,
        );
        let signing_key = self.signing_keys.get_or_derive(
            secret_access_key,
            &auth.scope_date,
            &auth.region,
            &auth.service,
        );
        // The correct signature would authenticate this request: wipe it.
        let expected = Zeroizing::new(hex::encode(signing_key.sign(string_to_sign.as_bytes())));
        if auth.signature().matches(expected.as_bytes()) {
            Ok(())
        } else {
            Err(SigV4Error::signature_mismatch(
                String::from_utf8_lossy(&canonical_request).into_owned(),
                string_to_sign,
            ))
        }
    }
}

/// ±5 minutes, inclusive at both ends, at whole-second precision (the request
/// time has none finer, and the messages print seconds).
fn check_clock_skew(request_time: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), SigV4Error> {
    let now = now.trunc_subsecs(0);
    let skew = TimeDelta::minutes(MAX_CLOCK_SKEW_MINUTES);
    if request_time < now - skew {
        return Err(SigV4Error::SignatureExpired { request_time, now });
    }
    if request_time > now + skew {
        return Err(SigV4Error::SignatureNotYetCurrent { request_time, now });
    }
    Ok(())
}

/// The scope date must be the `yyyymmdd` of the request time, even when the
/// two are seconds apart across midnight \[D: "Handling dates in SigV4"\].
fn check_scope_date(auth: &Authorization) -> Result<(), SigV4Error> {
    if auth.amz_date.get(..8) == Some(auth.scope_date.as_str()) {
        Ok(())
    } else {
        Err(SigV4Error::ScopeDateMismatch {
            scope_date: auth.scope_date.clone(),
            amz_date: auth.amz_date.clone(),
        })
    }
}
