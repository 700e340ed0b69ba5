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
    pub metrics: Metrics,
    /// Runs due rotations (outbox rows of kind `rotate` addressed to a local Region).
    pub rotation: Option<Arc<dyn coffer_core::rotation::RotationRunner>>,
}

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
