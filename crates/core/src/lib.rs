//! Secrets Manager semantics over a Region's store and key service, and the KMS, IAM and STS
//! subsets. Every AWS operation lives in its own file named after it: `ops/` (Secrets
//! Manager, `ops/get_secret_value.rs`), `kms/`, `iam/`, `sts/`; each folder's `mod.rs` has the
//! service's table of operations (`operation.rs`) and its `dispatch`.

pub mod authorize;
pub mod caller;
pub mod clock;
pub mod error;
pub mod failback;
pub mod failover;
pub mod iam;
pub mod input;
pub mod key_rotation;
pub mod keys;
pub mod kms;
pub mod model;
pub mod operation;
pub mod ops;
pub mod outbox;
pub mod principals;
pub mod purge;
pub mod query;
pub mod region;
pub mod replica_regions;
pub mod replication;
pub mod rotation;
pub mod schedule;
pub mod secret;
pub mod sts;
pub mod user_tags;
pub mod validate;
pub mod view;

pub use caller::Caller;
pub use clock::{Clock, SystemClock};
pub use error::{Error, ErrorCode, Result};
pub use region::RegionService;
