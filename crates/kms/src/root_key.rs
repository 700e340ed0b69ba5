//! The per-region root key: loaded from (or created in) a file, it wraps the key material of the
//! region's KMS keys before that material is written to the region's database.

use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hkdf::Hkdf;
use rand::RngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use zeroize::{ZeroizeOnDrop, Zeroizing};

use crate::KeyMaterial;
use crate::aead;
use crate::error::{KmsError, RootKeyFileProblem};
use crate::secret::{KEY_LEN, Key32};

/// First byte of a wrapped key-material record (see the crate docs).
const WRAPPED_KEY_VERSION: u8 = 1;
/// Domain separation for the wrapping AAD: nothing else sealed under a root key can be passed off
/// as wrapped key material, and vice versa.
const WRAPPED_KEY_AAD_LABEL: &[u8] = b"coffer-kms wrapped key material\0";
/// `version || nonce || ciphertext(32) || tag`.
const WRAPPED_KEY_LEN: usize = 1 + aead::NONCE_LEN + KEY_LEN + aead::TAG_LEN;

/// Domain separation for [`RootKey::derive_subkey`]: the HKDF `info` is this label followed by the
/// caller's label, so no subkey can equal one derived for another purpose elsewhere.
const SUBKEY_INFO_LABEL: &[u8] = b"coffer-kms subkey\0";

/// File contents: 64 hexadecimal digits and a newline.
const HEX_LEN: usize = 2 * KEY_LEN;
const FILE_LEN: usize = HEX_LEN + 1;

/// A region's root key (32 bytes, AES-256). Wiped from memory on drop; `Debug` shows nothing.
///
/// It lives in a file of its own (`DIR/keys/<region>.key`), never in the database it protects,
/// so a copy of the database alone reveals no secret.
pub struct RootKey(Key32);

impl ZeroizeOnDrop for RootKey {}

impl fmt::Debug for RootKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RootKey(..)")
    }
}

impl RootKey {
    /// Loads the root key from `path`, or creates it if no file exists there. Returns the key and
    /// whether it was created.
    ///
    /// The file holds the key as 64 hexadecimal digits followed by a newline (lowercase when
    /// written; either case and a missing final newline are accepted when read). Text, so an
    /// operator can back it up, compare it and move it into an environment variable
    /// ([`RootKey::from_hex`]) with ordinary tools.
    ///
    /// Creation writes a temporary file with mode 0600 in the same directory, syncs it, and links
    /// it into place with `link(2)`, which never overwrites: if another process created the key
    /// first, that key is loaded instead. (On a filesystem without hard links it falls back to
    /// `rename(2)`.) Missing parent directories are created with mode 0700, and the directory is
    /// synced so a key that has started wrapping material survives a power cut.
    ///
    /// An existing file that group or others may read or write, that is not a regular file, or
    /// whose contents are not a key is refused with an error and left untouched: a damaged root
    /// key is never silently replaced.
    pub fn load_or_create(path: &Path) -> Result<(RootKey, bool), KmsError> {
        match fs::metadata(path) {
            Ok(_) => return Ok((Self::load(path)?, false)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(path, "inspect", e)),
        }
        match create(path)? {
            Some(key) => Ok((key, true)),
            // Another process won the race to create it; use theirs.
            None => Ok((Self::load(path)?, false)),
        }
    }

