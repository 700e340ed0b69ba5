//! `coffer backup` / `coffer restore`: a consistent, encrypted export of one Region that loads
//! into either backend (SQLite file or PostgreSQL schema), streamed both ways so memory stays
//! bounded whatever the number of secrets.
//!
//! File format (`.cbk`), file format 2 (written since issue 13):
//!
//! ```text
//! COFFER-BACKUP 1\n
//! {"region":"us-east-1","format_version":6,"created_ms":...,"secrets":3,
//!  "file_format":2,"salt":"<64 hex digits>"}\n                         header (JSON, one line)
//! frame*                                                               the rest
//! frame = last (1 byte: 0, or 1 for the final frame) || length (4 bytes, big-endian)
//!         || sealed chunk (length bytes: ciphertext || 16-byte tag)
//! ```
//!
//! Each chunk's plaintext is JSON lines, one record a line (`{"kms_key":{...}}`,
//! `{"secret":{...}}` with the secret's versions, `{"outbox":{...}}`, `{"account":"..."}`,
//! ...: [`Record`]), up to about [`CHUNK_BYTES`] a chunk. The chunks are sealed with the STREAM
//! construction over AES-256-GCM (`coffer_kms::StreamSealer`: chunk `i` under the nonce
//! `0 (7 bytes) || i (4 bytes) || last flag (1 byte)`) under a key derived from the Region's
//! root key: the backup key (HKDF label `coffer backup v1\0<region>`, as in format 1), and from
//! it one key per file (label `coffer backup stream\0<salt>`, the header's random salt). The
//! magic line and the header line are the associated data of every chunk. So: a backup is
//! readable only with the same `keys/<region>.key` (which the restored Region needs anyway: its
//! KMS keys are wrapped by it); a changed byte anywhere, header included, a chunk dropped,
//! repeated or moved, or a file cut short (the final chunk is the only one sealed as last)
//! makes `restore` refuse the file, and `restore` reads and checks every chunk before it
//! writes anything. Secret values inside are still the store's ciphertext, never plaintext;
//! access keys are still sealed by `keys/deployment.key`.
//!
//! Format 1 (before issue 13; its header has no `file_format`) is still restored: the rest of
//! the file is one JSON [`Body`] sealed with AES-256-GCM under the backup key, the header line
//! bound as associated data.
//!
//! A backup reads the Region in pages inside one read transaction (see
//! `coffer_store::export_sqlite_to`) and writes each chunk as it fills; the file is created
//! with mode 0600, never over an existing file, and removed when the backup fails. A restore
//! reads the file twice: first every chunk is opened and every record checked (nothing kept
//! but the deployment's principals), then the records are imported in one transaction.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use coffer_kms::{RootKey, STREAM_TAG_LEN, StreamOpener, StreamSealer};
use coffer_store::{
    AccessKeyRecord, IamStore, KmsAliasRecord, KmsKeyRecord, OutboxEntry, OutboxRow, RegionItem,
    RegionSink, RegionSnapshot, Secret, SecretRecord, Store, Tag, UserPolicyRecord, UserRecord,
    ValueKind, VersionRecord,
};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::config::Settings;
use crate::data_dir::{self, RegionStore};

const MAGIC: &str = "COFFER-BACKUP 1\n";

/// The file format `coffer backup` writes (see the top of this file); a header without
/// `file_format` is format 1.
const FILE_FORMAT: i64 = 2;

/// A chunk is sealed once its records reach this many bytes (a record is never split, so one
/// large secret makes a larger chunk).
const CHUNK_BYTES: usize = 1 << 20;

/// The largest sealed chunk a restore reads: a bound on what a damaged length can make it
/// allocate. A chunk is at most [`CHUNK_BYTES`] plus one record; the largest secret (every
/// version of 64 KiB, base64) is far below this.
const MAX_SEALED_CHUNK: usize = 64 << 20;

/// The longest header line a restore reads.
const MAX_HEADER: u64 = 64 << 10;

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Header {
    region: String,
    format_version: i64,
    created_ms: i64,
    secrets: usize,
    /// Absent: format 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file_format: Option<i64>,
    /// Format 2: 32 random bytes (hex) that make the file's key its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    salt: Option<String>,
}

/// The body of a format-1 file, all records in one JSON document.
#[derive(Serialize, Deserialize, Default)]
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

/// One line of a format-2 chunk. A file holds the Region's records in the order the export
/// reads them (KMS keys, aliases, secrets, outbox rows, detachments), then the deployment's
/// principals (accounts, users, access keys, inline policies, user tags).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Record {
    KmsKey(KmsKeyOut),
    KmsAlias(AliasOut),
    Secret(SecretOut),
    Outbox(OutboxOut),
    Detachment(coffer_store::Detachment),
    Account(String),
    User(UserOut),
    AccessKey(AccessKeyOut),
    UserPolicy(UserPolicyOut),
    UserTags(UserTagsOut),
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

fn unb64(text: &str) -> anyhow::Result<Vec<u8>> {
    B64.decode(text)
        .map_err(|_| anyhow!("the backup's contents are damaged"))
}

fn opt_unb64(text: &Option<String>) -> anyhow::Result<Option<Vec<u8>>> {
    text.as_deref().map(unb64).transpose()
}

