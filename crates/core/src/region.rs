//! One Region's service: its store, its keys and its clock. Every operation runs against
//! exactly one `RegionService`, chosen by the SigV4 credential scope.
//!
//! The Region's KMS keys (root key, key cache, finding and checking keys, encrypting secret
//! values) are [`crate::keys::Keys`], reached as `region.keys`.

use std::sync::Arc;

use coffer_kms::RootKey;
use coffer_store::Store;

pub use crate::caller::Caller;
pub use crate::clock::{Clock, SystemClock};
use crate::keys::Keys;

pub struct RegionService {
    pub region: String,
    pub partition: &'static str,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    /// The Region's KMS keys.
    pub keys: Keys,
    /// Wakes the replication workers after a commit that wrote outbox rows.
    outbox_notify: Arc<tokio::sync::Notify>,
    /// The rotation functions this deployment can call (set once at start).
    functions: std::sync::OnceLock<Arc<dyn crate::rotation::RotationFunctions>>,
}

impl RegionService {
    pub fn new(
        region: String,
        partition: &'static str,
        store: Arc<dyn Store>,
        root_key: RootKey,
        clock: Arc<dyn Clock>,
    ) -> RegionService {
        RegionService {
            keys: Keys::new(
                region.clone(),
                partition,
                store.clone(),
                root_key,
                clock.clone(),
            ),
            region,
            partition,
            store,
            clock,
            outbox_notify: Arc::new(tokio::sync::Notify::new()),
            functions: std::sync::OnceLock::new(),
        }
    }

    pub fn set_rotation_functions(&self, functions: Arc<dyn crate::rotation::RotationFunctions>) {
        let _ = self.functions.set(functions);
    }

    /// Whether `lambda_arn` names a rotation function this deployment can call.
    pub fn rotation_function_exists(&self, lambda_arn: &str) -> bool {
        self.functions.get().is_some_and(|f| f.exists(lambda_arn))
    }

    /// Tells the replication workers that outbox rows may be waiting.
    pub fn notify_outbox(&self) {
        self.outbox_notify.notify_one();
    }

    pub fn outbox_notifier(&self) -> Arc<tokio::sync::Notify> {
        self.outbox_notify.clone()
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }
}
