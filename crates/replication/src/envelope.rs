//! Sealed replication messages: authenticated as coming from the source Region and readable only
//! by the destination Region.
//!
//! Replication messages travel between nodes over plain HTTP, possibly through proxies, and a
//! node may be sent messages meant for another Region by a misconfigured peer. Rather than trust
//! the transport, every message is sealed end to end, so that neither a proxy nor a wrong peer can
//! read or forge one.
//!
//! # Keys
//!
//! Each Region has a static X25519 key pair ([`RegionKeyPair`]) derived deterministically from
//! that Region's root key, so there is no extra key file to create, back up or lose:
//!
//! ```text
//! secret = HKDF-SHA256(ikm = root key, salt = none,
//!                      info = "coffer-kms subkey\0" || "coffer replication x25519 v1\0" || region)
//! ```
//!
//! (see [`coffer_kms::RootKey::derive_subkey`]); the 32 bytes are used as the X25519 private key
//! (clamped as RFC 7748 says). Only the public key ([`PublicKey`], 44 characters of standard
//! base64) leaves the node: peers are configured as Region → URL + public key. Re-keying the root
//! key changes the Region's replication key too, and its peers must be given the new public key.
//!
//! # Construction
//!
//! HPKE (RFC 9180) in **Auth mode**, single shot, with the suite DHKEM(X25519, HKDF-SHA256),
//! HKDF-SHA256, AES-256-GCM, implemented by the `hpke` crate:
//!
//! ```text
//! sealed = format=1 (1) || enc (32) || AES-256-GCM ciphertext || tag (16)
//!
//! mode = mode_auth: skS = source Region's static key, pkR = destination Region's public key
//! info = "coffer replication v1\0"
//!        || len(source region) (8, big-endian) || source region
//!        || len(destination region) (8, big-endian) || destination region
//! aad  = the caller's context (the message kind)
//! ```
//!
//! `enc` is a fresh ephemeral X25519 public key, so sealing the same plaintext twice gives
//! different bytes.
//!
//! - **Confidentiality to the recipient**: the key schedule depends on `DH(skE, pkR)`, which only
//!   the holder of the destination Region's private key can recompute.
//! - **Authenticity of the sender**: Auth mode also mixes in `DH(skS, pkR)`, the static-static
//!   secret of the two Regions. Only the holder of the source Region's private key (or of the
//!   recipient's) can produce a message that opens under the source Region's public key. A third
//!   node that seals to B while claiming to be A fails at B, as does anything a proxy alters.
//! - **Binding of names and context**: both Region names are in `info` (length-prefixed, so no two
//!   pairs of names encode alike) and the caller's context is the AEAD's associated data. A
//!   message sealed from A to B does not open as a message from C, nor as one to C (even at a node
//!   holding B's key under another name), nor with the names swapped, nor as another kind of
//!   message.
//!
//! Every failure to open is the same error ([`EnvelopeError::Open`]): wrong keys, wrong names,
//! wrong context and damaged bytes are deliberately indistinguishable.
//!
//! Auth mode does not give the sender forward secrecy against compromise of the *recipient's*
//! static key, nor does it protect against key-compromise impersonation (someone holding B's
//! private key can forge messages from anyone to B). Both are acceptable here: whoever holds B's
//! root key already holds all of B's secrets.
//!
//! # Replays
//!
//! There is **no replay protection at this level**: a recorded message, re-sent unchanged from A
//! to B, opens again. That is handled one level up: every replicated change carries its
//! per-origin sequence number, and applying a change is idempotent (a change at or below the
//! sequence number already applied is acknowledged and ignored), so a replay changes nothing.
//! What the envelope does guarantee is that a message cannot be replayed *under different Region
//! names* or as a different kind of message.
//!
//! # Versioning
//!
//! The first byte names the format (today `1`, matching the `v1` in `info`); unknown formats are
//! rejected, never guessed at, so a later format can be introduced alongside.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use coffer_kms::RootKey;
use hpke::aead::AesGcm256;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use rand::rngs::OsRng;
use zeroize::{ZeroizeOnDrop, Zeroizing};

