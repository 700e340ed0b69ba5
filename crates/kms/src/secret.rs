//! 32-byte secrets kept in one heap allocation and wiped on drop.

use rand::RngCore;
use rand::rngs::OsRng;
use zeroize::Zeroize;

/// Length of every key this crate handles: AES-256.
pub(crate) const KEY_LEN: usize = 32;

/// The bytes live behind a `Box` so that moving a key (returning it, storing it in a map) moves
/// only a pointer and leaves no copies of the key on the stack; `Drop` wipes the one allocation.
pub(crate) struct Key32(Box<[u8; KEY_LEN]>);

impl Key32 {
    pub(crate) fn zeroed() -> Self {
        Self(Box::new([0u8; KEY_LEN]))
    }

    /// Fresh key bytes from the operating system's CSPRNG.
    pub(crate) fn random() -> Self {
        let mut key = Self::zeroed();
        OsRng.fill_bytes(&mut key.0[..]);
        key
    }

    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    pub(crate) fn bytes_mut(&mut self) -> &mut [u8; KEY_LEN] {
        &mut self.0
    }
}

impl Clone for Key32 {
    fn clone(&self) -> Self {
        let mut copy = Self::zeroed();
        copy.0.copy_from_slice(&self.0[..]);
        copy
    }
}

impl Drop for Key32 {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}
