//! Coffer's audit log: every API call as one CloudTrail-shaped JSON line, with secret values
//! redacted, hash-chained so that an edited, removed or reordered record is found, and written
//! before the call's response leaves (fail closed). See `docs/audit.md`.
//!
//! - [`record`]: the record type ([`Record`], [`UserIdentity`]) and [`redact`].
//! - [`chain`]: the line format, the hash chain and [`verify`](chain::verify).
//! - [`log`]: the appender ([`AuditLog`]): a writer thread with group commit.

pub mod chain;
pub mod log;
pub mod record;

pub use chain::{Broken, Summary, verify};
pub use log::{AuditError, AuditLog, Options};
pub use record::{REDACTED, Record, UserIdentity, is_sensitive, redact};
