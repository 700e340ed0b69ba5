//! What each destination already holds: per (primary secret ARN, destination Region), the
//! versions whose values the destination acknowledged and the key it was asked to use. A sync
//! leaves those values out ([`VersionPayload::omitted`]), so its cost follows what changed
//! (usually one new version) instead of how many versions the secret keeps (up to 100
//! deprecated ones, AWS's limit).
//!
//! This is a hint, never the truth: it lives in memory (a restart starts empty, so the first
//! sync of each secret carries every value), and a replica that lacks an omitted value answers
//! [`Answer::Resend`], after which the entry is forgotten and the whole state is sent again.
//!
//! [`VersionPayload::omitted`]: coffer_core::replication::VersionPayload::omitted
//! [`Answer::Resend`]: coffer_core::replication::Answer::Resend

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use coffer_core::replication::SyncMessage;

/// Entries kept at most; past it the memory starts over (the next syncs carry every value).
const MAX_ENTRIES: usize = 100_000;

#[derive(Default)]
pub struct Held {
    entries: Mutex<HashMap<(String, String), Entry>>,
}

struct Entry {
    kms_key_id: Option<String>,
    versions: HashSet<String>,
}

impl Held {
    /// The versions `dest` holds of `arn` under `kms_key_id` (empty when unknown, or when the
    /// replica's key changed since).
    pub fn versions(&self, arn: &str, dest: &str, kms_key_id: Option<&str>) -> HashSet<String> {
        let entries = self.entries.lock().expect("held versions");
        match entries.get(&(arn.to_string(), dest.to_string())) {
            Some(e) if e.kms_key_id.as_deref() == kms_key_id => e.versions.clone(),
            _ => HashSet::new(),
        }
    }

    /// `dest` applied `msg`: it holds every value the message carried or left out.
    pub fn applied(&self, dest: &str, msg: &SyncMessage) {
        let versions = msg
            .versions
            .iter()
            .filter(|v| v.omitted || v.value.is_some())
            .map(|v| v.version_id.clone())
            .collect();
        let mut entries = self.entries.lock().expect("held versions");
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(
            (msg.primary_arn.clone(), dest.to_string()),
            Entry {
                kms_key_id: msg.kms_key_id.clone(),
                versions,
            },
        );
    }

    /// Nothing is known about what `dest` holds of `arn` any more.
    pub fn forget(&self, arn: &str, dest: &str) {
        self.entries
            .lock()
            .expect("held versions")
            .remove(&(arn.to_string(), dest.to_string()));
    }
}
