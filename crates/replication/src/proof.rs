//! The sender's proof: a header that lets the receiving node refuse a replication message
//! before it reads the body.
//!
//! The sealed body already proves its sender ([`crate::envelope`]), but only once it has been
//! read whole; anyone who can reach `/internal/replication` could otherwise make a node buffer
//! large bodies. The proof binds the headers to the two Regions' static keys:
//!
//! ```text
//! x-coffer-sender-proof = <unix seconds> "." hex(HMAC-SHA256(key, data))
//! key  = HKDF-SHA256(ikm = X25519(source static, destination static),
//!                    info = "coffer replication proof v1")
//! data = source \0 destination \0 kind \0 content length \0 unix seconds
//! ```
//!
//! Only the two Regions' key holders can compute it; it names the body's length, so a replayed
//! header admits no more bytes than the message it came with, and it expires after
//! [`MAX_SKEW_SECS`] (a replayed body is harmless anyway: applying is idempotent).

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::envelope::{PublicKey, RegionKeyPair};

pub const PROOF_HEADER: &str = "x-coffer-sender-proof";
/// How far the proof's time may be from the receiver's clock, either way.
pub const MAX_SKEW_SECS: i64 = 300;

/// The wall clock the proof is made and checked with, in seconds (not a Region's clock: the
/// proof's freshness is about the network).
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn mac(
    own: &RegionKeyPair,
    other: &PublicKey,
    source: &str,
    dest: &str,
    kind: &str,
    length: u64,
    secs: i64,
) -> [u8; 32] {
    let shared = own.shared_secret(other);
    let mut key = zeroize::Zeroizing::new([0u8; 32]);
    hkdf_sha256(&shared[..], b"coffer replication proof v1", &mut key);
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&key[..]).expect("HMAC takes any key");
    for part in [source.as_bytes(), dest.as_bytes(), kind.as_bytes()] {
        m.update(part);
        m.update(b"\0");
    }
    m.update(length.to_string().as_bytes());
    m.update(b"\0");
    m.update(secs.to_string().as_bytes());
    m.finalize().into_bytes().into()
}

/// HKDF-SHA256 with an empty salt, one block of output.
fn hkdf_sha256(ikm: &[u8], info: &[u8], out: &mut [u8; 32]) {
    let mut extract = <Hmac<Sha256> as Mac>::new_from_slice(&[0u8; 32]).expect("HMAC key");
    extract.update(ikm);
    let prk = extract.finalize().into_bytes();
    let mut expand = <Hmac<Sha256> as Mac>::new_from_slice(&prk).expect("HMAC key");
    expand.update(info);
    expand.update(&[1]);
    out.copy_from_slice(&expand.finalize().into_bytes());
}

/// The header value the source Region sends with a body of `length` bytes.
pub fn make(
    source_keys: &RegionKeyPair,
    dest_public: &PublicKey,
    source: &str,
    dest: &str,
    kind: &str,
    length: u64,
    now_secs: i64,
) -> String {
    let tag = mac(
        source_keys,
        dest_public,
        source,
        dest,
        kind,
        length,
        now_secs,
    );
    format!("{now_secs}.{}", hex::encode(tag))
}

/// Whether `header` proves that `source` sent these headers to `dest` (checked with the
/// destination's keys) within [`MAX_SKEW_SECS`] of `now_secs`.
#[allow(clippy::too_many_arguments)]
pub fn check(
    dest_keys: &RegionKeyPair,
    source_public: &PublicKey,
    source: &str,
    dest: &str,
    kind: &str,
    length: u64,
    header: &str,
    now_secs: i64,
) -> bool {
    let Some((secs, tag)) = header.split_once('.') else {
        return false;
    };
    let (Ok(secs), Ok(tag)) = (secs.parse::<i64>(), hex::decode(tag)) else {
        return false;
    };
    if (now_secs - secs).abs() > MAX_SKEW_SECS || tag.len() != 32 {
        return false;
    }
    let want = mac(dest_keys, source_public, source, dest, kind, length, secs);
    bool::from(want.ct_eq(&tag[..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffer_kms::RootKey;

    fn keys(region: &str, seed: u8) -> RegionKeyPair {
        RegionKeyPair::derive(
            &RootKey::from_hex(&format!("{seed:02x}").repeat(32)).unwrap(),
            region,
        )
    }

    #[test]
    fn a_proof_opens_only_for_its_regions_kind_length_and_time() {
        let (west, east, eu) = (
            keys("us-west-2", 1),
            keys("us-east-1", 2),
            keys("eu-west-1", 3),
        );
        let now = 1_800_000_000;
        let proof = make(
            &west,
            &east.public_key(),
            "us-west-2",
            "us-east-1",
            "sync",
            1000,
            now,
        );
        let ok = |dest: &RegionKeyPair, src: &PublicKey, kind: &str, len: u64, at: i64| {
            check(dest, src, "us-west-2", "us-east-1", kind, len, &proof, at)
        };
        assert!(ok(&east, &west.public_key(), "sync", 1000, now));
        assert!(ok(
            &east,
            &west.public_key(),
            "sync",
            1000,
            now + MAX_SKEW_SECS
        ));
        assert!(!ok(
            &east,
            &west.public_key(),
            "sync",
            1000,
            now + MAX_SKEW_SECS + 1
        ));
        assert!(
            !ok(&east, &west.public_key(), "sync", 1001, now),
            "another length"
        );
        assert!(
            !ok(&east, &west.public_key(), "remove", 1000, now),
            "another kind"
        );
        assert!(
            !ok(&east, &eu.public_key(), "sync", 1000, now),
            "another sender"
        );
        assert!(
            !ok(&eu, &west.public_key(), "sync", 1000, now),
            "another receiver"
        );
        assert!(!check(
            &east,
            &west.public_key(),
            "us-west-2",
            "us-east-1",
            "sync",
            1000,
            "1800000000.00",
            now
        ));
    }
}
