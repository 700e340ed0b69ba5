//! Cryptographic core of Coffer's per-region key service (KMS), and the random-password
//! generator behind `GetRandomPassword`.
//!
//! # Envelope encryption
//!
//! Three layers of AES-256-GCM keys, each protecting the one below:
//!
//! 1. **Root key** ([`RootKey`]), one per region, in a file of its own (`DIR/keys/<region>.key`)
//!    or an environment variable, never in the database. A stolen database alone opens nothing.
//! 2. **KMS key material** ([`KeyMaterial`]) of customer keys and AWS-managed keys such as
//!    `aws/secretsmanager`, stored in the region's database wrapped by the root key.
//! 3. **Data keys** ([`DataKey`]), one per secret version, stored as a ciphertext blob under a
//!    KMS key; the secret value is sealed under the data key.
//!
//! Re-keying the root key means re-wrapping a few dozen KMS keys, not re-encrypting every secret,
//! and each secret version's value is protected by a key used exactly once.
//!
//! Every nonce is 96 random bits from the operating system. That keeps the formats stateless
//! (no counters to persist and never reuse after a crash or a restore from backup); the cost is
//! the usual bound for random GCM nonces of about 2³² encryptions per key, far above what one KMS
//! key sees here (one `GenerateDataKey` per secret version).
//!
//! # Formats
//!
//! Each format starts with a version byte (today `1`), so a later format can be introduced
//! while old records stay readable; unknown versions are rejected, never guessed at. Every
//! authenticated-data string starts with a label naming the format (`"coffer-kms … \0"`), so a
//! ciphertext of one kind can never be passed off as another.
//!
//! **Root key file** — 64 hexadecimal digits and a newline (65 bytes), mode 0600. Text rather
//! than raw bytes so an operator can back it up, compare it and move it into an environment
//! variable ([`RootKey::from_hex`]) with ordinary tools. A file that is readable or writable by
//! group/other, or not exactly a key, is refused and left untouched; see
//! [`RootKey::load_or_create`].
//!
//! **Wrapped key material** (database column), 61 bytes:
//!
//! ```text
//! version=1 (1) || nonce (12) || AES-256-GCM(root key, material) (32) || tag (16)
//! AAD = "coffer-kms wrapped key material\0" || version || key ARN
//! ```
//!
//! The ARN in the AAD ties the record to its key: copied onto another key's row it does not open.
//!
//! **Ciphertext blob** (KMS `CiphertextBlob`, the encrypted data key of a secret version):
//!
//! ```text
//! version=2 (1) || key id length (2, big-endian, 1..=1024) || key id (UTF-8)
//!   || key material id (32) || nonce (12) || AES-256-GCM(KMS key material, plaintext) || tag (16)
//! AAD = "coffer-kms ciphertext blob\0" || version || key id length || key id
//!   || key material id || canonical encryption context
//! ```
//!
//! Like an AWS blob it is self-describing: [`ciphertext_key_id`] finds the key, so `Decrypt`
//! needs no `KeyId`, and [`ciphertext_material_id`] the key material it was made with, so a
//! rotated key still opens what its earlier materials sealed. Version 1 blobs (written before
//! keys could be rotated) lack the material id: they were made with the key's first material.
//! The key id and material id are authenticated, and the encryption context must be presented
//! again, identical, to decrypt; anything else is [`KmsError::InvalidCiphertext`]. The canonical
//! context is `count (u64 BE)` followed, in byte-wise key order, by
//! `len (u64 BE) || key || len (u64 BE) || value` per pair: length prefixes, not `k=v&…`
//! separators, so no two different contexts encode alike. A 4096-byte plaintext under a 1024-byte
//! key id still fits the 6144 bytes KMS allows for a blob.
//!
//! **Key material id** ([`KeyMaterial::id`]): HKDF-SHA256 of the material with the fixed label
//! `"coffer-kms key material id\0"`; AWS's `KeyMaterialId`, shown as 64 hexadecimal digits.
//!
//! **Previous key material** of a rotated key ([`KeyMaterial::seal_previous`]), kept in the key's
//! metadata: `version=1 (1) || nonce (12) || AES-256-GCM(current material, previous) (32) ||
//! tag (16)`, AAD = `"coffer-kms previous key material\0" || key id`. Sealed under the current
//! material, so the root key still protects everything and its rotation re-wraps only the current
//! material; the key id (the same in every Region of a multi-Region key) binds it to its key.
//!
//! **Sealed secret value** ([`DataKey::seal`]): `nonce (12) || ciphertext || tag (16)`, with the
//! caller's AAD binding region, secret ARN and version id. No version byte of its own: the blob
//! of the data key that sealed it is stored beside it and carries the format version.
//!
//! # Hygiene
//!
//! Keys live in a single heap allocation that is wiped on drop; decrypted plaintext is returned
//! in [`zeroize::Zeroizing`] buffers; `Debug` of a key prints only its type name; error messages
//! carry lengths, modes, paths and ARNs, never key bytes or plaintext. One gap remains: the
//! AES round keys that `aes-gcm` expands for each operation are not wiped (that needs the
//! `zeroize` features of `aes` and `aes-gcm`); each cipher instance lives for one call only.

mod aead;
mod ciphertext;
mod error;
mod keys;
pub mod password;
mod root_key;
mod secret;
mod stream;

pub use ciphertext::{
    EncryptionContext, MAX_KEY_ID_LEN, MAX_PLAINTEXT_LEN, ciphertext_key_id,
    ciphertext_material_id, decrypt, decrypt_data_key, encrypt, generate_data_key,
};
pub use error::{KmsError, RootKeyFileProblem};
pub use keys::{DataKey, KeyMaterial, MATERIAL_ID_LEN};
pub use root_key::RootKey;
pub use stream::{STREAM_TAG_LEN, StreamError, StreamOpener, StreamSealer};
