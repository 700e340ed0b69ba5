use std::path::PathBuf;

/// Everything that can go wrong in the key service's cryptographic core.
///
/// Messages name paths, lengths, modes and key ARNs, never key material or plaintext, so they are
/// safe to log and to return to clients.
#[derive(Debug, thiserror::Error)]
pub enum KmsError {
    /// A ciphertext blob or sealed value is malformed, was made under another key, was altered,
    /// or its encryption context / associated data differs. One variant for all of these on
    /// purpose, as in AWS KMS (`InvalidCiphertextException`): telling them apart would help an
    /// attacker probe.
    #[error(
        "the ciphertext is malformed, was made under a different key, or its encryption context \
         does not match"
    )]
    InvalidCiphertext,

    /// `encrypt` accepts 1 to 4096 bytes, like KMS `Encrypt` (`ValidationException` upstream).
    #[error("plaintext must be 1 to {max} bytes long, got {len}", max = crate::MAX_PLAINTEXT_LEN)]
    InvalidPlaintextLength { len: usize },

    /// The key id written into a ciphertext blob must be 1 to 1024 bytes.
    #[error("key id must be 1 to {max} bytes long, got {len}", max = crate::MAX_KEY_ID_LEN)]
    InvalidKeyId { len: usize },

    /// Wrapped key material from the database does not open under this region's root key for
    /// this key ARN: the root key file was replaced, the row was copied to another key, or the
    /// bytes are damaged.
    #[error(
        "key material of {key_arn} cannot be unwrapped: the root key is not the one that wrapped \
         it, or the stored record is damaged"
    )]
    UnwrapKeyMaterial { key_arn: String },

    /// A root key given as text (environment variable) is not 64 hexadecimal characters.
    #[error("root key must be 64 hexadecimal characters (32 bytes)")]
    InvalidRootKeyHex,

    /// The root key file exists but cannot be used. It is never replaced automatically: a
    /// damaged root key must be restored from a backup, not silently swapped for a new one that
    /// cannot open anything.
    #[error("{}", problem.describe(path))]
    RootKeyFile {
        path: PathBuf,
        problem: RootKeyFileProblem,
    },

    /// Reading or creating the root key file (or its directory) failed.
    #[error("cannot {action} root key file {}: {source}", path.display())]
    RootKeyIo {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// Why an existing root key file was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootKeyFileProblem {
    /// Group or others may read or write the file (`mode & 0o077 != 0`).
    InsecureMode { mode: u32 },
    /// A directory, device, socket, …
    NotARegularFile,
    /// Wrong length or not hexadecimal: truncated, edited, or not a root key at all.
    InvalidContents { len: u64 },
}

impl RootKeyFileProblem {
    fn describe(&self, path: &std::path::Path) -> String {
        let path = path.display();
        match self {
            Self::InsecureMode { mode } => format!(
                "root key file {path} has mode {mode:04o}, which lets group or others read or \
                 write it; run `chmod 600 {path}` and start again"
            ),
            Self::NotARegularFile => format!("root key file {path} is not a regular file"),
            Self::InvalidContents { len } => format!(
                "root key file {path} is not a valid root key (expected 64 hexadecimal characters \
                 and a newline, found {len} bytes); it is left untouched: restore it from a \
                 backup, because secrets stored under the lost key cannot be decrypted with a new \
                 one"
            ),
        }
    }
}
