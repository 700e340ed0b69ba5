//! The data directory: stores, root keys and the generated AWS CLI files.
//!
//! ```text
//! DIR/iam.db                 accounts, users, access keys (secret keys sealed by keys/deployment.key)
//! DIR/regions/<region>.db    one store per Region
//! DIR/keys/<region>.key      one root key per Region (mode 0600, never in a database)
//! DIR/keys/deployment.key    root key of the principals store
//! DIR/aws/credentials        profile `default` with the admin's access key
//! DIR/aws/config             profile `default` with `region` and `endpoint_url`
//! DIR/node-id                this node's identity for leases
//! ```
//!
//! A Region (or the IAM store) configured with a `postgres://` URL lives in its own schema of
//! that database instead of a file (`coffer_<region>`, `coffer_iam`); its keys stay files here,
//! and every node serving that Region needs copies of the same `keys/<region>.key` and
//! `keys/deployment.key` (see docs/postgresql.md).
//!
//! Stores are checked before anything is written, so a damaged directory or one from an
//! incompatible version is reported and left untouched.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use coffer_api::{Credential, Deployment, Principals};
use coffer_core::{RegionService, SystemClock};
use coffer_kms::RootKey;
use coffer_replication::envelope::{PublicKey, RegionKeyPair};
use coffer_replication::metrics::Metrics;
use coffer_replication::{Peer, Topology};
use coffer_store::{
    AccessKeyRecord, CachedStore, IamStore, PostgresIamStore, PostgresStore, SqliteIamStore,
    SqliteStore, Store, UserRecord,
};
use rand::Rng;
use zeroize::Zeroizing;

use crate::config::{Settings, StoreUrl};

pub struct Node {
    pub deployment: Deployment,
    pub iam: Arc<dyn IamStore>,
    pub account_id: String,
    pub credentials_file: PathBuf,
    pub config_file: PathBuf,
}

pub fn create_private_dir(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .with_context(|| format!("cannot create directory {}", path.display()))
}

/// Loads a root key; creates it only together with a new store, so an existing store never
/// silently gets a fresh key it cannot decrypt with.
fn root_key(path: &Path, store_exists: bool) -> anyhow::Result<RootKey> {
    if store_exists {
        RootKey::load(path).map_err(|e| {
            anyhow!("{e} (the store next to it needs this key; restore it from your backup)")
        })
    } else {
        RootKey::load_or_create(path)
            .map(|(k, _)| k)
            .map_err(anyhow::Error::from)
    }
}

fn exists(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.len() > 0)
        .unwrap_or(false)
}

/// Opens (or, on first start, creates) the data directory and everything this node serves from
/// it, one step after the other.
pub async fn open(settings: &Settings, endpoint: &str) -> anyhow::Result<Node> {
    let dir = create_dirs(&settings.data_dir)?;
    // Open every store first: each checks its format before writing anything.
    let (iam, iam_existed) = open_iam_store(settings, &dir, settings.migrate_on_start).await?;
    let stores = open_region_stores(settings, &dir).await?;
    let deployment_key = deployment_root_key(settings, &dir, iam_existed)?;
    let account_id = ensure_account(
        &*iam,
        &deployment_key,
        settings.account_id.as_deref(),
        settings.admin_key.as_ref(),
    )
    .await?;
    let (regions, keys) = start_regions(settings, &dir, stores, &account_id).await?;
    let principals = Arc::new(Principals::new(iam.clone(), deployment_key));
    let credentials = principals.load_all().await?;
    let (credentials_file, config_file) =
        write_aws_files(settings, &dir, endpoint, &*iam, &credentials, &account_id).await?;
    let peers = configured_peers(settings)?;
    let registry = attach_rotation_functions(settings, &regions);
    let node = node_id(&dir)?;
    let topology = Arc::new(Topology {
        local: regions,
        keys,
        peers,
        self_url: endpoint.to_string(),
        node_id: node.clone(),
        give_up_after_ms: settings.replication_failure_timeout_secs as i64 * 1000,
        max_message_bytes: settings.replication_max_message_bytes,
        links: Default::default(),
        metrics: Metrics::new(),
        rotation: Some(Arc::new(coffer_rotation::Runner::new(
            registry,
            node.clone(),
        ))),
    });
    let deployment = Deployment::new(topology, credentials);
    deployment.set_principals(principals);
    Ok(Node {
        deployment,
        iam,
        account_id,
        credentials_file,
        config_file,
    })
}

