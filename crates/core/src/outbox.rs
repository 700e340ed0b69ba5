//! Every kind of outbox row as one type. A row is written in the same transaction as the change
//! it announces and read back by the replication worker; this is the one place where a message
//! becomes a row (`kind` + JSON `payload`) and a row becomes a message again. A row that does
//! not read back is an error the worker reports, never a message with a guessed payload.

use coffer_store::OutboxEntry;
use serde::{Deserialize, Serialize};

use crate::kms::replicate_key::ReplicaPayload;

/// What an outbox row asks for; `secret_arn` and `dest_region` stay columns of the row.
#[derive(Debug, Clone, PartialEq)]
pub enum OutboxMessage {
    /// Bring the destination's replica up to the primary's current state. `force`:
    /// ForceOverwriteReplicaSecret (replace another secret of that name there).
    Sync { force: bool },
    /// Delete the destination's replica (RemoveRegionsFromReplication) made by the replication
    /// of `epoch` ([`crate::replication::ReplicaStatus::epoch`]); a replica of a newer epoch
    /// (the Region added again since) stays. `None` in rows of nodes older than this: delete
    /// whatever replica of the secret is there.
    Remove { epoch: Option<i64> },
    /// The replica in `region` was promoted at `epoch` (StopReplicationToReplica): the primary
    /// drops it (`None` from nodes older than epochs: drop whatever is listed).
    Detach { region: String, epoch: Option<i64> },
    /// The replica in `region` was read on `day` (LastAccessedDate in the primary's status).
    Access { region: String, day: Option<i64> },
    /// Create a multi-Region KMS key's replica in the destination (`secret_arn`: the key's ARN).
    Key(ReplicaPayload),
    /// A multi-Region replica key was deleted: its primary's Region stops listing it.
    KeyRemoved,
    /// Run the secret's due rotation of `generation` (addressed to the secret's own Region).
    Rotate { generation: i64 },
}

/// A row that does not read back as an [`OutboxMessage`].
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("outbox row of unknown kind {0:?}")]
    UnknownKind(String),
    #[error("outbox row of kind {kind} has an unreadable payload: {error}")]
    Payload {
        kind: &'static str,
        error: serde_json::Error,
    },
}

pub const KIND_SYNC: &str = "sync";
/// Several `sync` messages of different secrets in one sealed message (a wire kind only, never
/// a row), applied in one replica transaction; answered by the list of their answers.
pub const KIND_SYNC_BATCH: &str = "sync-batch";
pub const KIND_REMOVE: &str = "remove";
/// What a primary announces about secrets whose syncs it could not deliver (a wire kind only,
/// never a row): `Vec<crate::failover::Head>`, answered `Done` (docs/failover.md).
pub const KIND_HEADS: &str = "heads";
/// Failback (wire kinds only): the failed-over Region asks the old primary Region about its
/// copies (`crate::failback::InspectRequest`, answered with their versions, never values), and
/// hands a secret back to it (`crate::failback::HandbackRequest`, answered `Done`/`Failed`).
pub const KIND_INSPECT: &str = "inspect";
pub const KIND_HANDBACK: &str = "handback";
pub const KIND_DETACH: &str = "detach";
pub const KIND_ACCESS: &str = "access";
pub const KIND_KEY: &str = "key";
pub const KIND_KEY_REMOVED: &str = "key-removed";
pub const KIND_ROTATE: &str = "rotate";

#[derive(Serialize, Deserialize)]
struct SyncPayload {
    #[serde(default)]
    force: bool,
}

/// The payload of `detach` and `access` rows (and of their notices on the wire).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct RegionPayload {
    pub region: String,
    #[serde(default)]
    pub day: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<i64>,
}

#[derive(Serialize, Deserialize)]
struct RemovePayload {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    epoch: Option<i64>,
}

#[derive(Serialize, Deserialize)]
struct RotatePayload {
    generation: i64,
}