    /// Loads an existing root key file, with the same checks as [`RootKey::load_or_create`];
    /// never creates one.
    pub fn load(path: &Path) -> Result<RootKey, KmsError> {
        let refuse = |problem| KmsError::RootKeyFile {
            path: path.to_path_buf(),
            problem,
        };
        let mut file = File::open(path).map_err(|e| io_error(path, "open", e))?;
        // Check the opened file, not the path, so the file read is the file checked.
        let metadata = file.metadata().map_err(|e| io_error(path, "inspect", e))?;
        if !metadata.is_file() {
            return Err(refuse(RootKeyFileProblem::NotARegularFile));
        }
        let mode = metadata.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(refuse(RootKeyFileProblem::InsecureMode { mode }));
        }
        let len = metadata.len();
        let invalid = refuse(RootKeyFileProblem::InvalidContents { len });
        if len > FILE_LEN as u64 {
            return Err(invalid);
        }
        let mut contents = Zeroizing::new(Vec::with_capacity(FILE_LEN + 1));
        (&mut file)
            .take(FILE_LEN as u64 + 1)
            .read_to_end(&mut contents)
            .map_err(|e| io_error(path, "read", e))?;
        let hex = contents.strip_suffix(b"\n").unwrap_or(&contents);
        Self::decode(hex).ok_or(invalid)
    }

    /// Parses a root key given as text, e.g. from an environment variable: 64 hexadecimal
    /// digits, either case; surrounding whitespace (a trailing newline) is ignored.
    pub fn from_hex(hex: &str) -> Result<RootKey, KmsError> {
        Self::decode(hex.trim().as_bytes()).ok_or(KmsError::InvalidRootKeyHex)
    }

    fn decode(hex: &[u8]) -> Option<RootKey> {
        if hex.len() != HEX_LEN {
            return None;
        }
        let mut key = Key32::zeroed();
        hex::decode_to_slice(hex, key.bytes_mut()).ok()?;
        Some(RootKey(key))
    }

    /// A short, non-secret identifier of this root key (16 hex digits of a domain-separated
    /// SHA-256), for logs and for noticing that a region's key file was swapped.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::new()
            .chain_update(b"coffer-kms root key fingerprint\0")
            .chain_update(self.0.bytes())
            .finalize();
        hex::encode(&digest[..8])
    }

    /// Derives a 32-byte subkey for another use of this root key (for example a region's
    /// replication key pair), so that use needs no key file of its own.
    ///
    /// HKDF-SHA256 (RFC 5869) with the root key as input keying material, no salt, and
    /// `info = "coffer-kms subkey\0" || label`. Deterministic: the same root key and label always
    /// give the same subkey; different labels give independent subkeys, and a subkey reveals
    /// nothing about the root key or about subkeys for other labels. Callers choose labels that
    /// name their purpose and version (e.g. `"coffer replication x25519 v1\0" || region`).
    pub fn derive_subkey(&self, label: &str) -> Zeroizing<[u8; 32]> {
        let mut info = Vec::with_capacity(SUBKEY_INFO_LABEL.len() + label.len());
        info.extend_from_slice(SUBKEY_INFO_LABEL);
        info.extend_from_slice(label.as_bytes());
        let mut subkey = Zeroizing::new([0u8; 32]);
        Hkdf::<Sha256>::new(None, self.0.bytes())
            .expand(&info, &mut subkey[..])
            .expect("32 bytes is within HKDF-SHA256's 8160-byte output limit");
        subkey
    }

    /// Wraps a KMS key's material for storage in the region's database: AES-256-GCM under the
    /// root key, with the key ARN in the associated data so a wrapped record copied onto another
    /// key's row does not open. Output: `version (1) || nonce (12) || ciphertext (32) || tag (16)`.
    pub fn wrap_key_material(&self, key_arn: &str, material: &KeyMaterial) -> Vec<u8> {
        let mut out = Vec::with_capacity(WRAPPED_KEY_LEN);
        out.push(WRAPPED_KEY_VERSION);
        aead::seal_into(
            self.0.bytes(),
            &wrapping_aad(key_arn),
            material.0.bytes(),
            &mut out,
        );
        out
    }

    /// Reverses [`RootKey::wrap_key_material`]. Fails with [`KmsError::UnwrapKeyMaterial`] under
    /// another root key, for another ARN, or for damaged bytes.
    pub fn unwrap_key_material(
        &self,
        key_arn: &str,
        wrapped: &[u8],
    ) -> Result<KeyMaterial, KmsError> {
        let fail = || KmsError::UnwrapKeyMaterial {
            key_arn: key_arn.to_owned(),
        };
        let Some((&WRAPPED_KEY_VERSION, sealed)) = wrapped.split_first() else {
            return Err(fail());
        };
        let mut material = Key32::zeroed();
        aead::open_into(
            self.0.bytes(),
            &wrapping_aad(key_arn),
            sealed,
            material.bytes_mut(),
        )
        .map_err(|_| fail())?;
        Ok(KeyMaterial::from_key(material))
    }
}

