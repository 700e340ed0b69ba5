//! Replication between Regions: who the Regions are and how to reach them (`topology`), sealed
//! messages (`envelope`), delivery (`transport`), what each destination already holds (`held`), the outbox
//! drain (`worker`), the receiving
//! side (`receive`), multi-Region KMS replica keys for other nodes (`keys`) and Prometheus
//! metrics (`metrics`).
//!
//! A Region in this process and a Region in another process are reached the same way: an
//! HTTP POST of a sealed message to that node's `/internal/replication` (over `https://` when
//! the node serves TLS: `tls`).

pub mod envelope;
pub mod failback;
pub mod held;
pub mod keys;
pub mod metrics;
pub mod proof;
pub mod receive;
pub mod tls;
pub mod topology;
pub mod transport;
pub mod worker;
pub mod workers;

pub use topology::{Peer, Topology};