type Kem = X25519HkdfSha256;
type KemPrivateKey = <Kem as hpke::Kem>::PrivateKey;
type KemPublicKey = <Kem as hpke::Kem>::PublicKey;
type EncappedKey = <Kem as hpke::Kem>::EncappedKey;

/// First byte of a sealed message.
pub const FORMAT_V1: u8 = 1;
/// Length of an X25519 public key, and of the encapsulated (ephemeral) key in a message.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of the AES-256-GCM tag.
const TAG_LEN: usize = 16;
/// What sealing adds to the plaintext: format byte, encapsulated key and tag.
pub const OVERHEAD: usize = 1 + PUBLIC_KEY_LEN + TAG_LEN;
/// Length of a public key in standard base64 with padding.
pub const PUBLIC_KEY_BASE64_LEN: usize = 44;

/// Label given to [`RootKey::derive_subkey`], followed by the Region name.
const KEY_DERIVATION_LABEL: &str = "coffer replication x25519 v1\0";
/// Start of the HPKE `info`; the Region names follow.
const INFO_LABEL: &[u8] = b"coffer replication v1\0";

// The private key sits in an `x25519_dalek::StaticSecret` inside `hpke`'s wrapper. It is wiped on
// drop only with x25519-dalek's `zeroize` feature (`#[zeroize(drop)]`), which this crate turns
// on; the same feature is what implements `Zeroize` for it, so this fails to compile if that ever
// stops being so.
const _: fn() = || {
    fn wiped_on_drop<T: zeroize::Zeroize>() {}
    wiped_on_drop::<x25519_dalek::StaticSecret>();
};

/// A Region's static X25519 key pair for replication, derived from its root key.
///
/// The private key is wiped from memory on drop; `Debug` shows only the public key.
pub struct RegionKeyPair {
    secret: KemPrivateKey,
    public: KemPublicKey,
}

// The private key's `StaticSecret` zeroizes itself on drop (checked above).
impl ZeroizeOnDrop for RegionKeyPair {}

impl fmt::Debug for RegionKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegionKeyPair")
            .field("public_key", &self.public_key().to_base64())
            .finish_non_exhaustive()
    }
}

impl RegionKeyPair {
    /// Derives `region`'s replication key pair from its root key. The same root key and Region
    /// name always give the same key pair; another Region name (or root key) gives an unrelated
    /// one.
    pub fn derive(root: &RootKey, region: &str) -> RegionKeyPair {
        let label = format!("{KEY_DERIVATION_LABEL}{region}");
        let secret_bytes = root.derive_subkey(&label);
        let secret = KemPrivateKey::from_bytes(&secret_bytes[..])
            .expect("an X25519 private key is any 32 bytes");
        let public = Kem::sk_to_pk(&secret);
        RegionKeyPair { secret, public }
    }

    /// The static-static X25519 secret shared with the holder of `peer`'s private key (the
    /// same value on both sides: `DH(a, B) = DH(b, A)`), for the sender's proof header
    /// ([`crate::proof`]), which lets a node refuse a message before it reads its body.
    pub fn shared_secret(&self, peer: &PublicKey) -> Zeroizing<[u8; 32]> {
        let mut mine: Zeroizing<[u8; 32]> = Zeroizing::new([0u8; 32]);
        mine.copy_from_slice(&self.secret.to_bytes());
        let secret = x25519_dalek::StaticSecret::from(*mine);
        Zeroizing::new(
            secret
                .diffie_hellman(&x25519_dalek::PublicKey::from(peer.0))
                .to_bytes(),
        )
    }

    /// The public half, to give to the Region's peers.
    pub fn public_key(&self) -> PublicKey {
        let bytes: [u8; PUBLIC_KEY_LEN] = self.public.to_bytes().into();
        PublicKey(bytes)
    }
}

/// A Region's replication public key: an X25519 public key, written as 44 characters of standard
/// base64 (with `=` padding).
///
/// Constructed only from a [`RegionKeyPair`] or by parsing, which rejects the few points of low
/// order (their Diffie-Hellman result is all zeros whatever the private key), so sealing to any
/// `PublicKey` always succeeds.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PublicKey([u8; PUBLIC_KEY_LEN]);