impl Record {
    fn of_item(item: RegionItem) -> Record {
        match item {
            RegionItem::KmsKey(k) => Record::KmsKey(KmsKeyOut {
                key_arn: k.key_arn,
                account_id: k.account_id,
                key_id: k.key_id,
                wrapped_material: b64(&k.wrapped_material),
                metadata: k.metadata,
                created_ms: k.created_ms,
            }),
            RegionItem::KmsAlias(a) => Record::KmsAlias(AliasOut {
                account_id: a.account_id,
                alias_name: a.alias_name,
                target_key_arn: a.target_key_arn,
                created_ms: a.created_ms,
            }),
            RegionItem::Secret(s) => Record::Secret(secret_out(s)),
            RegionItem::Outbox(o) => Record::Outbox(OutboxOut {
                secret_arn: o.entry.secret_arn,
                dest_region: o.entry.dest_region,
                kind: o.entry.kind,
                payload: o.entry.payload,
                enqueued_ms: o.enqueued_ms,
                attempts: o.attempts,
                next_attempt_ms: o.next_attempt_ms,
                first_failure_ms: o.first_failure_ms,
            }),
            RegionItem::Detachment(d) => Record::Detachment(d),
        }
    }

    /// The Region's record this is; `None` for the deployment's principals.
    fn into_item(self) -> anyhow::Result<Option<RegionItem>> {
        Ok(Some(match self {
            Record::KmsKey(k) => RegionItem::KmsKey(KmsKeyRecord {
                wrapped_material: unb64(&k.wrapped_material)?,
                key_arn: k.key_arn,
                account_id: k.account_id,
                key_id: k.key_id,
                metadata: k.metadata,
                created_ms: k.created_ms,
            }),
            Record::KmsAlias(a) => RegionItem::KmsAlias(KmsAliasRecord {
                account_id: a.account_id,
                alias_name: a.alias_name,
                target_key_arn: a.target_key_arn,
                created_ms: a.created_ms,
            }),
            Record::Secret(s) => RegionItem::Secret(secret_in(s)?),
            Record::Outbox(o) => RegionItem::Outbox(OutboxRow {
                id: 0,
                entry: OutboxEntry {
                    secret_arn: o.secret_arn,
                    dest_region: o.dest_region,
                    kind: o.kind,
                    payload: o.payload,
                },
                enqueued_ms: o.enqueued_ms,
                attempts: o.attempts,
                next_attempt_ms: o.next_attempt_ms,
                first_failure_ms: o.first_failure_ms,
            }),
            Record::Detachment(d) => RegionItem::Detachment(d),
            Record::Account(_)
            | Record::User(_)
            | Record::AccessKey(_)
            | Record::UserPolicy(_)
            | Record::UserTags(_) => return Ok(None),
        }))
    }
}

fn secret_out(s: Secret) -> SecretOut {
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
}

fn secret_in(s: SecretOut) -> anyhow::Result<Secret> {
    let mut versions = Vec::with_capacity(s.versions.len());
    for v in s.versions {
        versions.push(VersionRecord {
            secret_arn: s.arn.clone(),
            wrapped_data_key: opt_unb64(&v.wrapped_data_key)?,
            ciphertext: opt_unb64(&v.ciphertext)?,
            version_id: v.version_id,
            stages: v.stages,
            created_ms: v.created_ms,
            last_accessed_day: v.last_accessed_day,
            kms_key_arn: v.kms_key_arn,
            value_kind: ValueKind::from_i64(v.value_kind),
        });
    }
    Ok(Secret {
        record: SecretRecord {
            arn: s.arn,
            account_id: s.account_id,
            name: s.name,
            description: s.description,
            kms_key_id: s.kms_key_id,
            tags: s.tags,
            resource_policy: s.resource_policy,
            created_ms: s.created_ms,
            last_changed_ms: s.last_changed_ms,
            last_accessed_day: s.last_accessed_day,
            deleted_ms: s.deleted_ms,
            purge_at_ms: s.purge_at_ms,
            rotation: s.rotation,
            replication: s.replication,
            row_version: s.row_version,
        },
        versions,
    })
}

/// A format-1 body as the records a format-2 file would hold, in the same order.
fn records_of(body: Body) -> Vec<Record> {
    let mut out = Vec::new();
    out.extend(body.kms_keys.into_iter().map(Record::KmsKey));
    out.extend(body.kms_aliases.into_iter().map(Record::KmsAlias));
    out.extend(body.secrets.into_iter().map(Record::Secret));
    out.extend(body.outbox.into_iter().map(Record::Outbox));
    out.extend(body.detachments.into_iter().map(Record::Detachment));
    out.extend(body.accounts.into_iter().map(Record::Account));
    out.extend(body.users.into_iter().map(Record::User));
    out.extend(body.access_keys.into_iter().map(Record::AccessKey));
    out.extend(body.user_policies.into_iter().map(Record::UserPolicy));
    out.extend(body.user_tags.into_iter().map(Record::UserTags));
    out
}

/// The oldest store format whose backups this Coffer restores.
const RESTORABLE_SINCE_FORMAT: i64 = 3;

/// The key a Region's backups are sealed with, derived from its root key.
fn backup_key(root: &RootKey, region: &str) -> RootKey {
    let subkey = root.derive_subkey(&format!("coffer backup v1\0{region}"));
    RootKey::from_hex(&hex_encode(&subkey[..])).expect("64 hex digits")
}

/// The label of a format-2 file's own key, derived from the backup key.
fn stream_label(salt: &str) -> String {
    format!("coffer backup stream\0{salt}")
}

/// What every chunk of a format-2 file binds: the magic line and the header line.
fn stream_aad(header_line: &str) -> Vec<u8> {
    let mut aad = MAGIC.as_bytes().to_vec();
    aad.extend_from_slice(header_line.as_bytes());
    aad
}