/// Creates the data directory and its `regions`, `keys` and `aws` folders (mode 0700) where
/// missing; returns the directory's canonical path.
fn create_dirs(data_dir: &Path) -> anyhow::Result<PathBuf> {
    create_private_dir(data_dir)?;
    let dir = data_dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", data_dir.display()))?;
    for sub in ["regions", "keys", "aws"] {
        create_private_dir(&dir.join(sub))?;
    }
    Ok(dir)
}

/// Opens (and checks) the store of every configured Region, in the configured order.
async fn open_region_stores(
    settings: &Settings,
    dir: &Path,
) -> anyhow::Result<Vec<(String, RegionStore)>> {
    let mut stores = Vec::new();
    for region in &settings.regions {
        let store = open_region_store(settings, dir, region, settings.migrate_on_start).await?;
        stores.push((region.clone(), store));
    }
    Ok(stores)
}

/// The root key of the IAM store (`keys/deployment.key`), which seals access keys.
fn deployment_root_key(
    settings: &Settings,
    dir: &Path,
    iam_existed: bool,
) -> anyhow::Result<RootKey> {
    shared_root_key(
        &dir.join("keys").join("deployment.key"),
        iam_existed,
        matches!(settings.iam_store, StoreUrl::Postgres(_)),
    )
}

/// `keys/<region>.key`: a Region's root key file.
fn region_key_path(dir: &Path, region: &str) -> PathBuf {
    dir.join("keys").join(format!("{region}.key"))
}

/// Each Region's service over its store and root key (checked against the KMS keys already
/// stored), with the replication key pairs derived from the root keys.
async fn start_regions(
    settings: &Settings,
    dir: &Path,
    stores: Vec<(String, RegionStore)>,
    account_id: &str,
) -> anyhow::Result<(
    HashMap<String, Arc<RegionService>>,
    HashMap<String, RegionKeyPair>,
)> {
    let mut regions = HashMap::new();
    let mut keys = HashMap::new();
    for (region, opened) in stores {
        let key_path = region_key_path(dir, &region);
        let (store, key) = match opened {
            RegionStore::Sqlite(store, existed) => {
                let key = crate::root_keys::from_env_or(&region, || root_key(&key_path, existed))?;
                check_root_key(&store, &key, account_id, &region, &key_path).await?;
                // One writer per SQLite file (this process): the cache is exact.
                let store = Arc::new(CachedStore::with_max_bytes(
                    Arc::new(store),
                    settings.cache_max_bytes,
                ));
                (store as Arc<dyn Store>, key)
            }
            // Several nodes may write this schema: the store's own cache checks every hit
            // against the database in a query shared by concurrent reads, so no node serves a
            // state older than a write acknowledged by another.
            RegionStore::Postgres(store) => {
                let store: Arc<dyn Store> =
                    Arc::new(store.cache_max_bytes(settings.cache_max_bytes));
                let key = shared_region_root_key(&*store, account_id, &region, &key_path).await?;
                (store, key)
            }
        };
        keys.insert(region.clone(), RegionKeyPair::derive(&key, &region));
        let partition = coffer_core::model::partition_of(&region).expect("validated region");
        let service =
            RegionService::new(region.clone(), partition, store, key, Arc::new(SystemClock));
        regions.insert(region, Arc::new(service));
    }
    for (region, service) in &regions {
        crate::root_keys::attach(service, &region_key_path(dir, region));
    }
    Ok((regions, keys))
}

/// The root key of a Region in a shared PostgreSQL store: checked against the KMS keys already
/// stored and against the fingerprint the first node recorded.
async fn shared_region_root_key(
    store: &dyn Store,
    account_id: &str,
    region: &str,
    key_path: &Path,
) -> anyhow::Result<RootKey> {
    let existed = store
        .load_kms_alias(account_id, coffer_core::keys::DEFAULT_KEY_ALIAS)
        .await?
        .is_some();
    let key = crate::root_keys::from_env_or(region, || shared_root_key(key_path, existed, true))?;
    check_root_key(store, &key, account_id, region, key_path).await?;
    // Also before any KMS key exists: the first node to start records its root key's
    // (non-secret) fingerprint, and a node with another key file is refused, instead of the
    // two nodes sealing keys the other cannot open.
    let ours = key.fingerprint();
    let recorded = store.claim_meta("root_key_fingerprint", &ours).await?;
    // After `coffer rotate-root-key` the recorded fingerprint is the previous key's: that
    // is fine when this node holds it as a retired key, or when this key opens the KMS keys
    // already stored (the rotation re-wrapped them).
    let successor = recorded != ours
        && (crate::root_keys::other_keys(key_path)
            .iter()
            .any(|k| k.fingerprint() == recorded)
            || current_key_opens_stored(store, &key, account_id).await?);
    if recorded != ours && !successor {
        bail!(
            "{} is not the root key Region {region}'s shared store was created with \
             (fingerprint {ours}; the store expects {recorded}): every node serving \
             {region} needs the same root key file; copy it from a node already serving \
             this store (nothing was changed)",
            key_path.display()
        );
    }
    Ok(key)
}