impl RootKey {
    /// Seals a short credential (an IAM secret access key) for storage: AES-256-GCM under the
    /// root key with `label` (the access key id) bound as associated data.
    pub fn seal_credential(&self, label: &str, plaintext: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + aead::NONCE_LEN + plaintext.len() + aead::TAG_LEN);
        out.push(WRAPPED_KEY_VERSION);
        aead::seal_into(self.0.bytes(), &credential_aad(label), plaintext, &mut out);
        out
    }

    /// Reverses [`RootKey::seal_credential`].
    pub fn open_credential(
        &self,
        label: &str,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        let fail = || KmsError::UnwrapKeyMaterial {
            key_arn: label.to_owned(),
        };
        let Some((&WRAPPED_KEY_VERSION, rest)) = sealed.split_first() else {
            return Err(fail());
        };
        aead::open(self.0.bytes(), &credential_aad(label), rest).map_err(|_| fail())
    }
}

fn credential_aad(label: &str) -> Vec<u8> {
    let mut aad = b"coffer credential\0".to_vec();
    aad.extend_from_slice(label.as_bytes());
    aad
}

/// `label || version || key ARN`: the ARN is last, so no length prefix is needed.
fn wrapping_aad(key_arn: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(WRAPPED_KEY_AAD_LABEL.len() + 1 + key_arn.len());
    aad.extend_from_slice(WRAPPED_KEY_AAD_LABEL);
    aad.push(WRAPPED_KEY_VERSION);
    aad.extend_from_slice(key_arn.as_bytes());
    aad
}

fn io_error(path: &Path, action: &'static str, source: io::Error) -> KmsError {
    KmsError::RootKeyIo {
        path: path.to_path_buf(),
        action,
        source,
    }
}

/// Creates a new key file at `path`. `Ok(None)` if a file appeared there meanwhile.
fn create(path: &Path) -> Result<Option<RootKey>, KmsError> {
    let Some(file_name) = path.file_name() else {
        return Err(io_error(
            path,
            "create",
            io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"),
        ));
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| io_error(path, "create the directory of", e))?;

    let key = RootKey(Key32::random());
    let mut contents = Zeroizing::new([0u8; FILE_LEN]);
    hex::encode_to_slice(key.0.bytes(), &mut contents[..HEX_LEN])
        .expect("64-byte buffer for 32 bytes of hex");
    contents[HEX_LEN] = b'\n';

    let mut suffix = [0u8; 8];
    OsRng.fill_bytes(&mut suffix);
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(file_name);
    temp_name.push(format!(".{}.tmp", hex::encode(suffix)));
    let temp = dir.join(temp_name);

    let written = write_new_file(&temp, &contents[..]);
    let placed = written.and_then(|()| match fs::hard_link(&temp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        // No hard links here (some network or FUSE filesystems): rename, which would overwrite a
        // file created in the instant since we looked, so look once more first.
        Err(_) if fs::symlink_metadata(path).is_err() => fs::rename(&temp, path).map(|()| true),
        Err(e) => Err(e),
    });
    // Best effort: after a rename the temporary name is already gone.
    let _ = fs::remove_file(&temp);
    let placed = placed.map_err(|e| io_error(path, "create", e))?;
    if !placed {
        return Ok(None);
    }
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(path, "sync the directory of", e))?;
    Ok(Some(key))
}

fn write_new_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derive_subkey_is_deterministic_and_separated_by_label_and_root() {
        let root = RootKey::from_hex(&"11".repeat(32)).unwrap();
        let same_root = RootKey::from_hex(&"11".repeat(32)).unwrap();
        let other_root = RootKey::from_hex(&"22".repeat(32)).unwrap();

        let a = root.derive_subkey("label a");
        assert_eq!(*a, *root.derive_subkey("label a"));
        assert_eq!(*a, *same_root.derive_subkey("label a"));
        assert_ne!(*a, *root.derive_subkey("label b"));
        assert_ne!(*a, *root.derive_subkey(""));
        assert_ne!(*a, *other_root.derive_subkey("label a"));
        assert_ne!(*a, [0u8; 32]);
        assert_ne!(&a[..], &root.0.bytes()[..]);
    }

    #[test]
    fn derive_subkey_matches_hkdf_sha256_known_answer() {
        // HKDF-SHA256(ikm = 0x11 * 32, salt = none, info = "coffer-kms subkey\0" || "label a"),
        // computed independently (Python's hmac/hashlib, RFC 5869 by hand).
        let root = RootKey::from_hex(&"11".repeat(32)).unwrap();
        assert_eq!(hex::encode(*root.derive_subkey("label a")), KAT_LABEL_A);
    }

    const KAT_LABEL_A: &str = "3bf45aed0c508802b0e06b8db9c02b607c3261994c5d2da9d75ae99712cebe10";
}