fn hex_encode(bytes: &[u8]) -> zeroize::Zeroizing<String> {
    let mut out = zeroize::Zeroizing::new(String::with_capacity(bytes.len() * 2));
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn region_key(dir: &Path, region: &str) -> anyhow::Result<RootKey> {
    let path = dir.join("keys").join(format!("{region}.key"));
    RootKey::load(&path).map_err(|e| {
        anyhow!(
            "{e} (a backup of {region} is sealed with a key derived from this file: copy \
             keys/{region}.key of the backed-up data directory here)"
        )
    })
}

fn resolved_dir(settings: &Settings) -> anyhow::Result<std::path::PathBuf> {
    settings
        .data_dir
        .canonicalize()
        .with_context(|| format!("cannot open data directory {}", settings.data_dir.display()))
}

fn served(settings: &Settings, region: &str) -> anyhow::Result<()> {
    if !settings.regions.iter().any(|r| r == region) {
        bail!(
            "Region {region} is not one this configuration serves ({})",
            settings.regions.join(", ")
        );
    }
    Ok(())
}

/// Writes a format-2 file: created at [`RegionSink::start`] (the header needs the number of
/// secrets, counted in the export's snapshot), one chunk written each time the records reach
/// the chunk size, the last one at [`BackupWriter::finish`].
struct BackupWriter<'a> {
    path: &'a Path,
    region: &'a str,
    key: RootKey,
    chunk_bytes: usize,
    out: Option<Output>,
    /// Whether this writer created the file (so removes it when the backup fails).
    created: bool,
    secrets: usize,
}

struct Output {
    file: BufWriter<std::fs::File>,
    sealer: Option<StreamSealer>,
    chunk: Zeroizing<Vec<u8>>,
}

impl<'a> BackupWriter<'a> {
    fn new(path: &'a Path, region: &'a str, key: RootKey, chunk_bytes: usize) -> Self {
        BackupWriter {
            path,
            region,
            key,
            chunk_bytes,
            out: None,
            created: false,
            secrets: 0,
        }
    }

    fn write_error(&self, e: std::io::Error) -> anyhow::Error {
        anyhow::Error::new(e).context(format!("cannot write {}", self.path.display()))
    }

    fn output(&mut self) -> anyhow::Result<&mut Output> {
        self.out
            .as_mut()
            .ok_or_else(|| anyhow!("the backup's header was not written"))
    }

    fn record(&mut self, record: &Record) -> anyhow::Result<()> {
        let chunk_bytes = self.chunk_bytes;
        let out = self.output()?;
        serde_json::to_writer(&mut *out.chunk, record).expect("backup records serialize");
        out.chunk.push(b'\n');
        if out.chunk.len() >= chunk_bytes {
            self.seal(false)?;
        }
        Ok(())
    }

    /// Seals the chunk's records and writes the frame.
    fn seal(&mut self, last: bool) -> anyhow::Result<()> {
        let out = self.output()?;
        let sealed = match (last, out.sealer.as_mut()) {
            (false, Some(sealer)) => sealer.seal_next(&mut out.chunk),
            (true, Some(_)) => out
                .sealer
                .take()
                .expect("checked")
                .seal_last(&mut out.chunk),
            (_, None) => return Err(anyhow!("the backup was already finished")),
        };
        sealed.map_err(|_| anyhow!("the backup has too many chunks to seal"))?;
        let len = u32::try_from(out.chunk.len()).expect("a chunk is far below 4 GiB");
        let result = out
            .file
            .write_all(&[u8::from(last)])
            .and_then(|_| out.file.write_all(&len.to_be_bytes()))
            .and_then(|_| out.file.write_all(&out.chunk));
        // Now ciphertext: no need to wipe it.
        out.chunk.clear();
        result.map_err(|e| self.write_error(e))
    }

    /// Seals the last chunk, flushes and syncs the file; returns the number of secrets.
    fn finish(mut self) -> anyhow::Result<usize> {
        self.seal(true)?;
        let out = self.out.take().expect("sealed above");
        let file = out
            .file
            .into_inner()
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        file.sync_all().map_err(|e| self.write_error(e))?;
        self.created = false;
        Ok(self.secrets)
    }
}

impl Drop for BackupWriter<'_> {
    /// A backup that did not finish leaves no file (a partial one would be refused anyway).
    fn drop(&mut self) {
        if self.created {
            self.out = None;
            let _ = std::fs::remove_file(self.path);
        }
    }
}

impl RegionSink for BackupWriter<'_> {
    type Error = anyhow::Error;

    fn start(&mut self, format_version: i64, secrets: u64) -> anyhow::Result<()> {
        use rand::RngCore;
        use std::os::unix::fs::OpenOptionsExt;
        let mut salt = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        let salt = hex_encode(&salt).to_string();
        self.secrets = secrets as usize;
        let header = Header {
            region: self.region.to_string(),
            format_version,
            created_ms: chrono::Utc::now().timestamp_millis(),
            secrets: self.secrets,
            file_format: Some(FILE_FORMAT),
            salt: Some(salt.clone()),
        };
        let header_line = serde_json::to_string(&header).expect("header serializes");
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(self.path)
            .with_context(|| format!("cannot create {}", self.path.display()))?;
        self.created = true;
        let mut file = BufWriter::with_capacity(1 << 20, file);
        file.write_all(MAGIC.as_bytes())
            .and_then(|_| file.write_all(header_line.as_bytes()))
            .and_then(|_| file.write_all(b"\n"))
            .map_err(|e| self.write_error(e))?;
        self.out = Some(Output {
            file,
            sealer: Some(StreamSealer::new(
                &backup_key(&self.key, self.region),
                &stream_label(&salt),
                &stream_aad(&header_line),
            )),
            chunk: Zeroizing::new(Vec::with_capacity(self.chunk_bytes + (64 << 10))),
        });
        Ok(())
    }

    fn item(&mut self, item: RegionItem) -> anyhow::Result<()> {
        self.record(&Record::of_item(item))
    }
}

