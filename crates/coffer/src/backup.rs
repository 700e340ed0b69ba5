//! `coffer backup` / `coffer restore`: a consistent, encrypted export of one Region that loads
//! into either backend (SQLite file or PostgreSQL schema).
//!
//! File format (`.cbk`):
//!
//! ```text
//! COFFER-BACKUP 1\n
//! {"region":"us-east-1","format_version":2,"created_ms":...,"secrets":3}\n     header (JSON)
//! <sealed body>                                                                 the rest
//! ```
//!
//! The body is JSON (the Region's records, and the deployment's principals so a restore into a
//! new IAM store brings the access keys along) sealed with AES-256-GCM under a key derived
//! from the Region's root key (HKDF label `coffer backup v1\0<region>`), with the header bound
//! as associated data. So: a backup is readable only with the same `keys/<region>.key` (which
//! the restored Region needs anyway: its KMS keys are wrapped by it), and a changed byte
//! anywhere, header included, makes `restore` refuse the file before writing anything. Secret
//! values inside are still the store's ciphertext, never plaintext; access keys are still
//! sealed by `keys/deployment.key`.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use coffer_kms::RootKey;
use coffer_store::{
    AccessKeyRecord, IamStore, KmsAliasRecord, KmsKeyRecord, OutboxEntry, OutboxRow,
    RegionSnapshot, Secret, SecretRecord, Store, Tag, UserPolicyRecord, UserRecord, ValueKind,
    VersionRecord,
};
use serde::{Deserialize, Serialize};

use crate::config::Settings;
use crate::data_dir::{self, RegionStore};

const MAGIC: &str = "COFFER-BACKUP 1\n";

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Header {
    region: String,
    format_version: i64,
    created_ms: i64,
    secrets: usize,
}

#[derive(Serialize, Deserialize)]
struct Body {
    secrets: Vec<SecretOut>,
    kms_keys: Vec<KmsKeyOut>,
    kms_aliases: Vec<AliasOut>,
    outbox: Vec<OutboxOut>,
    accounts: Vec<String>,
    users: Vec<UserOut>,
    access_keys: Vec<AccessKeyOut>,
    /// Users' inline policies (absent in backups made before they existed).
    #[serde(default)]
    user_policies: Vec<UserPolicyOut>,
    /// Promoted replicas (absent in backups made before they were recorded).
    #[serde(default)]
    detachments: Vec<coffer_store::Detachment>,
    /// Users' tags, of the users that have any (absent in backups made before they existed).
    #[serde(default)]
    user_tags: Vec<UserTagsOut>,
}

#[derive(Serialize, Deserialize)]
struct UserTagsOut {
    user_arn: String,
    /// As the IAM store keeps them: a JSON array of `{"Key", "Value"}`.
    tags: String,
}

#[derive(Serialize, Deserialize)]
struct UserPolicyOut {
    user_arn: String,
    policy_name: String,
    document: String,
    updated_ms: i64,
}

#[derive(Serialize, Deserialize)]
struct SecretOut {
    arn: String,
    account_id: String,
    name: String,
    description: Option<String>,
    kms_key_id: Option<String>,
    tags: Option<Vec<Tag>>,
    resource_policy: Option<String>,
    created_ms: i64,
    last_changed_ms: i64,
    last_accessed_day: Option<i64>,
    deleted_ms: Option<i64>,
    purge_at_ms: Option<i64>,
    rotation: Option<String>,
    replication: Option<String>,
    row_version: i64,
    versions: Vec<VersionOut>,
}