impl PublicKey {
    /// Standard base64 with padding: always 44 characters.
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0)
    }

    /// Parses [`PublicKey::to_base64`]'s output. Surrounding whitespace (a trailing newline) is
    /// ignored; anything else that is not exactly 32 bytes in canonical standard base64 with
    /// padding, or that is a point of low order, is [`EnvelopeError::InvalidPublicKey`].
    pub fn from_base64(s: &str) -> Result<PublicKey, EnvelopeError> {
        let s = s.trim();
        if s.len() != PUBLIC_KEY_BASE64_LEN {
            return Err(EnvelopeError::InvalidPublicKey(
                "not 44 characters of base64",
            ));
        }
        let mut bytes = [0u8; PUBLIC_KEY_LEN];
        match BASE64.decode_slice(s, &mut bytes) {
            Ok(PUBLIC_KEY_LEN) => Self::from_bytes(bytes),
            _ => Err(EnvelopeError::InvalidPublicKey(
                "not canonical standard base64 of 32 bytes",
            )),
        }
    }

    /// The key from its 32 raw bytes, rejecting points of low order.
    pub fn from_bytes(bytes: [u8; PUBLIC_KEY_LEN]) -> Result<PublicKey, EnvelopeError> {
        // A clamped scalar is a multiple of 8 and below the order of the prime-order subgroup
        // (times 8), so its Diffie-Hellman result with a point is all zeros exactly when the
        // point's order divides 8: any fixed private key tells the low-order points apart.
        let probe = x25519_dalek::StaticSecret::from([1u8; 32]);
        let shared = probe.diffie_hellman(&x25519_dalek::PublicKey::from(bytes));
        if !shared.was_contributory() {
            return Err(EnvelopeError::InvalidPublicKey("a point of low order"));
        }
        Ok(PublicKey(bytes))
    }

    /// The 32 raw bytes.
    pub fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.0
    }

    fn to_kem(&self) -> KemPublicKey {
        KemPublicKey::from_bytes(&self.0).expect("an X25519 public key is any 32 bytes")
    }
}

impl fmt::Display for PublicKey {
    /// The base64 form, as in a peer's configuration.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl FromStr for PublicKey {
    type Err = EnvelopeError;

    fn from_str(s: &str) -> Result<PublicKey, EnvelopeError> {
        PublicKey::from_base64(s)
    }
}

impl serde::Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_base64())
    }
}

impl<'de> serde::Deserialize<'de> for PublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<PublicKey, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        PublicKey::from_base64(&s).map_err(serde::de::Error::custom)
    }
}

/// Why a public key did not parse or a sealed message did not open. The messages name Region
/// names and lengths, never key material or message contents.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// A replication public key in a peer's configuration is not valid.
    #[error("invalid replication public key: {0}")]
    InvalidPublicKey(&'static str),
    /// The input is too short to be a sealed message.
    #[error("sealed replication message too short: {len} bytes, at least {OVERHEAD} expected")]
    Truncated {
        /// Length of the input.
        len: usize,
    },
    /// The first byte names a format this version does not know.
    #[error("sealed replication message has unknown format {0}")]
    UnsupportedFormat(u8),
    /// Authentication failed: the message was not sealed by `from_region`'s key for
    /// `to_region`'s key under those names and this context, or it was altered on the way.
    #[error(
        "sealed replication message from Region {from_region:?} to Region {to_region:?} did not \
         open: wrong keys, Region names or message kind, or damaged"
    )]
    Open {
        /// The Region the message claimed to come from.
        from_region: String,
        /// The Region that tried to open it.
        to_region: String,
    },
}