/// Writes a backup of `region` to `output`; returns the number of secrets.
pub async fn backup(settings: &Settings, region: &str, output: &Path) -> anyhow::Result<usize> {
    backup_in_chunks(settings, region, output, CHUNK_BYTES).await
}

async fn backup_in_chunks(
    settings: &Settings,
    region: &str,
    output: &Path,
    chunk_bytes: usize,
) -> anyhow::Result<usize> {
    served(settings, region)?;
    let dir = resolved_dir(settings)?;
    let key = region_key(&dir, region)?;
    let mut writer = BackupWriter::new(output, region, key, chunk_bytes);
    match data_dir::open_region_store(settings, &dir, region, false).await? {
        RegionStore::Sqlite(store, _) => {
            store.close().await;
            coffer_store::export_sqlite_to(&data_dir::region_file(&dir, region), &mut writer)
                .await?;
        }
        RegionStore::Postgres(store) => {
            let exported = store.export_to(&mut writer).await;
            store.close().await;
            exported?;
        }
    }
    let (iam, _) = data_dir::open_iam_store(settings, &dir, false).await?;
    let result = write_principals(&*iam, &mut writer).await;
    iam.close().await;
    result?;
    writer.finish()
}

/// The deployment's principals go along, so a restore into a new IAM store brings the access
/// keys.
async fn write_principals(iam: &dyn IamStore, writer: &mut BackupWriter<'_>) -> anyhow::Result<()> {
    for account in iam.accounts().await? {
        writer.record(&Record::Account(account))?;
    }
    for k in iam.access_keys().await? {
        writer.record(&Record::AccessKey(AccessKeyOut {
            access_key_id: k.access_key_id,
            user_arn: k.user_arn,
            account_id: k.account_id,
            wrapped_secret: b64(&k.wrapped_secret),
            status: k.status,
            created_ms: k.created_ms,
        }))?;
    }
    for u in iam.users().await? {
        for p in iam.user_policies(&u.user_arn).await? {
            writer.record(&Record::UserPolicy(UserPolicyOut {
                user_arn: p.user_arn,
                policy_name: p.policy_name,
                document: p.document,
                updated_ms: p.updated_ms,
            }))?;
        }
        if let Some(tags) = iam.user_tags(&u.user_arn).await?.filter(|t| t != "[]") {
            writer.record(&Record::UserTags(UserTagsOut {
                user_arn: u.user_arn.clone(),
                tags,
            }))?;
        }
        writer.record(&Record::User(UserOut {
            user_arn: u.user_arn,
            account_id: u.account_id,
            user_name: u.user_name,
            user_id: u.user_id,
            is_admin: u.is_admin,
            created_ms: u.created_ms,
        }))?;
    }
    Ok(())
}

fn damaged(region: &str) -> anyhow::Error {
    anyhow!(
        "the backup is damaged or was altered, or keys/{region}.key is not the key of the \
         backed-up Region; nothing was restored"
    )
}

fn not_a_backup() -> anyhow::Error {
    anyhow!("not a Coffer backup file (no COFFER-BACKUP 1 header)")
}

fn check_region(header: &Header, region: &str) -> anyhow::Result<()> {
    if header.region != region {
        bail!(
            "the backup is of Region {}, not {region}; pass --region {}",
            header.region,
            header.region
        );
    }
    Ok(())
}

/// Opens and checks a format-1 backup file of `region`: nothing is written when this fails.
fn open_file(bytes: &[u8], region: &str, key: &RootKey) -> anyhow::Result<(Header, Body)> {
    let rest = bytes
        .strip_prefix(MAGIC.as_bytes())
        .ok_or_else(not_a_backup)?;
    let newline = rest
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| damaged(region))?;
    let header_line = std::str::from_utf8(&rest[..newline]).map_err(|_| damaged(region))?;
    let header: Header = serde_json::from_str(header_line).map_err(|_| damaged(region))?;
    check_region(&header, region)?;
    let body = backup_key(key, region)
        .open_credential(header_line, &rest[newline + 1..])
        .map_err(|_| damaged(region))?;
    let body: Body = serde_json::from_slice(&body).map_err(|_| damaged(region))?;
    Ok((header, body))
}

/// Reads the records of a format-2 file chunk by chunk, opening each as it comes; holds one
/// chunk.
struct ChunkReader {
    file: BufReader<std::fs::File>,
    opener: Option<StreamOpener>,
    chunk: Zeroizing<Vec<u8>>,
    /// Where the next record of `chunk` starts.
    pos: usize,
    region: String,
}

impl ChunkReader {
    fn next_record(&mut self) -> anyhow::Result<Option<Record>> {
        loop {
            if self.pos < self.chunk.len() {
                let rest = &self.chunk[self.pos..];
                let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
                let record = serde_json::from_slice(&rest[..end]);
                self.pos += end + 1;
                return record.map(Some).map_err(|_| damaged(&self.region));
            }
            if self.opener.is_none() {
                return Ok(None);
            }
            self.read_chunk()?;
        }
    }

