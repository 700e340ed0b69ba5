//! Prometheus metrics of replication, labelled by source and destination Region only (a
//! bounded set): lag from commit on the primary to apply on the replica, queue depth, and
//! delivery outcomes.

use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Route {
    pub source: String,
    pub destination: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub source: String,
    pub destination: String,
    pub outcome: String,
}

#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    pub lag_seconds: Family<Route, Histogram>,
    pub queue_depth: Family<Route, Gauge>,
    pub deliveries: Family<Outcome, Counter>,
    /// The replication point of each link into this node's Regions (docs/failover.md).
    pub rpo_seconds: Family<Route, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub rpo_unapplied: Family<Route, Gauge>,
    routes: Arc<Mutex<std::collections::BTreeSet<(String, String)>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("coffer_replication");
        let lag_seconds = Family::<Route, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1,
                0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ])
        });
        let queue_depth = Family::<Route, Gauge>::default();
        let deliveries = Family::<Outcome, Counter>::default();
        registry.register(
            "lag_seconds",
            "Seconds from commit on the primary to apply on the replica",
            lag_seconds.clone(),
        );
        registry.register(
            "queue_depth",
            "Replication events waiting in the outbox, per destination Region",
            queue_depth.clone(),
        );
        registry.register(
            "deliveries",
            "Replication deliveries by outcome (applied, failed, detached, resend, network_error, deferred_link_down, not_enabled)",
            deliveries.clone(),
        );
        let rpo_seconds = Family::<Route, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        let rpo_unapplied = Family::<Route, Gauge>::default();
        registry.register(
            "rpo_seconds",
            "Seconds since the newest state from the source (primary) Region was applied in the destination (replica) Region, measured at the replica",
            rpo_seconds.clone(),
        );
        registry.register(
            "rpo_unapplied_secrets",
            "Replicas in the destination Region whose newest state announced by the source (primary) Region is not applied there",
            rpo_unapplied.clone(),
        );
        Metrics {
            registry: Arc::new(Mutex::new(registry)),
            lag_seconds,
            queue_depth,
            deliveries,
            rpo_seconds,
            rpo_unapplied,
            routes: Arc::default(),
        }
    }

    pub fn count(&self, source: &str, destination: &str, outcome: &str) {
        // A destination delivered to has a queue-depth gauge from then on (0 once drained),
        // even if no depth refresh happened to see rows queued for it.
        if source != destination {
            self.routes
                .lock()
                .expect("metrics routes")
                .insert((source.to_string(), destination.to_string()));
        }
        self.deliveries
            .get_or_create(&Outcome {
                source: source.into(),
                destination: destination.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    pub fn lag(&self, source: &str, destination: &str, seconds: f64) {
        self.lag_seconds
            .get_or_create(&Route {
                source: source.into(),
                destination: destination.into(),
            })
            .observe(seconds.max(0.0));
    }

    /// Sets the queue depth of every destination of `source`: those not listed are empty.
    pub fn set_depths(&self, source: &str, depths: &[(String, i64)]) {
        let mut known = self.routes.lock().expect("metrics routes");
        // Rows addressed to the source itself are its queued rotations, not replication.
        let depths: Vec<&(String, i64)> = depths.iter().filter(|(d, _)| d != source).collect();
        for (dest, _) in &depths {
            known.insert((source.to_string(), dest.clone()));
        }
        for (s, dest) in known.iter().filter(|(s, _)| s == source) {
            let depth = depths
                .iter()
                .find(|(d, _)| d == dest)
                .map_or(0, |(_, n)| *n);
            self.queue_depth
                .get_or_create(&Route {
                    source: s.clone(),
                    destination: dest.clone(),
                })
                .set(depth);
        }
    }

    /// Sets the replication point of each link into `points`' replica Region.
    pub fn set_points(&self, points: &[coffer_core::failover::LinkPoint]) {
        for p in points {
            let route = Route {
                source: p.primary_region.clone(),
                destination: p.replica_region.clone(),
            };
            if let Some(s) = p.seconds_since_last_applied {
                self.rpo_seconds.get_or_create(&route).set(s);
            }
            self.rpo_unapplied
                .get_or_create(&route)
                .set(p.unapplied_secret_count as i64);
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().expect("metrics registry");
        prometheus_client::encoding::text::encode(&mut out, &registry).expect("encode metrics");
        out
    }
}