#[derive(Serialize, Deserialize)]
struct VersionOut {
    version_id: String,
    stages: Vec<String>,
    created_ms: i64,
    last_accessed_day: Option<i64>,
    kms_key_arn: Option<String>,
    value_kind: i64,
    wrapped_data_key: Option<String>,
    ciphertext: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct KmsKeyOut {
    key_arn: String,
    account_id: String,
    key_id: String,
    wrapped_material: String,
    metadata: String,
    created_ms: i64,
}

#[derive(Serialize, Deserialize)]
struct AliasOut {
    account_id: String,
    alias_name: String,
    target_key_arn: String,
    created_ms: i64,
}

#[derive(Serialize, Deserialize)]
struct OutboxOut {
    secret_arn: String,
    dest_region: String,
    kind: String,
    payload: String,
    enqueued_ms: i64,
    attempts: i64,
    next_attempt_ms: i64,
    first_failure_ms: Option<i64>,
}

#[derive(Serialize, Deserialize)]
struct UserOut {
    user_arn: String,
    account_id: String,
    user_name: String,
    user_id: String,
    is_admin: bool,
    created_ms: i64,
}

#[derive(Serialize, Deserialize)]
struct AccessKeyOut {
    access_key_id: String,
    user_arn: String,
    account_id: String,
    wrapped_secret: String,
    status: String,
    created_ms: i64,
}

fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

fn unb64(text: &str) -> Result<Vec<u8>, String> {
    B64.decode(text)
        .map_err(|_| "the backup's contents are damaged".to_string())
}

fn opt_unb64(text: &Option<String>) -> Result<Option<Vec<u8>>, String> {
    text.as_deref().map(unb64).transpose()
}

fn body_from(
    snapshot: RegionSnapshot,
    accounts: Vec<String>,
    users: Vec<UserRecord>,
    keys: Vec<AccessKeyRecord>,
    policies: Vec<UserPolicyRecord>,
) -> Body {
    Body {
        secrets: snapshot
            .secrets
            .into_iter()
            .map(|s| {
                let r = s.record;
                SecretOut {
                    arn: r.arn,
                    account_id: r.account_id,
                    name: r.name,
                    description: r.description,
                    kms_key_id: r.kms_key_id,
                    tags: r.tags,
                    resource_policy: r.resource_policy,
                    created_ms: r.created_ms,
                    last_changed_ms: r.last_changed_ms,
                    last_accessed_day: r.last_accessed_day,
                    deleted_ms: r.deleted_ms,
                    purge_at_ms: r.purge_at_ms,
                    rotation: r.rotation,
                    replication: r.replication,
                    row_version: r.row_version,
                    versions: s
                        .versions
                        .into_iter()
                        .map(|v| VersionOut {
                            version_id: v.version_id,
                            stages: v.stages,
                            created_ms: v.created_ms,
                            last_accessed_day: v.last_accessed_day,
                            kms_key_arn: v.kms_key_arn,
                            value_kind: v.value_kind as i64,
                            wrapped_data_key: v.wrapped_data_key.as_deref().map(b64),
                            ciphertext: v.ciphertext.as_deref().map(b64),
                        })
                        .collect(),
                }
            })
            .collect(),
        kms_keys: snapshot
            .kms_keys
            .into_iter()
            .map(|k| KmsKeyOut {
                key_arn: k.key_arn,
                account_id: k.account_id,
                key_id: k.key_id,
                wrapped_material: b64(&k.wrapped_material),
                metadata: k.metadata,
                created_ms: k.created_ms,
            })
            .collect(),
        kms_aliases: snapshot
            .kms_aliases
            .into_iter()
            .map(|a| AliasOut {
                account_id: a.account_id,
                alias_name: a.alias_name,
                target_key_arn: a.target_key_arn,
                created_ms: a.created_ms,
            })
            .collect(),
        outbox: snapshot
            .outbox
            .into_iter()
            .map(|o| OutboxOut {
                secret_arn: o.entry.secret_arn,
                dest_region: o.entry.dest_region,
                kind: o.entry.kind,
                payload: o.entry.payload,
                enqueued_ms: o.enqueued_ms,
                attempts: o.attempts,
                next_attempt_ms: o.next_attempt_ms,
                first_failure_ms: o.first_failure_ms,
            })
            .collect(),
        detachments: snapshot.detachments,
        accounts,
        users: users
            .into_iter()
            .map(|u| UserOut {
                user_arn: u.user_arn,
                account_id: u.account_id,
                user_name: u.user_name,
                user_id: u.user_id,
                is_admin: u.is_admin,
                created_ms: u.created_ms,
            })
            .collect(),
        access_keys: keys
            .into_iter()
            .map(|k| AccessKeyOut {
                access_key_id: k.access_key_id,
                user_arn: k.user_arn,
                account_id: k.account_id,
                wrapped_secret: b64(&k.wrapped_secret),
                status: k.status,
                created_ms: k.created_ms,
            })
            .collect(),
        user_policies: policies
            .into_iter()
            .map(|p| UserPolicyOut {
                user_arn: p.user_arn,
                policy_name: p.policy_name,
                document: p.document,
                updated_ms: p.updated_ms,
            })
            .collect(),
        user_tags: Vec::new(),
    }
}

fn snapshot_from(body: &Body, format_version: i64) -> Result<RegionSnapshot, String> {
    let mut secrets = Vec::new();
    for s in &body.secrets {
        let mut versions = Vec::new();
        for v in &s.versions {
            versions.push(VersionRecord {
                secret_arn: s.arn.clone(),
                version_id: v.version_id.clone(),
                stages: v.stages.clone(),
                created_ms: v.created_ms,
                last_accessed_day: v.last_accessed_day,
                kms_key_arn: v.kms_key_arn.clone(),
                value_kind: ValueKind::from_i64(v.value_kind),
                wrapped_data_key: opt_unb64(&v.wrapped_data_key)?,
                ciphertext: opt_unb64(&v.ciphertext)?,
            });
        }
        secrets.push(Secret {
            record: SecretRecord {
                arn: s.arn.clone(),
                account_id: s.account_id.clone(),
                name: s.name.clone(),
                description: s.description.clone(),
                kms_key_id: s.kms_key_id.clone(),
                tags: s.tags.clone(),
                resource_policy: s.resource_policy.clone(),
                created_ms: s.created_ms,
                last_changed_ms: s.last_changed_ms,
                last_accessed_day: s.last_accessed_day,
                deleted_ms: s.deleted_ms,
                purge_at_ms: s.purge_at_ms,
                rotation: s.rotation.clone(),
                replication: s.replication.clone(),
                row_version: s.row_version,
            },
            versions,
        });
    }
    let mut kms_keys = Vec::new();
    for k in &body.kms_keys {
        kms_keys.push(KmsKeyRecord {
            key_arn: k.key_arn.clone(),
            account_id: k.account_id.clone(),
            key_id: k.key_id.clone(),
            wrapped_material: unb64(&k.wrapped_material)?,
            metadata: k.metadata.clone(),
            created_ms: k.created_ms,
        });
    }
    Ok(RegionSnapshot {
        format_version,
        secrets,
        kms_keys,
        kms_aliases: body
            .kms_aliases
            .iter()
            .map(|a| KmsAliasRecord {
                account_id: a.account_id.clone(),
                alias_name: a.alias_name.clone(),
                target_key_arn: a.target_key_arn.clone(),
                created_ms: a.created_ms,
            })
            .collect(),
        outbox: body
            .outbox
            .iter()
            .map(|o| OutboxRow {
                id: 0,
                entry: OutboxEntry {
                    secret_arn: o.secret_arn.clone(),
                    dest_region: o.dest_region.clone(),
                    kind: o.kind.clone(),
                    payload: o.payload.clone(),
                },
                enqueued_ms: o.enqueued_ms,
                attempts: o.attempts,
                next_attempt_ms: o.next_attempt_ms,
                first_failure_ms: o.first_failure_ms,
            })
            .collect(),
        detachments: body.detachments.clone(),
    })
}

/// The oldest store format whose backups this Coffer restores.
const RESTORABLE_SINCE_FORMAT: i64 = 3;

/// The key a Region's backups are sealed with, derived from its root key.
fn backup_key(root: &RootKey, region: &str) -> RootKey {
    let subkey = root.derive_subkey(&format!("coffer backup v1\0{region}"));
    RootKey::from_hex(&hex_encode(&subkey[..])).expect("64 hex digits")
}

fn hex_encode(bytes: &[u8]) -> zeroize::Zeroizing<String> {
    let mut out = zeroize::Zeroizing::new(String::with_capacity(bytes.len() * 2));
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn region_key(dir: &Path, region: &str) -> Result<RootKey, String> {
    let path = dir.join("keys").join(format!("{region}.key"));
    RootKey::load(&path).map_err(|e| {
        format!(
            "{e} (a backup of {region} is sealed with a key derived from this file: copy \
             keys/{region}.key of the backed-up data directory here)"
        )
    })
}

fn resolved_dir(settings: &Settings) -> Result<std::path::PathBuf, String> {
    settings.data_dir.canonicalize().map_err(|e| {
        format!(
            "cannot open data directory {}: {e}",
            settings.data_dir.display()
        )
    })
}

/// Writes a backup of `region` to `output`; returns the number of secrets.
pub async fn backup(settings: &Settings, region: &str, output: &Path) -> Result<usize, String> {
    if !settings.regions.iter().any(|r| r == region) {
        return Err(format!(
            "Region {region} is not one this configuration serves ({})",
            settings.regions.join(", ")
        ));
    }
    let dir = resolved_dir(settings)?;
    let key = region_key(&dir, region)?;
    let snapshot = match data_dir::open_region_store(settings, &dir, region, false).await? {
        RegionStore::Sqlite(store, _) => {
            store.close().await;
            coffer_store::export_sqlite(&data_dir::region_file(&dir, region))
                .await
                .map_err(|e| e.to_string())?
        }
        RegionStore::Postgres(store) => {
            let snapshot = store.export().await.map_err(|e| e.to_string());
            store.close().await;
            snapshot?
        }
    };
    let (iam, _) = data_dir::open_iam_store(settings, &dir, false).await?;
    let accounts = iam.accounts().await.map_err(|e| e.to_string())?;
    let users = iam.users().await.map_err(|e| e.to_string())?;
    let access_keys = iam.access_keys().await.map_err(|e| e.to_string())?;
    let mut user_policies = Vec::new();
    let mut user_tags = Vec::new();
    for user in &users {
        user_policies.extend(
            iam.user_policies(&user.user_arn)
                .await
                .map_err(|e| e.to_string())?,
        );
        if let Some(tags) = iam
            .user_tags(&user.user_arn)
            .await
            .map_err(|e| e.to_string())?
            .filter(|t| t != "[]")
        {
            user_tags.push(UserTagsOut {
                user_arn: user.user_arn.clone(),
                tags,
            });
        }
    }
    iam.close().await;
    let header = Header {
        region: region.to_string(),
        format_version: snapshot.format_version,
        created_ms: chrono::Utc::now().timestamp_millis(),
        secrets: snapshot.secrets.len(),
    };
    let count = header.secrets;
    let header_line = serde_json::to_string(&header).expect("header serializes");
    let mut out = body_from(snapshot, accounts, users, access_keys, user_policies);
    out.user_tags = user_tags;
    let body = zeroize::Zeroizing::new(serde_json::to_vec(&out).expect("backup serializes"));
    let sealed = backup_key(&key, region).seal_credential(&header_line, &body);
    let mut file = Vec::with_capacity(MAGIC.len() + header_line.len() + 1 + sealed.len());
    file.extend_from_slice(MAGIC.as_bytes());
    file.extend_from_slice(header_line.as_bytes());
    file.push(b'\n');
    file.extend_from_slice(&sealed);
    write_new(output, &file)?;
    Ok(count)
}

fn write_new(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Opens and checks a backup file of `region`: nothing is written when this fails.
fn open_file(bytes: &[u8], region: &str, key: &RootKey) -> Result<(Header, Body), String> {
    let damaged = || {
        format!(
            "the backup is damaged or was altered, or keys/{region}.key is not the key of the \
             backed-up Region; nothing was restored"
        )
    };
    let rest = bytes
        .strip_prefix(MAGIC.as_bytes())
        .ok_or_else(|| "not a Coffer backup file (no COFFER-BACKUP 1 header)".to_string())?;
    let newline = rest.iter().position(|&b| b == b'\n').ok_or_else(damaged)?;
    let header_line = std::str::from_utf8(&rest[..newline]).map_err(|_| damaged())?;
    let header: Header = serde_json::from_str(header_line).map_err(|_| damaged())?;
    if header.region != region {
        return Err(format!(
            "the backup is of Region {}, not {region}; pass --region {}",
            header.region, header.region
        ));
    }
    let body = backup_key(key, region)
        .open_credential(header_line, &rest[newline + 1..])
        .map_err(|_| damaged())?;
    let body: Body = serde_json::from_slice(&body).map_err(|_| damaged())?;
    Ok((header, body))
}

/// Loads a backup of `region` into the Region's configured store, which must be empty; also
/// loads the deployment's principals into the IAM store when it has none yet.
pub async fn restore(settings: &Settings, region: &str, input: &Path) -> Result<usize, String> {
    if !settings.regions.iter().any(|r| r == region) {
        return Err(format!(
            "Region {region} is not one this configuration serves ({})",
            settings.regions.join(", ")
        ));
    }
    let bytes =
        std::fs::read(input).map_err(|e| format!("cannot read {}: {e}", input.display()))?;
    data_dir::create_private_dir(&settings.data_dir.join("regions"))?;
    let dir = resolved_dir(settings)?;
    let key = region_key(&dir, region)?;
    // A backup made before `coffer rotate-root-key` is sealed under the retired key
    // (`keys/<region>.key.old-<fingerprint>`), which still opens it and its KMS keys.
    let retired = crate::root_keys::other_keys(&dir.join("keys").join(format!("{region}.key")));
    let (header, body) = std::iter::once(&key)
        .chain(&retired)
        .find_map(|k| open_file(&bytes, region, k).ok())
        .map(Ok)
        .unwrap_or_else(|| open_file(&bytes, region, &key))?;
    let current = RegionSnapshot::current_format_version();
    // Format 4 only added a table (replica detachments, empty in an older backup), so a
    // format-3 backup restores as it is; format 5 only added data derived from the secrets
    // (search terms, written as the restore inserts them). A later migration that changes what a backup holds
    // must raise this bound.
    if !(RESTORABLE_SINCE_FORMAT..=current).contains(&header.format_version) {
        return Err(format!(
            "the backup has store format {}, this Coffer writes {current}: restore it with the \
             Coffer version that made it",
            header.format_version
        ));
    }
    let snapshot = snapshot_from(&body, header.format_version)?;
    // Every KMS key in the backup must open under this root key before anything is written.
    for k in &snapshot.kms_keys {
        std::iter::once(&key)
            .chain(&retired)
            .find_map(|root| {
                root.unwrap_key_material(&k.key_arn, &k.wrapped_material)
                    .ok()
            })
            .ok_or_else(|| {
                format!(
                    "keys/{region}.key does not open the backup's KMS keys; nothing was restored"
                )
            })?;
    }

    // The Region store must be empty: checked here before the principals are written, and
    // again inside the import's transaction.
    let store =
        data_dir::open_region_store(settings, &dir, region, settings.migrate_on_start).await?;
    let held = match &store {
        RegionStore::Sqlite(s, _) => {
            s.close().await;
            coffer_store::export_sqlite(&data_dir::region_file(&dir, region)).await
        }
        RegionStore::Postgres(s) => s.export().await,
    };
    store.close().await;
    let held = held.map_err(|e| e.to_string())?;
    if !held.secrets.is_empty() || !held.kms_keys.is_empty() {
        return Err(format!(
            "the {region} store already holds secrets or KMS keys; restore only into an empty \
             Region store (a new data directory, or a new PostgreSQL database). Nothing was \
             written."
        ));
    }

    let (iam, _) = data_dir::open_iam_store(settings, &dir, settings.migrate_on_start).await?;
    let result = restore_iam(&*iam, &body).await;
    iam.close().await;
    result?;

    let store =
        data_dir::open_region_store(settings, &dir, region, settings.migrate_on_start).await?;
    let result = match &store {
        RegionStore::Sqlite(s, _) => {
            s.close().await;
            coffer_store::import_sqlite(&data_dir::region_file(&dir, region), &snapshot).await
        }
        RegionStore::Postgres(s) => s.import(&snapshot).await,
    };
    store.close().await;
    result.map_err(|e| e.to_string())?;
    Ok(snapshot.secrets.len())
}

/// The principals go along so a Region restored into a new IAM store answers the same access
/// keys; an IAM store that already has the backup's account is left as it is, one of another
/// account is refused.
async fn restore_iam(iam: &dyn IamStore, body: &Body) -> Result<(), String> {
    let existing = iam.accounts().await.map_err(|e| e.to_string())?;
    if let Some(account) = existing.first() {
        if body.accounts.is_empty() || body.accounts.contains(account) {
            return Ok(());
        }
        return Err(format!(
            "the IAM store belongs to account {account}, the backup to {}: restore into a data \
             directory (or IAM store) of the same account, or a new one; nothing was restored",
            body.accounts.join(", ")
        ));
    }
    let now = chrono::Utc::now().timestamp_millis();
    for account in &body.accounts {
        iam.create_account(account, now)
            .await
            .map_err(|e| e.to_string())?;
    }
    for u in &body.users {
        iam.create_user(UserRecord {
            user_arn: u.user_arn.clone(),
            account_id: u.account_id.clone(),
            user_name: u.user_name.clone(),
            user_id: u.user_id.clone(),
            is_admin: u.is_admin,
            created_ms: u.created_ms,
        })
        .await
        .map_err(|e| e.to_string())?;
    }
    for k in &body.access_keys {
        iam.create_access_key(AccessKeyRecord {
            access_key_id: k.access_key_id.clone(),
            user_arn: k.user_arn.clone(),
            account_id: k.account_id.clone(),
            wrapped_secret: unb64(&k.wrapped_secret)?,
            status: k.status.clone(),
            created_ms: k.created_ms,
        })
        .await
        .map_err(|e| e.to_string())?;
    }
    for p in &body.user_policies {
        iam.put_user_policy(UserPolicyRecord {
            user_arn: p.user_arn.clone(),
            policy_name: p.policy_name.clone(),
            document: p.document.clone(),
            updated_ms: p.updated_ms,
        })
        .await
        .map_err(|e| e.to_string())?;
    }
    for t in &body.user_tags {
        iam.replace_user_tags(&t.user_arn, "[]", &t.tags)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> RootKey {
        RootKey::from_hex(&"ab".repeat(32)).unwrap()
    }

    fn sample(region: &str) -> Vec<u8> {
        let header = serde_json::to_string(&Header {
            region: region.into(),
            format_version: 2,
            created_ms: 1,
            secrets: 0,
        })
        .unwrap();
        let body = serde_json::to_vec(&body_from(
            RegionSnapshot::default(),
            vec!["111122223333".into()],
            vec![],
            vec![],
            vec![],
        ))
        .unwrap();
        let mut out = MAGIC.as_bytes().to_vec();
        out.extend_from_slice(header.as_bytes());
        out.push(b'\n');
        out.extend_from_slice(&backup_key(&key(), region).seal_credential(&header, &body));
        out
    }

    #[test]
    fn a_backup_opens_with_its_regions_key_only() {
        let file = sample("us-east-1");
        let (header, body) = open_file(&file, "us-east-1", &key()).unwrap();
        assert_eq!(header.region, "us-east-1");
        assert_eq!(body.accounts, vec!["111122223333".to_string()]);
        let other = RootKey::from_hex(&"cd".repeat(32)).unwrap();
        assert!(open_file(&file, "us-east-1", &other).is_err_and(|e| e.contains("damaged")));
        assert!(open_file(&file, "eu-west-1", &key()).is_err_and(|e| e.contains("us-east-1")));
    }

    #[test]
    fn any_changed_byte_is_refused() {
        let file = sample("us-east-1");
        // Every byte after the magic: header bytes are authenticated as well as the body.
        for i in MAGIC.len()..file.len() {
            let mut bad = file.clone();
            bad[i] ^= 0x01;
            assert!(
                open_file(&bad, "us-east-1", &key()).is_err(),
                "byte {i} changed and still accepted"
            );
        }
        assert!(open_file(&file[..file.len() - 1], "us-east-1", &key()).is_err());
        assert!(
            open_file(b"hello", "us-east-1", &key())
                .is_err_and(|e| e.contains("not a Coffer backup"))
        );
    }
}