    /// Reads and opens the next frame. The end of the file before the frame sealed as last,
    /// or any byte after it, is damage.
    fn read_chunk(&mut self) -> anyhow::Result<()> {
        let region = self.region.clone();
        let read_error = |e: std::io::Error| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                damaged(&region)
            } else {
                anyhow::Error::new(e).context("cannot read the backup")
            }
        };
        let mut frame = [0u8; 5];
        self.file.read_exact(&mut frame).map_err(read_error)?;
        let len = u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]) as usize;
        if !(STREAM_TAG_LEN..=MAX_SEALED_CHUNK).contains(&len) {
            return Err(damaged(&region));
        }
        // Wiped before it may move: the last chunk's plaintext stays nowhere.
        self.chunk.zeroize();
        self.chunk.resize(len, 0);
        self.file.read_exact(&mut self.chunk).map_err(read_error)?;
        self.pos = 0;
        let opened = match (frame[0], self.opener.as_mut()) {
            (0, Some(opener)) => opener.open_next(&mut self.chunk),
            (1, Some(_)) => {
                let opened = self
                    .opener
                    .take()
                    .expect("checked")
                    .open_last(&mut self.chunk);
                let mut more = [0u8; 1];
                if opened.is_ok() && self.file.read(&mut more).map_err(read_error)? != 0 {
                    return Err(damaged(&region));
                }
                opened
            }
            _ => return Err(damaged(&region)),
        };
        opened.map_err(|_| damaged(&region))
    }
}

/// The records of a backup file, read one at a time.
enum Records {
    /// Format 1: the whole body, opened.
    Whole(std::vec::IntoIter<Record>),
    Chunks(Box<ChunkReader>),
}

impl Records {
    fn next(&mut self) -> anyhow::Result<Option<Record>> {
        match self {
            Records::Whole(records) => Ok(records.next()),
            Records::Chunks(reader) => reader.next_record(),
        }
    }
}

/// Opens a backup file of `region` with `key`: checks the header and opens the first chunk
/// (format 2) or the whole body (format 1), so a wrong key fails here.
fn open_records(input: &Path, region: &str, key: &RootKey) -> anyhow::Result<(Header, Records)> {
    let cannot_read = |e: std::io::Error| {
        anyhow::Error::new(e).context(format!("cannot read {}", input.display()))
    };
    let mut file =
        BufReader::with_capacity(1 << 20, std::fs::File::open(input).map_err(cannot_read)?);
    let mut magic = [0u8; MAGIC.len()];
    file.read_exact(&mut magic).map_err(|_| not_a_backup())?;
    if magic != MAGIC.as_bytes() {
        return Err(not_a_backup());
    }
    let mut header_line = Vec::new();
    std::io::BufRead::read_until(
        &mut Read::by_ref(&mut file).take(MAX_HEADER),
        b'\n',
        &mut header_line,
    )
    .map_err(cannot_read)?;
    if header_line.pop() != Some(b'\n') {
        return Err(damaged(region));
    }
    let header_line = String::from_utf8(header_line).map_err(|_| damaged(region))?;
    let header: Header = serde_json::from_str(&header_line).map_err(|_| damaged(region))?;
    check_region(&header, region)?;
    match header.file_format {
        None => {
            let bytes = std::fs::read(input).map_err(cannot_read)?;
            let (header, body) = open_file(&bytes, region, key)?;
            Ok((header, Records::Whole(records_of(body).into_iter())))
        }
        Some(FILE_FORMAT) => {
            let salt = header.salt.as_deref().ok_or_else(|| damaged(region))?;
            let opener = StreamOpener::new(
                &backup_key(key, region),
                &stream_label(salt),
                &stream_aad(&header_line),
            );
            let mut reader = ChunkReader {
                file,
                opener: Some(opener),
                chunk: Zeroizing::new(Vec::new()),
                pos: 0,
                region: region.to_string(),
            };
            reader.read_chunk()?;
            Ok((header, Records::Chunks(Box::new(reader))))
        }
        Some(other) => Err(anyhow!(
            "the backup has file format {other}; this Coffer reads formats 1 and {FILE_FORMAT}: \
             restore it with the Coffer version that made it"
        )),
    }
}