/// Writes `aws/credentials` (the administrator's oldest active access key) and `aws/config`
/// (first Region, endpoint, CA bundle) for the AWS CLI; returns their paths.
async fn write_aws_files(
    settings: &Settings,
    dir: &Path,
    endpoint: &str,
    iam: &dyn IamStore,
    credentials: &HashMap<String, Arc<Credential>>,
    account_id: &str,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    let admin = admin_key_of(iam, credentials, account_id).await?;
    let credentials_file = dir.join("aws").join("credentials");
    let config_file = dir.join("aws").join("config");
    match &admin {
        Some((id, secret)) => write_private(
            &credentials_file,
            &format!(
                "[default]\naws_access_key_id = {id}\naws_secret_access_key = {}\n",
                secret.as_str()
            ),
        )?,
        // Its keys were deleted through DeleteAccessKey: the file (if any) is left as it is.
        None => tracing::warn!(
            "the administrator of account {account_id} has no active access key; {} was not rewritten",
            credentials_file.display()
        ),
    }
    write_private(
        &config_file,
        &format!(
            "[default]\nregion = {}\nendpoint_url = {endpoint}\n{}",
            settings.regions[0],
            settings
                .profile_ca_bundle
                .as_ref()
                .map(|ca| format!("ca_bundle = {}\n", ca.display()))
                .unwrap_or_default()
        ),
    )?;
    Ok((credentials_file, config_file))
}

/// The `[[peers]]` of the configuration: the Regions other nodes serve.
fn configured_peers(settings: &Settings) -> anyhow::Result<HashMap<String, Peer>> {
    let mut peers = HashMap::new();
    for p in &settings.peers {
        let public_key = PublicKey::from_base64(p.public_key.trim())
            .with_context(|| format!("peer {}: public_key is not a Coffer public key", p.region))?;
        peers.insert(
            p.region.clone(),
            Peer {
                region: p.region.clone(),
                url: p.url.clone(),
                public_key,
            },
        );
    }
    Ok(peers)
}

/// The rotation functions of the configuration (`[[rotators]]`), given to every Region.
fn attach_rotation_functions(
    settings: &Settings,
    regions: &HashMap<String, Arc<RegionService>>,
) -> coffer_rotation::Registry {
    let configured: HashMap<String, Arc<dyn coffer_rotation::Rotator>> = settings
        .rotators
        .iter()
        .map(|r| {
            let rotator: Arc<dyn coffer_rotation::Rotator> = Arc::new(
                coffer_rotation::http::HttpRotator::new(r.name.clone(), r.url.clone()),
            );
            (r.name.clone(), rotator)
        })
        .collect();
    let registry = coffer_rotation::Registry::new(configured);
    for region in regions.values() {
        region.set_rotation_functions(Arc::new(registry.clone()));
    }
    registry
}

/// A Region's store as configured, opened and checked (and migrated when `migrate`).
pub enum RegionStore {
    /// The file, and whether it existed before.
    Sqlite(SqliteStore, bool),
    Postgres(PostgresStore),
}

impl RegionStore {
    pub async fn close(&self) {
        match self {
            RegionStore::Sqlite(s, _) => s.close().await,
            RegionStore::Postgres(s) => s.close().await,
        }
    }
}

