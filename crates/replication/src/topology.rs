//! The deployment as one node sees it: its own Regions (store, key pair) and its peers
//! (Region -> URL and public key, from the config file).

use std::collections::HashMap;
use std::sync::Arc;

use coffer_core::RegionService;

use crate::envelope::{PublicKey, RegionKeyPair};
use crate::metrics::Metrics;

#[derive(Clone, Debug)]
pub struct Peer {
    pub region: String,
    pub url: String,
    pub public_key: PublicKey,
}

pub struct Topology {
    pub local: HashMap<String, Arc<RegionService>>,
    pub keys: HashMap<String, RegionKeyPair>,
    pub peers: HashMap<String, Peer>,
    /// This node's own URL; local Regions are reached through it, like peers.
    pub self_url: String,
    /// Identifies this node in outbox leases.
    pub node_id: String,
    /// How long delivery may fail on the network before the replica shows `Failed`.
    pub give_up_after_ms: i64,
    /// The largest replication message this node reads (`replication_max_message_bytes`).
    pub max_message_bytes: usize,
    /// Since when each link from a Region of this node has been failing.
    pub links: LinkHealth,
    pub metrics: Metrics,
    /// Runs due rotations (outbox rows of kind `rotate` addressed to a local Region).
    pub rotation: Option<Arc<dyn coffer_core::rotation::RotationRunner>>,
}

/// Since when each link (source Region -> destination Region) has been failing on the network,
/// and its last error, in memory. A delivery that fails counts from when its link went down,
/// not from its own first attempt, so a replica whose secret keeps being written shows `Failed`
/// on time too (each write brings a row that has never failed by itself).
#[derive(Default, Debug)]
pub struct LinkHealth(std::sync::Mutex<HashMap<(String, String), Down>>);

#[derive(Debug, Clone)]
struct Down {
    since_ms: i64,
    error: String,
}

impl LinkHealth {
    /// A delivery from `source` to `dest` failed on the network at `now_ms` with `error`.
    pub fn failed(&self, source: &str, dest: &str, now_ms: i64, error: &str) {
        let mut links = self.0.lock().expect("link health");
        let down = links
            .entry((source.to_string(), dest.to_string()))
            .or_insert_with(|| Down {
                since_ms: now_ms,
                error: String::new(),
            });
        down.error = error.to_string();
    }

    /// Since when the link from `source` to `dest` has been failing, if it is.
    pub fn down_since(&self, source: &str, dest: &str) -> Option<i64> {
        self.down(source, dest).map(|(since, _)| since)
    }

    /// Since when the link from `source` to `dest` has been failing and its last error.
    pub fn down(&self, source: &str, dest: &str) -> Option<(i64, String)> {
        self.0
            .lock()
            .expect("link health")
            .get(&(source.to_string(), dest.to_string()))
            .map(|d| (d.since_ms, d.error.clone()))
    }

    /// `dest` answered `source`: the link is up.
    pub fn answered(&self, source: &str, dest: &str) {
        let mut links = self.0.lock().expect("link health");
        if !links.is_empty() {
            links.remove(&(source.to_string(), dest.to_string()));
        }
    }
}

/// Default of `replication_max_message_bytes`: a full sync of a secret with 100 versions of
/// 64 KiB values, base64 and sealed, is about 9 MiB; a batch of 64 secrets each adding a value
/// is about 6 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Where and how to send to a Region.
pub struct Route {
    pub url: String,
    pub public_key: PublicKey,
}

impl Topology {
    pub fn route(&self, region: &str) -> Option<Route> {
        if let Some(keys) = self.keys.get(region) {
            return Some(Route {
                url: self.self_url.clone(),
                public_key: keys.public_key(),
            });
        }
        self.peers.get(region).map(|p| Route {
            url: p.url.clone(),
            public_key: p.public_key.clone(),
        })
    }

    pub fn public_key(&self, region: &str) -> Option<PublicKey> {
        self.route(region).map(|r| r.public_key)
    }
}

/// KMS `ReplicateKey` reaches this node's Regions directly and the peers' through the outbox.
impl coffer_core::kms::RegionDirectory for Topology {
    fn local(&self, region: &str) -> Option<&Arc<RegionService>> {
        self.local.get(region)
    }

    fn is_peer(&self, region: &str) -> bool {
        !self.local.contains_key(region) && self.peers.contains_key(region)
    }
}