/// Loads a backup of `region` into the Region's configured store, which must be empty; also
/// loads the deployment's principals into the IAM store when it has none yet.
pub async fn restore(settings: &Settings, region: &str, input: &Path) -> anyhow::Result<usize> {
    served(settings, region)?;
    // An input that cannot be read is reported before anything is created.
    std::fs::File::open(input).with_context(|| format!("cannot read {}", input.display()))?;
    data_dir::create_private_dir(&settings.data_dir.join("regions"))?;
    let dir = resolved_dir(settings)?;
    let key = region_key(&dir, region)?;
    // A backup made before `coffer rotate-root-key` is sealed under the retired key
    // (`keys/<region>.key.old-<fingerprint>`), which still opens it and its KMS keys.
    let retired = crate::root_keys::other_keys(&dir.join("keys").join(format!("{region}.key")));
    let (opens, (header, mut records)) = std::iter::once(&key)
        .chain(&retired)
        .find_map(|k| open_records(input, region, k).ok().map(|r| (k, r)))
        .map(Ok)
        .unwrap_or_else(|| open_records(input, region, &key).map(|r| (&key, r)))?;
    let current = RegionSnapshot::current_format_version();
    // Format 4 only added a table (replica detachments, empty in an older backup), so a
    // format-3 backup restores as it is; format 5 only added data derived from the secrets
    // (search terms, written as the restore inserts them). A later migration that changes what a backup holds
    // must raise this bound.
    if !(RESTORABLE_SINCE_FORMAT..=current).contains(&header.format_version) {
        bail!(
            "the backup has store format {}, this Coffer writes {current}: restore it with the \
             Coffer version that made it",
            header.format_version
        );
    }

    // First pass: every chunk opens and every record reads; every KMS key in the backup opens
    // under this root key. Only the principals are kept.
    let mut principals = Body::default();
    while let Some(record) = records.next()? {
        match record {
            Record::Account(a) => principals.accounts.push(a),
            Record::User(u) => principals.users.push(u),
            Record::AccessKey(k) => principals.access_keys.push(k),
            Record::UserPolicy(p) => principals.user_policies.push(p),
            Record::UserTags(t) => principals.user_tags.push(t),
            region_record => {
                if let Some(RegionItem::KmsKey(k)) = region_record.into_item()? {
                    std::iter::once(&key)
                        .chain(&retired)
                        .find_map(|root| {
                            root.unwrap_key_material(&k.key_arn, &k.wrapped_material)
                                .ok()
                        })
                        .ok_or_else(|| {
                            anyhow!(
                                "keys/{region}.key does not open the backup's KMS keys; nothing \
                                 was restored"
                            )
                        })?;
                }
            }
        }
    }

    // The Region store must be empty: checked here before the principals are written, and
    // again inside the import's transaction.
    let store =
        data_dir::open_region_store(settings, &dir, region, settings.migrate_on_start).await?;
    let empty = match &store {
        RegionStore::Sqlite(s, _) => {
            s.close().await;
            coffer_store::sqlite_region_is_empty(&data_dir::region_file(&dir, region)).await
        }
        RegionStore::Postgres(s) => s.region_is_empty().await,
    };
    store.close().await;
    if !empty? {
        bail!(
            "the {region} store already holds secrets or KMS keys; restore only into an empty \
             Region store (a new data directory, or a new PostgreSQL database). Nothing was \
             written."
        );
    }

    let (iam, _) = data_dir::open_iam_store(settings, &dir, settings.migrate_on_start).await?;
    let result = restore_iam(&*iam, &principals).await;
    iam.close().await;
    result?;

    // Second pass: the Region's records, read again (and checked again) as they are written.
    let (_, mut records) = open_records(input, region, opens)?;
    let next = move || -> anyhow::Result<Option<RegionItem>> {
        while let Some(record) = records.next()? {
            if let Some(item) = record.into_item()? {
                return Ok(Some(item));
            }
        }
        Ok(None)
    };
    let store =
        data_dir::open_region_store(settings, &dir, region, settings.migrate_on_start).await?;
    let result = match &store {
        RegionStore::Sqlite(s, _) => {
            s.close().await;
            coffer_store::import_sqlite_from(&data_dir::region_file(&dir, region), next).await
        }
        RegionStore::Postgres(s) => s.import_from(next).await,
    };
    store.close().await;
    Ok(result? as usize)
}