/// Makes a SQLite database readable by its owner only, before SQLite opens it: a new file is
/// created empty with mode 0600 (SQLite takes an empty file as a new database, and gives the
/// `-wal` and `-shm` files it creates the database file's mode); an existing database and its
/// `-wal`/`-shm` files (from a version that created them 0644) are set to 0600.
pub fn private_sqlite_file(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if !path.exists() {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
    }
    let mut names = vec![path.to_path_buf()];
    for suffix in ["-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        names.push(PathBuf::from(name));
    }
    for name in names.iter().filter(|n| n.exists()) {
        std::fs::set_permissions(name, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot make {} private", name.display()))?;
    }
    Ok(())
}

pub fn region_file(dir: &Path, region: &str) -> PathBuf {
    dir.join("regions").join(format!("{region}.db"))
}

pub async fn open_region_store(
    settings: &Settings,
    dir: &Path,
    region: &str,
    migrate: bool,
) -> anyhow::Result<RegionStore> {
    match settings.store_of(region) {
        StoreUrl::Sqlite => {
            let path = region_file(dir, region);
            let existed = exists(&path);
            private_sqlite_file(&path)?;
            let store = SqliteStore::open(&path).await?;
            Ok(RegionStore::Sqlite(store, existed))
        }
        StoreUrl::Postgres(url) => {
            let schema = PostgresStore::schema_for_region(region);
            let store = PostgresStore::open_with(url, &schema, migrate)
                .await
                .with_context(|| format!("Region {region}"))?;
            Ok(RegionStore::Postgres(store))
        }
    }
}

/// The IAM store as configured, and whether it already held an account.
pub async fn open_iam_store(
    settings: &Settings,
    dir: &Path,
    migrate: bool,
) -> anyhow::Result<(Arc<dyn IamStore>, bool)> {
    match &settings.iam_store {
        StoreUrl::Sqlite => {
            let path = dir.join("iam.db");
            let existed = exists(&path);
            private_sqlite_file(&path)?;
            let iam = SqliteIamStore::open(&path).await?;
            Ok((Arc::new(iam), existed))
        }
        StoreUrl::Postgres(url) => {
            let iam = PostgresIamStore::open_with(url, "coffer_iam", migrate)
                .await
                .context("IAM store")?;
            let existed = !iam.accounts().await?.is_empty();
            Ok((Arc::new(iam), existed))
        }
    }
}

/// [`root_key`] for a store other nodes may share: a missing key file next to a store that
/// already holds keys means this node was not given the shared key.
fn shared_root_key(path: &Path, store_has_keys: bool, shared: bool) -> anyhow::Result<RootKey> {
    if shared && store_has_keys && !path.exists() {
        bail!(
            "{} is missing, but the shared PostgreSQL store already holds keys sealed by it: \
             copy that file from a node already serving this store (every node needs the same \
             one), then start again",
            path.display()
        );
    }
    root_key(path, store_has_keys)
}

/// Whether `key` itself (not a retired key) opens the account's default KMS key in `store`.
async fn current_key_opens_stored(
    store: &dyn Store,
    key: &RootKey,
    account_id: &str,
) -> anyhow::Result<bool> {
    let Some(alias) = store
        .load_kms_alias(account_id, coffer_core::keys::DEFAULT_KEY_ALIAS)
        .await?
    else {
        return Ok(false);
    };
    let Some(record) = store.load_kms_key(&alias.target_key_arn).await? else {
        return Ok(false);
    };
    Ok(key
        .unwrap_key_material(&record.key_arn, &record.wrapped_material)
        .is_ok())
}

/// Refuses to serve a Region whose stored KMS keys the root key cannot open (a key file from
/// another deployment or another node's fresh key), before any request could fail on it.
pub async fn check_root_key(
    store: &dyn Store,
    key: &RootKey,
    account_id: &str,
    region: &str,
    key_path: &Path,
) -> anyhow::Result<()> {
    let Some(alias) = store
        .load_kms_alias(account_id, coffer_core::keys::DEFAULT_KEY_ALIAS)
        .await?
    else {
        return Ok(());
    };
    let Some(record) = store.load_kms_key(&alias.target_key_arn).await? else {
        return Ok(());
    };
    // A retired key still opens what a rotation did not re-wrap yet.
    std::iter::once(key)
        .chain(&crate::root_keys::other_keys(key_path))
        .find_map(|k| {
            k.unwrap_key_material(&record.key_arn, &record.wrapped_material)
                .ok()
        })
        .map(|_| ())
        .ok_or(())
        .map_err(|_| {
            anyhow!(
                "{} does not open the KMS keys stored for Region {region}: every node serving \
                 {region} needs the same root key file; copy it from a node already serving \
                 this store (nothing was changed)",
                key_path.display()
            )
        })
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    write_file(path, contents, 0o600)
}

/// Writes a file whole (a temporary file renamed into place), created with `mode`.
pub fn write_file(path: &Path, contents: &str, mode: u32) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(contents.as_bytes())
        .and_then(|_| f.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

fn random_from(alphabet: &[u8], n: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char)
        .collect()
}

/// The account of this data directory; on first start, creates it with an admin user and an
/// access key.
async fn ensure_account(
    iam: &dyn IamStore,
    deployment_key: &RootKey,
    wanted: Option<&str>,
    admin_key: Option<&(String, Zeroizing<String>)>,
) -> anyhow::Result<String> {
    let existing = iam.accounts().await?;
    let first = match existing.into_iter().next() {
        Some(existing) => existing,
        None => {
            let account_id = match wanted {
                Some(id) => id.to_string(),
                None => new_account_id(),
            };
            let now = chrono::Utc::now().timestamp_millis();
            let (admin, key, _) = admin_records(deployment_key, &account_id, admin_key, now);
            // Atomic: of nodes starting at the same instant on one empty shared store, one
            // creates the account and the others take it.
            iam.bootstrap_account(now, admin, key).await?
        }
    };
    if let Some(w) = wanted
        && w != first
    {
        bail!(
            "this data directory belongs to account {first}, not {w}; drop --account-id or use another --data-dir"
        );
    }
    Ok(first)
}

/// The administrator (user `admin`, AdministratorAccess) of a new account and its access key
/// (`admin_key`, or a new one, sealed under the deployment key); also the key in clear.
fn admin_records(
    deployment_key: &RootKey,
    account_id: &str,
    admin_key: Option<&(String, Zeroizing<String>)>,
    now: i64,
) -> (UserRecord, AccessKeyRecord, (String, Zeroizing<String>)) {
    let user_arn = format!("arn:aws:iam::{account_id}:user/admin");
    let admin = UserRecord {
        user_arn: user_arn.clone(),
        account_id: account_id.to_string(),
        user_name: "admin".into(),
        user_id: coffer_core::principals::new_user_id(),
        is_admin: true,
        created_ms: now,
    };
    let (access_key_id, secret) = match admin_key {
        Some((id, secret)) => (id.clone(), secret.clone()),
        None => (
            coffer_core::principals::new_access_key_id(),
            coffer_core::principals::new_secret_access_key(),
        ),
    };
    let key = AccessKeyRecord {
        access_key_id: access_key_id.clone(),
        user_arn,
        account_id: account_id.to_string(),
        wrapped_secret: deployment_key.seal_credential(&access_key_id, secret.as_bytes()),
        status: "Active".into(),
        created_ms: now,
    };
    (admin, key, (access_key_id, secret))
}

/// A random 12-digit account id.
pub fn new_account_id() -> String {
    let first = rand::thread_rng().gen_range(1..=9).to_string();
    first + &random_from(b"0123456789", 11)
}

/// Creates an account with its administrator (user `admin`, AdministratorAccess) and one
/// access key for it (`admin_key`, or a new one); returns the key. `Conflict` text when the
/// account exists.
pub async fn create_account(
    iam: &dyn IamStore,
    deployment_key: &RootKey,
    account_id: &str,
    admin_key: Option<&(String, Zeroizing<String>)>,
) -> anyhow::Result<(String, Zeroizing<String>)> {
    let now = chrono::Utc::now().timestamp_millis();
    iam.create_account(account_id, now)
        .await
        .map_err(|e| match e {
            coffer_store::StoreError::Conflict => anyhow!("account {account_id} already exists"),
            e => e.into(),
        })?;
    let (admin, key, clear) = admin_records(deployment_key, account_id, admin_key, now);
    iam.create_user(admin).await?;
    iam.create_access_key(key).await?;
    Ok(clear)
}

/// The oldest active access key of the account's administrator (for `aws/credentials`).
async fn admin_key_of(
    iam: &dyn IamStore,
    credentials: &HashMap<String, Arc<Credential>>,
    account_id: &str,
) -> anyhow::Result<Option<(String, Zeroizing<String>)>> {
    let admins: Vec<String> = iam
        .users()
        .await?
        .into_iter()
        .filter(|u| u.is_admin && u.account_id == account_id)
        .map(|u| u.user_arn)
        .collect();
    for key in iam.access_keys().await? {
        if admins.contains(&key.user_arn)
            && let Some(c) = credentials.get(&key.access_key_id)
        {
            return Ok(Some((
                key.access_key_id.clone(),
                c.secret_access_key.clone(),
            )));
        }
    }
    Ok(None)
}

/// The replication public key of a Region of this data directory (creating its root key on a
/// new directory), for the `[[peers]]` of other nodes.
pub fn public_key(dir: &Path, region: &str) -> anyhow::Result<String> {
    create_private_dir(&dir.join("keys"))?;
    let store_exists = exists(&dir.join("regions").join(format!("{region}.db")));
    let key = root_key(&region_key_path(dir, region), store_exists)?;
    Ok(RegionKeyPair::derive(&key, region).public_key().to_base64())
}

/// This node's stable identity (`DIR/node-id`), used for outbox leases: a node restarted on the
/// same directory takes its own unfinished work back at once.
fn node_id(dir: &Path) -> anyhow::Result<String> {
    let path = dir.join("node-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_string()),
        _ => {
            let id = uuid::Uuid::new_v4().to_string();
            write_private(&path, &format!("{id}\n"))?;
            Ok(id)
        }
    }
}
