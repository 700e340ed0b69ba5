//! Sealing a long sequence of chunks (a `coffer backup` file) so that each chunk is checked on
//! its own and the sequence as a whole cannot be cut short, reordered or spliced: the STREAM
//! construction (Hoang, Reyhanitabar, Rogaway and Vizár, "Online Authenticated-Encryption and
//! its Nonce-Reuse Misuse-Resistance", 2015) as RustCrypto's `aead::stream::StreamBE32`
//! implements it over AES-256-GCM. Chunk `i` is sealed under the nonce
//! `prefix (7) || i as u32 big-endian (4) || last (1)`, where `last` is 1 for the final chunk
//! only, with the caller's associated data (a file's header) bound to every chunk.
//!
//! The key is derived from a [`RootKey`] and a label that the caller makes unique per stream
//! (a random salt), so the nonce prefix is a constant: no two streams share a key.

use aes_gcm::aead::stream::{DecryptorBE32, EncryptorBE32};
use aes_gcm::{Aes256Gcm, KeyInit};
use zeroize::Zeroizing;

use crate::RootKey;

/// Bytes a sealed chunk has beyond its plaintext (the GCM tag).
pub const STREAM_TAG_LEN: usize = crate::aead::TAG_LEN;

/// The nonce prefix: constant, because every stream has a key of its own.
const PREFIX: [u8; 7] = [0; 7];

/// The chunk did not open: wrong key or associated data, damaged, reordered, or a chunk marked
/// last where another was expected (or the reverse). Carries no detail on purpose.
#[derive(Debug, PartialEq, Eq)]
pub struct StreamError;

fn cipher(root: &RootKey, label: &str) -> Aes256Gcm {
    let key = root.derive_subkey(label);
    Aes256Gcm::new((&*key).into())
}

/// Seals the chunks of one stream, in order; [`StreamSealer::seal_last`] ends it.
pub struct StreamSealer {
    inner: EncryptorBE32<Aes256Gcm>,
    aad: Vec<u8>,
}

impl std::fmt::Debug for StreamSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamSealer")
    }
}

impl StreamSealer {
    /// A stream under the key derived from `root` with `label` (unique per stream), binding
    /// `aad` to every chunk.
    pub fn new(root: &RootKey, label: &str, aad: &[u8]) -> StreamSealer {
        StreamSealer {
            inner: EncryptorBE32::from_aead(cipher(root, label), (&PREFIX).into()),
            aad: aad.to_vec(),
        }
    }

    /// Seals a chunk that is not the last, in place: `chunk` becomes `ciphertext || tag`.
    pub fn seal_next(&mut self, chunk: &mut Vec<u8>) -> Result<(), StreamError> {
        self.inner
            .encrypt_next_in_place(&self.aad, chunk)
            .map_err(|_| StreamError)
    }

    /// Seals the last chunk (which may be empty), in place, and ends the stream.
    pub fn seal_last(self, chunk: &mut Vec<u8>) -> Result<(), StreamError> {
        self.inner
            .encrypt_last_in_place(&self.aad, chunk)
            .map_err(|_| StreamError)
    }
}

/// Opens the chunks of one stream, in order; [`StreamOpener::open_last`] ends it.
pub struct StreamOpener {
    inner: DecryptorBE32<Aes256Gcm>,
    aad: Vec<u8>,
}

impl std::fmt::Debug for StreamOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamOpener")
    }
}

impl StreamOpener {
    /// Opens what [`StreamSealer::new`] with the same `root`, `label` and `aad` sealed.
    pub fn new(root: &RootKey, label: &str, aad: &[u8]) -> StreamOpener {
        StreamOpener {
            inner: DecryptorBE32::from_aead(cipher(root, label), (&PREFIX).into()),
            aad: aad.to_vec(),
        }
    }

    /// Opens the next chunk (not the last), in place: `chunk` becomes the plaintext. On
    /// failure the buffer is cleared.
    pub fn open_next(&mut self, chunk: &mut Zeroizing<Vec<u8>>) -> Result<(), StreamError> {
        let result = self.inner.decrypt_next_in_place(&self.aad, &mut **chunk);
        result.map_err(|_| {
            chunk.clear();
            StreamError
        })
    }

    /// Opens the last chunk, in place, and ends the stream.
    pub fn open_last(self, chunk: &mut Zeroizing<Vec<u8>>) -> Result<(), StreamError> {
        let result = self.inner.decrypt_last_in_place(&self.aad, &mut **chunk);
        result.map_err(|_| {
            chunk.clear();
            StreamError
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> RootKey {
        RootKey::from_hex(&"5a".repeat(32)).unwrap()
    }

    fn seal(chunks: &[&[u8]], label: &str, aad: &[u8]) -> Vec<Vec<u8>> {
        let mut sealer = Some(StreamSealer::new(&root(), label, aad));
        let mut out = Vec::new();
        for (i, c) in chunks.iter().enumerate() {
            let mut buf = c.to_vec();
            if i + 1 == chunks.len() {
                sealer.take().unwrap().seal_last(&mut buf).unwrap();
            } else {
                sealer.as_mut().unwrap().seal_next(&mut buf).unwrap();
            }
            assert_eq!(buf.len(), c.len() + STREAM_TAG_LEN);
            out.push(buf);
        }
        out
    }

    /// Opens every chunk, the last one as the last; the plaintexts, or the first failure.
    fn open(sealed: &[Vec<u8>], label: &str, aad: &[u8]) -> Result<Vec<Vec<u8>>, StreamError> {
        let mut opener = Some(StreamOpener::new(&root(), label, aad));
        let mut out = Vec::new();
        for (i, c) in sealed.iter().enumerate() {
            let mut buf = Zeroizing::new(c.clone());
            if i + 1 == sealed.len() {
                opener.take().unwrap().open_last(&mut buf)?;
            } else {
                opener.as_mut().unwrap().open_next(&mut buf)?;
            }
            out.push(buf.to_vec());
        }
        Ok(out)
    }

    #[test]
    fn chunks_open_in_order_only() {
        let chunks: [&[u8]; 3] = [b"first", b"second", b""];
        let sealed = seal(&chunks, "salt 1", b"header");
        assert_eq!(open(&sealed, "salt 1", b"header").unwrap(), chunks);
        // Another label (salt), other associated data: nothing opens.
        assert_eq!(open(&sealed, "salt 2", b"header"), Err(StreamError));
        assert_eq!(open(&sealed, "salt 1", b"headeR"), Err(StreamError));
        // Swapped, cut short, or a middle chunk replayed as the last: refused.
        let swapped = vec![sealed[1].clone(), sealed[0].clone(), sealed[2].clone()];
        assert_eq!(open(&swapped, "salt 1", b"header"), Err(StreamError));
        assert_eq!(open(&sealed[..2], "salt 1", b"header"), Err(StreamError));
        // A changed byte anywhere.
        for i in 0..sealed[1].len() {
            let mut bad = sealed.clone();
            bad[1][i] ^= 0x80;
            assert_eq!(
                open(&bad, "salt 1", b"header"),
                Err(StreamError),
                "byte {i}"
            );
        }
    }

    #[test]
    fn the_same_plaintext_under_two_labels_differs() {
        let a = seal(&[b"same"], "salt a", b"");
        let b = seal(&[b"same"], "salt b", b"");
        assert_ne!(a, b);
    }
}