/// The principals go along so a Region restored into a new IAM store answers the same access
/// keys; an IAM store that already has the backup's account is left as it is, one of another
/// account is refused.
async fn restore_iam(iam: &dyn IamStore, body: &Body) -> anyhow::Result<()> {
    let existing = iam.accounts().await?;
    if let Some(account) = existing.first() {
        if body.accounts.is_empty() || body.accounts.contains(account) {
            return Ok(());
        }
        bail!(
            "the IAM store belongs to account {account}, the backup to {}: restore into a data \
             directory (or IAM store) of the same account, or a new one; nothing was restored",
            body.accounts.join(", ")
        );
    }
    let now = chrono::Utc::now().timestamp_millis();
    for account in &body.accounts {
        iam.create_account(account, now).await?;
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
        .await?;
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
        .await?;
    }
    for p in &body.user_policies {
        iam.put_user_policy(UserPolicyRecord {
            user_arn: p.user_arn.clone(),
            policy_name: p.policy_name.clone(),
            document: p.document.clone(),
            updated_ms: p.updated_ms,
        })
        .await?;
    }
    for t in &body.user_tags {
        iam.replace_user_tags(&t.user_arn, "[]", &t.tags).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // The functions under test, failing with the message `coffer` prints.
    fn open_file(bytes: &[u8], region: &str, key: &RootKey) -> Result<(Header, Body), String> {
        super::open_file(bytes, region, key).map_err(|e| crate::shown(&e))
    }

    async fn restore(settings: &Settings, region: &str, input: &Path) -> Result<usize, String> {
        super::restore(settings, region, input)
            .await
            .map_err(|e| crate::shown(&e))
    }

    async fn backup_in_chunks(
        settings: &Settings,
        region: &str,
        output: &Path,
        chunk_bytes: usize,
    ) -> Result<usize, String> {
        super::backup_in_chunks(settings, region, output, chunk_bytes)
            .await
            .map_err(|e| crate::shown(&e))
    }

    fn key() -> RootKey {
        RootKey::from_hex(&"ab".repeat(32)).unwrap()
    }

    fn sample(region: &str) -> Vec<u8> {
        let header = serde_json::to_string(&Header {
            region: region.into(),
            format_version: 2,
            created_ms: 1,
            secrets: 0,
            file_format: None,
            salt: None,
        })
        .unwrap();
        let body = serde_json::to_vec(&Body {
            accounts: vec!["111122223333".into()],
            ..Body::default()
        })
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

    // --- format 2, through `coffer backup` and `coffer restore` on SQLite data directories ---

    use coffer_store::{OutboxEntry, SecretChange, SqliteStore, Store};

    const REGION: &str = "us-east-1";
    const ACCOUNT: &str = "111122223333";

    fn settings(dir: &Path) -> Settings {
        Settings::resolve(crate::config::ServeArgs {
            listen: None,
            data_dir: Some(dir.to_path_buf()),
            regions: Some(vec![REGION.to_string()]),
            account_id: None,
            config: None,
            replication_failure_timeout_secs: None,
            tls: None,
            tls_cert: None,
            tls_key: None,
            tls_names: None,
        })
        .unwrap()
    }

    /// A data directory with the Region's key (the same key in every test directory made
    /// with the same `key_hex`).
    fn data_dir(parent: &Path, name: &str, key_hex: &str) -> Settings {
        let dir = parent.join(name);
        data_dir::create_private_dir(&dir.join("keys")).unwrap();
        let path = dir.join("keys").join(format!("{REGION}.key"));
        {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .unwrap();
            writeln!(f, "{key_hex}").unwrap();
        }
        RootKey::load(&path).expect("a key file the Region loads");
        settings(&dir)
    }

    fn secret(i: usize) -> Secret {
        let arn = format!("arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:s{i:05}-AbCdEf");
        let version = |n: usize, stage: &str| VersionRecord {
            secret_arn: arn.clone(),
            version_id: format!("v{n}-{i}"),
            stages: vec![stage.to_string()],
            created_ms: 1_000 + n as i64,
            last_accessed_day: None,
            kms_key_arn: Some(format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/k")),
            value_kind: ValueKind::String,
            wrapped_data_key: Some(vec![n as u8; 40]),
            ciphertext: Some(format!("ciphertext {i} {n}").into_bytes()),
        };
        Secret {
            record: SecretRecord {
                arn: arn.clone(),
                account_id: ACCOUNT.into(),
                name: format!("s{i:05}"),
                description: Some(format!("secret number {i} of the test")),
                kms_key_id: None,
                tags: Some(vec![Tag {
                    key: "n".into(),
                    value: i.to_string(),
                }]),
                resource_policy: None,
                created_ms: 1_000 + i as i64,
                last_changed_ms: 2_000,
                last_accessed_day: Some(20_000),
                deleted_ms: None,
                purge_at_ms: None,
                rotation: None,
                replication: None,
                row_version: 1,
            },
            versions: vec![version(1, "AWSPREVIOUS"), version(2, "AWSCURRENT")],
        }
    }

    /// `n` secrets, a KMS key wrapped by the Region's key, an alias and an outbox row.
    async fn fill(settings: &Settings, n: usize) {
        let dir = &settings.data_dir;
        data_dir::create_private_dir(&dir.join("regions")).unwrap();
        let store = SqliteStore::open(&data_dir::region_file(dir, REGION))
            .await
            .unwrap();
        let root = region_key(dir, REGION).unwrap();
        let key_arn = format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/k");
        store
            .create_kms_key(
                KmsKeyRecord {
                    wrapped_material: root
                        .wrap_key_material(&key_arn, &coffer_kms::KeyMaterial::generate()),
                    key_arn: key_arn.clone(),
                    account_id: ACCOUNT.into(),
                    key_id: "k".into(),
                    metadata: "{}".into(),
                    created_ms: 5,
                },
                Some(KmsAliasRecord {
                    account_id: ACCOUNT.into(),
                    alias_name: "alias/aws/secretsmanager".into(),
                    target_key_arn: key_arn,
                    created_ms: 5,
                }),
            )
            .await
            .unwrap();
        for batch in (0..n).collect::<Vec<_>>().chunks(500) {
            let changes = batch
                .iter()
                .map(|&i| {
                    let s = secret(i);
                    SecretChange::Insert {
                        secret: s.record,
                        versions: s.versions,
                    }
                })
                .collect();
            store.commit_with(changes, Vec::new()).await.unwrap();
        }
        store
            .enqueue(vec![OutboxEntry {
                secret_arn: secret(0).record.arn,
                dest_region: "eu-west-1".into(),
                kind: "sync".into(),
                payload: "{}".into(),
            }])
            .await
            .unwrap();
        store.close().await;
    }

    async fn snapshot(settings: &Settings) -> RegionSnapshot {
        let mut s = coffer_store::export_sqlite(&data_dir::region_file(&settings.data_dir, REGION))
            .await
            .unwrap();
        for row in &mut s.outbox {
            row.id = 0;
        }
        s
    }

    /// Every row of the Region's search terms, by its secret's ARN (the keys are the store's
    /// own), in order.
    async fn terms(settings: &Settings) -> Vec<(String, String, String)> {
        use sqlx::Connection;
        let path = data_dir::region_file(&settings.data_dir, REGION);
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
        let mut conn = sqlx::SqliteConnection::connect_with(&options)
            .await
            .unwrap();
        let rows = sqlx::query_as(
            "SELECT s.arn, t.kind, t.term FROM secret_terms t \
             JOIN secrets s ON s.term_key = t.secret_key ORDER BY s.arn, t.kind, t.term",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
        rows
    }

    /// The frames of a format-2 file: (magic and header, [(last flag, sealed chunk)]).
    fn frames(file: &[u8]) -> (Vec<u8>, Vec<(u8, Vec<u8>)>) {
        let header_end = MAGIC.len()
            + file[MAGIC.len()..]
                .iter()
                .position(|&b| b == b'\n')
                .unwrap()
            + 1;
        let mut rest = &file[header_end..];
        let mut out = Vec::new();
        while !rest.is_empty() {
            let len = u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize;
            out.push((rest[0], rest[5..5 + len].to_vec()));
            rest = &rest[5 + len..];
        }
        (file[..header_end].to_vec(), out)
    }

    fn join(head: &[u8], frames: &[(u8, Vec<u8>)]) -> Vec<u8> {
        let mut out = head.to_vec();
        for (last, chunk) in frames {
            out.push(*last);
            out.extend_from_slice(&(chunk.len() as u32).to_be_bytes());
            out.extend_from_slice(chunk);
        }
        out
    }

    #[tokio::test]
    async fn a_region_of_many_chunks_restores_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let key_hex = "3c".repeat(32);
        let from = data_dir(tmp.path(), "from", &key_hex);
        fill(&from, 1_200).await;
        let file = tmp.path().join("us-east-1.cbk");
        let n = backup_in_chunks(&from, REGION, &file, 16 << 10)
            .await
            .unwrap();
        assert_eq!(n, 1_200);
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let bytes = std::fs::read(&file).unwrap();
        let (_, chunks) = frames(&bytes);
        assert!(chunks.len() > 20, "{} chunks", chunks.len());
        assert!(
            chunks[..chunks.len() - 1]
                .iter()
                .all(|(last, _)| *last == 0)
        );
        assert_eq!(chunks.last().unwrap().0, 1);
        // Secret metadata and store ciphertext are sealed, not readable in the file.
        let plain = |text: &str| bytes.windows(text.len()).any(|w| w == text.as_bytes());
        assert!(!plain("s00042") && !plain("secret number") && !plain("ciphertext 7"));
        // The output is never overwritten.
        let again = backup_in_chunks(&from, REGION, &file, 16 << 10).await;
        assert!(again.is_err_and(|e| e.contains("cannot create")));
        assert_eq!(std::fs::read(&file).unwrap(), bytes);

        let to = data_dir(tmp.path(), "to", &key_hex);
        assert_eq!(restore(&to, REGION, &file).await.unwrap(), 1_200);
        let (a, b) = (snapshot(&from).await, snapshot(&to).await);
        assert_eq!(b.secrets.len(), 1_200);
        assert_eq!(a, b);
        // The search terms ListSecrets filters on are those the secrets' writes made.
        let (a, b) = (terms(&from).await, terms(&to).await);
        assert!(a.len() > 1_200 * 5, "{} terms", a.len());
        assert_eq!(a, b);
        // Into a Region that holds secrets: refused.
        let twice = restore(&to, REGION, &file).await.unwrap_err();
        assert!(twice.contains("empty Region store"), "{twice}");
    }

    #[tokio::test]
    async fn a_cut_reordered_or_changed_file_restores_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let key_hex = "3c".repeat(32);
        let from = data_dir(tmp.path(), "from", &key_hex);
        fill(&from, 300).await;
        let file = tmp.path().join("good.cbk");
        backup_in_chunks(&from, REGION, &file, 8 << 10)
            .await
            .unwrap();
        let bytes = std::fs::read(&file).unwrap();
        let (head, chunks) = frames(&bytes);
        assert!(chunks.len() >= 6, "{} chunks", chunks.len());
        let mid = chunks.len() / 2;

        let mut bad: Vec<(&str, Vec<u8>)> = Vec::new();
        bad.push((
            "without its last chunk",
            join(&head, &chunks[..chunks.len() - 1]),
        ));
        bad.push(("cut inside a chunk", bytes[..bytes.len() - 100].to_vec()));
        bad.push(("cut after the header", head.clone()));
        let mut swapped = chunks.clone();
        swapped.swap(mid, mid + 1);
        bad.push(("with two chunks swapped", join(&head, &swapped)));
        let mut dropped = chunks.clone();
        dropped.remove(mid);
        bad.push(("without a middle chunk", join(&head, &dropped)));
        let mut changed = chunks.clone();
        changed[mid].1[40] ^= 0x01;
        bad.push((
            "with a byte changed in a middle chunk",
            join(&head, &changed),
        ));
        let mut flagged = chunks.clone();
        flagged[mid].0 = 1;
        bad.push(("with a middle chunk marked last", join(&head, &flagged)));
        // A digit of `created_ms` (not the first): the header still reads, but it is bound to every chunk.
        let mut header = bytes.clone();
        let at = bytes
            .windows(13)
            .position(|w| w == b"\"created_ms\":")
            .unwrap()
            + 13
            + 5;
        assert!(header[at].is_ascii_digit());
        header[at] ^= 0x01;
        bad.push(("with a changed header byte", header));
        let mut trailing = bytes.clone();
        trailing.extend_from_slice(&join(&[], &chunks[..1]));
        bad.push(("with a chunk after the last", trailing));

        for (i, (what, content)) in bad.iter().enumerate() {
            let path = tmp.path().join(format!("bad-{i}.cbk"));
            std::fs::write(&path, content).unwrap();
            let to = data_dir(tmp.path(), &format!("to-{i}"), &key_hex);
            let err = restore(&to, REGION, &path).await.unwrap_err();
            assert!(
                err.contains("damaged") || err.contains("not a Coffer backup"),
                "a file {what}: {err}"
            );
            // Nothing written: no Region store, no IAM store.
            assert!(
                !data_dir::region_file(&to.data_dir, REGION).exists(),
                "a file {what} created the Region store"
            );
            assert!(!to.data_dir.join("iam.db").exists(), "a file {what}");
        }

        // Another key (another data directory's): refused too, nothing written.
        let stranger = data_dir(tmp.path(), "stranger", &"77".repeat(32));
        let err = restore(&stranger, REGION, &file).await.unwrap_err();
        assert!(err.contains("damaged"), "{err}");
        assert!(!data_dir::region_file(&stranger.data_dir, REGION).exists());
        // And the good file restores.
        let to = data_dir(tmp.path(), "to-good", &key_hex);
        assert_eq!(restore(&to, REGION, &file).await.unwrap(), 300);
    }

    #[tokio::test]
    async fn a_failed_backup_leaves_no_file() {
        let tmp = tempfile::tempdir().unwrap();
        let from = data_dir(tmp.path(), "from", &"3c".repeat(32));
        fill(&from, 3).await;
        // The IAM store cannot be opened (a directory where the file should be): the Region's
        // records were written already, then the backup fails and removes its file.
        std::fs::create_dir(from.data_dir.join("iam.db")).unwrap();
        let file = tmp.path().join("partial.cbk");
        assert!(
            backup_in_chunks(&from, REGION, &file, 1 << 10)
                .await
                .is_err()
        );
        assert!(!file.exists());
    }
}