impl OutboxMessage {
    /// The row's `kind` column (and the wire's message kind).
    pub fn kind(&self) -> &'static str {
        match self {
            OutboxMessage::Sync { .. } => KIND_SYNC,
            OutboxMessage::Remove { .. } => KIND_REMOVE,
            OutboxMessage::Detach { .. } => KIND_DETACH,
            OutboxMessage::Access { .. } => KIND_ACCESS,
            OutboxMessage::Key(_) => KIND_KEY,
            OutboxMessage::KeyRemoved => KIND_KEY_REMOVED,
            OutboxMessage::Rotate { .. } => KIND_ROTATE,
        }
    }

    /// The row that carries this message about `secret_arn` to `dest_region`.
    pub fn entry(&self, secret_arn: &str, dest_region: &str) -> OutboxEntry {
        let payload = match self {
            OutboxMessage::Sync { force } => json(&SyncPayload { force: *force }),
            OutboxMessage::Remove { epoch } => json(&RemovePayload { epoch: *epoch }),
            OutboxMessage::KeyRemoved => "{}".to_string(),
            OutboxMessage::Detach { region, epoch } => json(&RegionPayload {
                region: region.clone(),
                day: None,
                epoch: *epoch,
            }),
            OutboxMessage::Access { region, day } => json(&RegionPayload {
                region: region.clone(),
                day: *day,
                epoch: None,
            }),
            OutboxMessage::Key(payload) => json(payload),
            OutboxMessage::Rotate { generation } => json(&RotatePayload {
                generation: *generation,
            }),
        };
        OutboxEntry {
            secret_arn: secret_arn.to_string(),
            dest_region: dest_region.to_string(),
            kind: self.kind().to_string(),
            payload,
        }
    }

    /// Reads a row back. Rows written before a payload existed (`remove`, `key-removed`) and
    /// payloads missing optional members read as they always did.
    pub fn from_entry(entry: &OutboxEntry) -> Result<OutboxMessage, ProtocolError> {
        fn parse<T: for<'de> Deserialize<'de>>(
            kind: &'static str,
            payload: &str,
        ) -> Result<T, ProtocolError> {
            serde_json::from_str(payload).map_err(|error| ProtocolError::Payload { kind, error })
        }
        let p = entry.payload.as_str();
        Ok(match entry.kind.as_str() {
            KIND_SYNC => OutboxMessage::Sync {
                force: parse::<SyncPayload>(KIND_SYNC, p)?.force,
            },
            KIND_REMOVE => OutboxMessage::Remove {
                epoch: parse::<RemovePayload>(KIND_REMOVE, p)?.epoch,
            },
            KIND_KEY_REMOVED => OutboxMessage::KeyRemoved,
            KIND_DETACH => {
                let r: RegionPayload = parse(KIND_DETACH, p)?;
                OutboxMessage::Detach {
                    region: r.region,
                    epoch: r.epoch,
                }
            }
            KIND_ACCESS => {
                let r: RegionPayload = parse(KIND_ACCESS, p)?;
                OutboxMessage::Access {
                    region: r.region,
                    day: r.day,
                }
            }
            KIND_KEY => OutboxMessage::Key(parse(KIND_KEY, p)?),
            KIND_ROTATE => OutboxMessage::Rotate {
                generation: parse::<RotatePayload>(KIND_ROTATE, p)?.generation,
            },
            other => return Err(ProtocolError::UnknownKind(other.to_string())),
        })
    }

    /// The payload a `remove`, `detach` or `access` notice to `dest` carries on the wire.
    pub fn region_payload(&self, dest: &str) -> Option<RegionPayload> {
        match self {
            OutboxMessage::Remove { epoch } => Some(RegionPayload {
                region: dest.to_string(),
                day: None,
                epoch: *epoch,
            }),
            OutboxMessage::Detach { region, epoch } => Some(RegionPayload {
                region: region.clone(),
                day: None,
                epoch: *epoch,
            }),
            OutboxMessage::Access { region, day } => Some(RegionPayload {
                region: region.clone(),
                day: *day,
                epoch: None,
            }),
            _ => None,
        }
    }
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("outbox payloads serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_reads_back_from_its_row() {
        let messages = [
            OutboxMessage::Sync { force: true },
            OutboxMessage::Sync { force: false },
            OutboxMessage::Remove { epoch: Some(5) },
            OutboxMessage::Remove { epoch: None },
            OutboxMessage::Detach {
                region: "us-east-1".into(),
                epoch: Some(7),
            },
            OutboxMessage::Access {
                region: "eu-west-1".into(),
                day: Some(20_000),
            },
            OutboxMessage::Key(ReplicaPayload {
                description: Some("d".into()),
                policy: None,
                tags: Vec::new(),
            }),
            OutboxMessage::KeyRemoved,
            OutboxMessage::Rotate { generation: 3 },
        ];
        for m in messages {
            let row = m.entry(
                "arn:aws:secretsmanager:us-west-2:1:secret:x-AbCdEf",
                "us-east-1",
            );
            assert_eq!(row.kind, m.kind());
            let back = OutboxMessage::from_entry(&row).unwrap();
            assert_eq!(format!("{back:?}"), format!("{m:?}"));
        }
    }

    #[test]
    fn rows_of_older_nodes_still_read_and_bad_rows_are_errors() {
        let row = |kind: &str, payload: &str| OutboxEntry {
            secret_arn: "a".into(),
            dest_region: "b".into(),
            kind: kind.into(),
            payload: payload.into(),
        };
        // A detach notice from before epochs: no epoch.
        assert_eq!(
            OutboxMessage::from_entry(&row("detach", r#"{"region":"us-east-1","day":null}"#))
                .unwrap(),
            OutboxMessage::Detach {
                region: "us-east-1".into(),
                epoch: None
            }
        );
        // A removal from before epochs: any replica of the secret goes.
        assert_eq!(
            OutboxMessage::from_entry(&row("remove", "{}")).unwrap(),
            OutboxMessage::Remove { epoch: None }
        );
        assert_eq!(
            OutboxMessage::from_entry(&row("sync", "{}")).unwrap(),
            OutboxMessage::Sync { force: false }
        );
        assert!(matches!(
            OutboxMessage::from_entry(&row("teleport", "{}")),
            Err(ProtocolError::UnknownKind(_))
        ));
        assert!(matches!(
            OutboxMessage::from_entry(&row("detach", "not json")),
            Err(ProtocolError::Payload { kind: "detach", .. })
        ));
    }
}
