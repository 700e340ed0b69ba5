//! AES-256-GCM with random 96-bit nonces, in the one layout every format of this crate uses:
//! `nonce (12) || ciphertext || tag (16)`.
//!
//! Plaintext is only ever written into buffers that are sized up front (so they never reallocate
//! and leave an unwiped copy behind) and, on the way out, into [`Zeroizing`] buffers.

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use rand::RngCore;
use rand::rngs::OsRng;
use zeroize::Zeroizing;

use crate::secret::KEY_LEN;

pub(crate) const NONCE_LEN: usize = 12;
pub(crate) const TAG_LEN: usize = 16;

/// The tag did not verify: wrong key, wrong associated data, or damaged bytes. Deliberately
/// carries no detail, so callers cannot build an oracle out of it.
#[derive(Debug)]
pub(crate) struct OpenError;

fn cipher(key: &[u8; KEY_LEN]) -> Aes256Gcm {
    Aes256Gcm::new(key.into())
}

/// Appends `nonce || ciphertext || tag` to `out`.
pub(crate) fn seal_into(key: &[u8; KEY_LEN], aad: &[u8], plaintext: &[u8], out: &mut Vec<u8>) {
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    out.reserve_exact(NONCE_LEN + plaintext.len() + TAG_LEN);
    out.extend_from_slice(&nonce);
    let start = out.len();
    out.extend_from_slice(plaintext);
    let tag = cipher(key)
        .encrypt_in_place_detached(Nonce::from_slice(&nonce), aad, &mut out[start..])
        // AES-GCM refuses only messages over 64 GiB or associated data over 2^61 bytes, which
        // cannot reach this crate (secret values are at most 64 KiB).
        .expect("AES-GCM input within its size limits");
    out.extend_from_slice(&tag);
}

/// Length of the plaintext inside `nonce || ciphertext || tag`, or `None` if it is too short to
/// be one.
pub(crate) fn plaintext_len(sealed: &[u8]) -> Option<usize> {
    sealed.len().checked_sub(NONCE_LEN + TAG_LEN)
}

/// Opens `nonce || ciphertext || tag` into a buffer that is wiped on drop.
pub(crate) fn open(
    key: &[u8; KEY_LEN],
    aad: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    let len = plaintext_len(sealed).ok_or(OpenError)?;
    let mut plaintext = Zeroizing::new(vec![0u8; len]);
    open_into(key, aad, sealed, &mut plaintext)?;
    Ok(plaintext)
}

/// Opens into a caller-provided buffer of exactly the plaintext's length (e.g. a key's own
/// storage), so the plaintext exists in one place only.
pub(crate) fn open_into(
    key: &[u8; KEY_LEN],
    aad: &[u8],
    sealed: &[u8],
    buffer: &mut [u8],
) -> Result<(), OpenError> {
    if plaintext_len(sealed) != Some(buffer.len()) {
        return Err(OpenError);
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
    buffer.copy_from_slice(ciphertext);
    // aes-gcm verifies the tag before it decrypts, so on failure `buffer` holds only ciphertext;
    // clear it anyway so no caller can mistake it for output.
    cipher(key)
        .decrypt_in_place_detached(Nonce::from_slice(nonce), aad, buffer, Tag::from_slice(tag))
        .map_err(|_| {
            buffer.fill(0);
            OpenError
        })
}