/// Seals `plaintext` from `source_region` (whose key pair is `sender`) for `dest_region` (whose
/// public key is `recipient`), binding `aad` (the message kind). Output:
/// `format (1) || encapsulated key (32) || ciphertext || tag (16)`, [`OVERHEAD`] bytes longer than
/// the plaintext. See the [module docs](self).
pub fn seal(
    sender: &RegionKeyPair,
    source_region: &str,
    recipient: &PublicKey,
    dest_region: &str,
    aad: &[u8],
    plaintext: &[u8],
) -> Vec<u8> {
    let mode = OpModeS::<Kem>::Auth((sender.secret.clone(), sender.public.clone()));
    let (encapped, ciphertext) = hpke::single_shot_seal::<AesGcm256, HkdfSha256, Kem, _>(
        &mode,
        &recipient.to_kem(),
        &info(source_region, dest_region),
        plaintext,
        aad,
        &mut OsRng,
    )
    // Encapsulation fails only for a low-order recipient key, which `PublicKey` excludes (and
    // the sender's own key is never of low order); a single-shot context seals one message, far
    // from its sequence limit.
    .expect("HPKE sealing to a validated X25519 public key");
    let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
    out.push(FORMAT_V1);
    out.extend_from_slice(&encapped.to_bytes());
    out.extend_from_slice(&ciphertext);
    out
}

/// Opens a message sealed by [`seal`] from `source_region` (whose public key is `sender`) to
/// `dest_region` (whose key pair is `recipient`) with the same `aad`.
///
/// Any mismatch in keys, Region names or `aad`, and any altered byte, is
/// [`EnvelopeError::Open`]; input too short for a message is [`EnvelopeError::Truncated`] and an
/// unknown first byte [`EnvelopeError::UnsupportedFormat`]. A replayed message opens again: see
/// the [module docs](self#replays).
pub fn open(
    recipient: &RegionKeyPair,
    dest_region: &str,
    sender: &PublicKey,
    source_region: &str,
    aad: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    let Some((&format, rest)) = sealed.split_first() else {
        return Err(EnvelopeError::Truncated { len: 0 });
    };
    if format != FORMAT_V1 {
        return Err(EnvelopeError::UnsupportedFormat(format));
    }
    if sealed.len() < OVERHEAD {
        return Err(EnvelopeError::Truncated { len: sealed.len() });
    }
    let (encapped, ciphertext) = rest.split_at(PUBLIC_KEY_LEN);
    let fail = || EnvelopeError::Open {
        from_region: source_region.to_owned(),
        to_region: dest_region.to_owned(),
    };
    let encapped = EncappedKey::from_bytes(encapped).map_err(|_| fail())?;
    let mode = OpModeR::<Kem>::Auth(sender.to_kem());
    hpke::single_shot_open::<AesGcm256, HkdfSha256, Kem>(
        &mode,
        &recipient.secret,
        &encapped,
        &info(source_region, dest_region),
        ciphertext,
        aad,
    )
    .map(Zeroizing::new)
    .map_err(|_| fail())
}

/// The HPKE `info`: a label naming the format, then both Region names, each length-prefixed so
/// no two pairs of names give the same bytes.
fn info(source_region: &str, dest_region: &str) -> Vec<u8> {
    let mut info =
        Vec::with_capacity(INFO_LABEL.len() + 16 + source_region.len() + dest_region.len());
    info.extend_from_slice(INFO_LABEL);
    for name in [source_region, dest_region] {
        info.extend_from_slice(&(name.len() as u64).to_be_bytes());
        info.extend_from_slice(name.as_bytes());
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_is_length_prefixed_so_names_cannot_be_shifted() {
        assert_ne!(info("ab", "c"), info("a", "bc"));
        assert_ne!(info("a", "b"), info("b", "a"));
        assert_eq!(
            info("us-east-1", "eu-west-1"),
            [
                &b"coffer replication v1\0"[..],
                &9u64.to_be_bytes(),
                b"us-east-1",
                &9u64.to_be_bytes(),
                b"eu-west-1",
            ]
            .concat()
        );
    }

    #[test]
    fn derivation_label_is_the_documented_one() {
        let root = RootKey::from_hex(&"42".repeat(32)).unwrap();
        let pair = RegionKeyPair::derive(&root, "us-east-1");
        let secret = root.derive_subkey("coffer replication x25519 v1\0us-east-1");
        let expected = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(*secret));
        assert_eq!(pair.public_key().as_bytes(), expected.as_bytes());
    }
}
