//! A Region's KMS keys: the root key that wraps their material, the cache of unwrapped keys,
//! finding a key the way Secrets Manager names it (`KmsKeyId`), checking that a caller may use
//! it, and envelope encryption of secret values under it (`keys/values.rs`); the key's stored
//! metadata is `keys/meta.rs`. The Secrets Manager operations (`ops/`), the KMS operations
//! (`kms/`) and replication find and load keys through here; this module calls none of them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use coffer_kms::{KeyMaterial, RootKey};
use coffer_store::{KmsAliasRecord, KmsKeyRecord, Store, StoreError};
use serde_json::json;

use crate::caller::Caller;
use crate::clock::Clock;
use crate::error::{Error, ErrorCode, Result};
use crate::model::Arn;

mod meta;
mod values;

pub use meta::{KeyMeta, KmsTag, PreviousMaterial, Rotation};

/// Reads a Region's root key files again (the current key first).
pub type RootKeyReloader = Box<dyn Fn() -> Vec<RootKey> + Send + Sync>;

pub const DEFAULT_KEY_ALIAS: &str = "alias/aws/secretsmanager";

/// A KMS key of this Region: its material (unwrapped), its stored record and its parsed state
/// and policy.
#[derive(Clone)]
pub struct KeyHandle {
    pub arn: String,
    /// The current material: what encrypts now.
    pub material: Arc<KeyMaterial>,
    /// Its id (`CurrentKeyMaterialId`).
    pub material_id: String,
    /// The earlier materials of a rotated key, oldest first: they still decrypt.
    pub previous: Arc<Vec<KeyMaterial>>,
    pub record: Arc<KmsKeyRecord>,
    pub meta: Arc<KeyMeta>,
    pub policy: Arc<coffer_iam::Policy>,
}

impl KeyHandle {
    /// The materials that may open `blob`: the one it names, or, for a blob made before keys
    /// could be rotated (which names none), the key's first material and then the others.
    pub fn materials_for(&self, blob: &[u8]) -> Vec<&KeyMaterial> {
        let all = self.previous.iter().chain(std::iter::once(&*self.material));
        match coffer_kms::ciphertext_material_id(blob) {
            Ok(Some(id)) => all.filter(|m| m.id() == id).collect(),
            _ => all.collect(),
        }
    }
}

/// What Secrets Manager is about to do with a key: the KMS action it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUse {
    /// `kms:GenerateDataKey`: a new secret value is encrypted.
    Encrypt,
    /// `kms:Decrypt`: a stored value is read.
    Decrypt,
}

impl KeyUse {
    pub fn action(self) -> &'static str {
        match self {
            KeyUse::Encrypt => "kms:GenerateDataKey",
            KeyUse::Decrypt => "kms:Decrypt",
        }
    }
}

/// How long a node trusts a key's cached state and policy. Changes made through this node are
/// seen at once (the cache entry is dropped); changes made by another node sharing the Region's
/// PostgreSQL store are seen within this time.
const KEY_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// The keys of one Region (`RegionService::keys`).
pub struct Keys {
    region: String,
    partition: &'static str,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// The root key new key material is wrapped under; replaced when a rotated key file is
    /// found (see [`Keys::set_root_key_reloader`]).
    root_key: std::sync::RwLock<Arc<RootKey>>,
    /// Earlier (or, during a rotation, next) root keys: used only to unwrap.
    unwrap_keys: std::sync::RwLock<Vec<Arc<RootKey>>>,
    /// Reads the Region's root key files again: the current key first, then others.
    reloader: std::sync::OnceLock<RootKeyReloader>,
    /// Loaded keys (material unwrapped, zeroized when dropped) by key ARN, with when they were
    /// loaded.
    cache: Mutex<HashMap<String, (std::time::Instant, KeyHandle)>>,
}

impl Keys {
    pub fn new(
        region: String,
        partition: &'static str,
        store: Arc<dyn Store>,
        root_key: RootKey,
        clock: Arc<dyn Clock>,
    ) -> Keys {
        Keys {
            region,
            partition,
            store,
            clock,
            root_key: std::sync::RwLock::new(Arc::new(root_key)),
            unwrap_keys: std::sync::RwLock::new(Vec::new()),
            reloader: std::sync::OnceLock::new(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The ARN of a KMS resource of this Region (`key/<id>`, `alias/<name>`) in `account`.
    pub fn kms_arn(&self, account: &str, resource: &str) -> String {
        format!(
            "arn:{}:kms:{}:{account}:{resource}",
            self.partition, self.region
        )
    }

    /// The root key that wraps this Region's new key material.
    pub fn root_key(&self) -> Arc<RootKey> {
        self.root_key.read().expect("root key lock").clone()
    }

    /// Adds a root key that only unwraps (a retired key whose material was not yet re-wrapped).
    pub fn add_unwrap_key(&self, key: RootKey) {
        self.unwrap_keys
            .write()
            .expect("root key lock")
            .push(Arc::new(key));
    }

    /// Root-key rotation without a restart (`coffer rotate-root-key`, docs/keys.md): when stored
    /// material opens under none of the known root keys, `reload` is called for the key files
    /// as they are now (the current key first); keys not seen before are added for unwrapping,
    /// and a new current key also becomes the key new material is wrapped under.
    pub fn set_root_key_reloader(&self, reload: RootKeyReloader) {
        let _ = self.reloader.set(reload);
    }

    /// Wraps key material under the current root key.
    pub fn wrap_material(&self, key_arn: &str, material: &KeyMaterial) -> Vec<u8> {
        self.root_key().wrap_key_material(key_arn, material)
    }

    /// Unwraps stored key material under the current, retired or freshly rotated root key.
    pub fn unwrap_material(&self, key_arn: &str, wrapped: &[u8]) -> Result<KeyMaterial> {
        if let Some(m) = self.try_unwrap(key_arn, wrapped) {
            return Ok(m);
        }
        if let Some(reload) = self.reloader.get() {
            let mut known: Vec<String> = self
                .unwrap_keys
                .read()
                .expect("root key lock")
                .iter()
                .map(|k| k.fingerprint())
                .collect();
            known.push(self.root_key().fingerprint());
            for (i, key) in reload().into_iter().enumerate() {
                let fingerprint = key.fingerprint();
                let key = Arc::new(key);
                if i == 0 && fingerprint != self.root_key().fingerprint() {
                    tracing::info!(region = %self.region, fingerprint, "Rotated root key in use");
                    let old =
                        std::mem::replace(&mut *self.root_key.write().expect("root key lock"), key);
                    self.unwrap_keys.write().expect("root key lock").push(old);
                } else if !known.contains(&fingerprint) {
                    self.unwrap_keys.write().expect("root key lock").push(key);
                }
                known.push(fingerprint);
            }
            if let Some(m) = self.try_unwrap(key_arn, wrapped) {
                return Ok(m);
            }
        }
        Err(Error::internal("root key cannot unwrap a KMS key"))
    }

    fn try_unwrap(&self, key_arn: &str, wrapped: &[u8]) -> Option<KeyMaterial> {
        if let Ok(m) = self.root_key().unwrap_key_material(key_arn, wrapped) {
            return Some(m);
        }
        let others = self.unwrap_keys.read().expect("root key lock").clone();
        others
            .iter()
            .find_map(|k| k.unwrap_key_material(key_arn, wrapped).ok())
    }

    /// Drops a key from the cache after it was changed (state, policy, material).
    pub fn forget_key(&self, key_arn: &str) {
        self.cache.lock().expect("key cache").remove(key_arn);
    }

    /// A key of this Region by ARN, or `None` when there is no such key.
    pub async fn key_by_arn(&self, key_arn: &str) -> Result<Option<KeyHandle>> {
        if let Some((at, handle)) = self.cache.lock().expect("key cache").get(key_arn)
            && at.elapsed() < KEY_CACHE_TTL
        {
            return Ok(Some(handle.clone()));
        }
        let Some(record) = self.store.load_kms_key(key_arn).await? else {
            self.forget_key(key_arn);
            return Ok(None);
        };
        let handle = self.handle(record)?;
        self.cache.lock().expect("key cache").insert(
            key_arn.to_string(),
            (std::time::Instant::now(), handle.clone()),
        );
        Ok(Some(handle))
    }

    /// Unwraps and parses a stored key.
    pub fn handle(&self, record: KmsKeyRecord) -> Result<KeyHandle> {
        let material = self.unwrap_material(&record.key_arn, &record.wrapped_material)?;
        let meta: KeyMeta = serde_json::from_str(&record.metadata)
            .map_err(|e| Error::internal_from("stored KMS key metadata is not valid", e))?;
        let document = meta
            .policy
            .clone()
            .unwrap_or_else(|| self.default_policy(&record.account_id, &meta));
        let policy = coffer_iam::Policy::parse(&document)
            .map_err(|e| Error::internal_from("stored KMS key policy is not valid", e))?;
        let previous = meta
            .previous_materials
            .iter()
            .map(|p| {
                let sealed = base64::engine::general_purpose::STANDARD
                    .decode(&p.sealed)
                    .ok()?;
                material.open_previous(&record.key_id, &sealed).ok()
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| Error::internal("a stored earlier KMS key material does not open"))?;
        Ok(KeyHandle {
            arn: record.key_arn.clone(),
            material_id: material.id(),
            material: Arc::new(material),
            previous: Arc::new(previous),
            record: Arc::new(record),
            meta: Arc::new(meta),
            policy: Arc::new(policy),
        })
    }

    /// Whether `caller` may use `key` for `use_` through Secrets Manager, as AWS decides it:
    /// the `aws/secretsmanager` key only within its account ([S] InvalidRequestException), a
    /// disabled or pending-deletion key gives EncryptionFailure / DecryptionFailure, and the key
    /// policy must allow the action (`AccessDeniedException: Access to KMS is not allowed` [F]).
    pub fn authorize_key_use(&self, caller: &Caller, key: &KeyHandle, use_: KeyUse) -> Result<()> {
        self.check_key_use(caller, key, use_)
            .map_err(|d| d.into_error())
    }

    /// [`Keys::authorize_key_use`] with the reason kept apart, so replication can put
    /// the missing permission into a replica's StatusMessage.
    pub fn check_key_use(
        &self,
        caller: &Caller,
        key: &KeyHandle,
        use_: KeyUse,
    ) -> std::result::Result<(), KeyUseDenied> {
        if key.meta.key_manager == "AWS" && caller.account_id != key.record.account_id {
            return Err(KeyUseDenied::Error(Error::invalid_request(
                "You can't access a secret from a different AWS account if you encrypt the secret with the default KMS service key.",
            )));
        }
        let state_problem = match key.meta.key_state.as_str() {
            "Enabled" => None,
            "PendingDeletion" | "PendingReplicaDeletion" => {
                Some(format!("{} is pending deletion.", key.arn))
            }
            _ => Some(format!("{} is disabled.", key.arn)),
        };
        if let Some(problem) = state_problem {
            // [E] AWS documents only the error codes here; the KMS reason is appended so the
            // user sees which key is unusable and why.
            let (code, text) = match use_ {
                KeyUse::Encrypt => (
                    ErrorCode::EncryptionFailure,
                    "Secrets Manager can't encrypt the secret value",
                ),
                KeyUse::Decrypt => (
                    ErrorCode::DecryptionFailure,
                    "Secrets Manager can't decrypt the protected secret text using the provided KMS key",
                ),
            };
            return Err(KeyUseDenied::Error(Error::new(
                code,
                format!("{text}: {problem}"),
            )));
        }
        // Only the keys the policies look up (the default key policy of aws/secretsmanager
        // reads kms:CallerAccount and kms:ViaService): this runs on every read of a secret.
        let context = coffer_iam::context_read_by(key_policies(caller, key), |context| {
            fill_policy_context(caller, context);
            context.set_with("kms:ViaService", || {
                format!("secretsmanager.{}.amazonaws.com", self.region)
            });
        });
        evaluate_key_policy(caller, key, use_.action(), &context).map_err(KeyUseDenied::Policy)
    }

    /// Stores a new customer key (`key_id` a UUID or `mrk-...`) with `material` wrapped under
    /// this Region's root key. `AlreadyExistsException` when the key id is taken here.
    pub async fn create_key(
        &self,
        account: &str,
        key_id: &str,
        meta: KeyMeta,
        material: KeyMaterial,
    ) -> Result<KeyHandle> {
        let key_arn = self.kms_arn(account, &format!("key/{key_id}"));
        let record = KmsKeyRecord {
            key_arn: key_arn.clone(),
            account_id: account.to_string(),
            key_id: key_id.to_string(),
            wrapped_material: self.wrap_material(&key_arn, &material),
            metadata: meta.to_json(),
            created_ms: self.clock.now_ms(),
        };
        match self.store.create_kms_key(record.clone(), None).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => {
                return Err(already_exists(&key_arn));
            }
            Err(e) => return Err(e.into()),
        }
        self.forget_key(&key_arn);
        self.handle(record)
    }

    /// The account's `aws/secretsmanager` key in this Region, created on first use.
    pub async fn default_key(&self, account: &str) -> Result<KeyHandle> {
        for _ in 0..3 {
            if let Some(alias) = self
                .store
                .load_kms_alias(account, DEFAULT_KEY_ALIAS)
                .await?
                && let Some(key) = self.key_by_arn(&alias.target_key_arn).await?
            {
                return Ok(key);
            }
            let key_id = uuid::Uuid::new_v4().to_string();
            let key_arn = self.kms_arn(account, &format!("key/{key_id}"));
            let material = KeyMaterial::generate();
            let now = self.clock.now_ms();
            let metadata = KeyMeta::aws_managed(
                "Default key that protects my Secrets Manager data when no other key is defined",
            );
            let record = KmsKeyRecord {
                key_arn: key_arn.clone(),
                account_id: account.to_string(),
                key_id,
                wrapped_material: self.wrap_material(&key_arn, &material),
                metadata: metadata.to_json(),
                created_ms: now,
            };
            let alias = KmsAliasRecord {
                account_id: account.to_string(),
                alias_name: DEFAULT_KEY_ALIAS.to_string(),
                target_key_arn: key_arn,
                created_ms: now,
            };
            match self.store.create_kms_key(record, Some(alias)).await {
                // Someone else created it first: use theirs.
                Ok(()) | Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::internal("default KMS key could not be created"))
    }

    /// Resolves `KmsKeyId` as Secrets Manager accepts it: key id, key ARN, `alias/name` or alias
    /// ARN; `None`/empty is the default key. Not found is reported as AWS reports it through
    /// Secrets Manager [F terraform-provider-aws #30272]:
    /// `Secrets Manager can't encrypt the secret value: Key '<arn>' does not exist`.
    pub async fn resolve_key(&self, account: &str, key_id: Option<&str>) -> Result<KeyHandle> {
        let key_id = match key_id {
            None | Some("") => return self.default_key(account).await,
            Some(k) => k,
        };
        // A key lives in one Region: an ARN of another Region (or partition) names no key here.
        if let Some(arn) = Arn::parse(key_id)
            && (arn.region != self.region || arn.partition != self.partition)
        {
            let what = if arn.resource.starts_with("alias/") {
                "Alias"
            } else {
                "Key"
            };
            return Err(Error::new(
                ErrorCode::EncryptionFailure,
                format!(
                    "Secrets Manager can't encrypt the secret value: {what} '{key_id}' does not exist in Region {}: a KMS key can only be used in its own Region.",
                    self.region
                ),
            ));
        }
        let (alias_account, alias_name) = if let Some(name) = key_id.strip_prefix("alias/") {
            (account.to_string(), Some(format!("alias/{name}")))
        } else if let Some(arn) = Arn::parse(key_id)
            && arn.service == "kms"
            && arn.resource.starts_with("alias/")
        {
            (arn.account.to_string(), Some(arn.resource.to_string()))
        } else {
            (account.to_string(), None)
        };
        if let Some(alias_name) = alias_name {
            if alias_name == DEFAULT_KEY_ALIAS && alias_account == account {
                return self.default_key(account).await;
            }
            if let Some(alias) = self
                .store
                .load_kms_alias(&alias_account, &alias_name)
                .await?
                && let Some(key) = self.key_by_arn(&alias.target_key_arn).await?
            {
                return Ok(key);
            }
            return Err(Error::new(
                ErrorCode::EncryptionFailure,
                format!(
                    "Secrets Manager can't encrypt the secret value: Alias {} is not found.",
                    self.kms_arn(&alias_account, &alias_name)
                ),
            ));
        }
        let key_arn = if key_id.starts_with("arn:") {
            key_id.to_string()
        } else {
            self.kms_arn(account, &format!("key/{key_id}"))
        };
        match self.key_by_arn(&key_arn).await? {
            Some(key) => Ok(key),
            None => Err(Error::new(
                ErrorCode::EncryptionFailure,
                format!(
                    "Secrets Manager can't encrypt the secret value: Key '{key_arn}' does not exist"
                ),
            )),
        }
    }

    /// AWS's default key policy [D "Default key policy"]: for a customer key, the account root gets
    /// `kms:*`, so the account's IAM policies decide. For the `aws/secretsmanager` key, the policy
    /// AWS gives its AWS-managed Secrets Manager keys: use through Secrets Manager by principals of
    /// the key's account only, and read access to its metadata for the account.
    pub fn default_policy(&self, account: &str, meta: &KeyMeta) -> String {
        let root = format!("arn:{}:iam::{account}:root", self.partition);
        let policy = if meta.key_manager == "AWS" {
            json!({
                "Version": "2012-10-17",
                "Id": "auto-secretsmanager-2",
                "Statement": [
                    {
                        "Sid": "Allow access through AWS Secrets Manager for all principals in the account that are authorized to use AWS Secrets Manager",
                        "Effect": "Allow",
                        "Principal": {"AWS": "*"},
                        "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:CreateGrant", "kms:DescribeKey", "kms:GenerateDataKey*"],
                        "Resource": "*",
                        "Condition": {
                            "StringEquals": {
                                "kms:CallerAccount": account,
                                "kms:ViaService": format!("secretsmanager.{}.amazonaws.com", self.region)
                            }
                        }
                    },
                    {
                        "Sid": "Allow direct access to key metadata to the account",
                        "Effect": "Allow",
                        "Principal": {"AWS": root},
                        "Action": ["kms:Describe*", "kms:Get*", "kms:List*", "kms:RevokeGrant"],
                        "Resource": "*"
                    }
                ]
            })
        } else {
            json!({
                "Version": "2012-10-17",
                "Id": "key-default-1",
                "Statement": [{
                    "Sid": "Enable IAM User Permissions",
                    "Effect": "Allow",
                    "Principal": {"AWS": root},
                    "Action": "kms:*",
                    "Resource": "*"
                }]
            })
        };
        serde_json::to_string_pretty(&policy).expect("policy serializes")
    }
}

/// Why a key may not be used through Secrets Manager.
#[derive(Debug, Clone)]
pub enum KeyUseDenied {
    /// The key policy (or an identity policy) does not allow the action; the text says who,
    /// which action and which key.
    Policy(String),
    /// Any other reason, already in the error Secrets Manager returns.
    Error(Error),
}

impl KeyUseDenied {
    /// The error Secrets Manager returns: a policy denial is `AccessDeniedException`
    /// `Access to KMS is not allowed` [F] (AWS does not say more).
    pub fn into_error(self) -> Error {
        match self {
            KeyUseDenied::Policy(_) => {
                Error::new(ErrorCode::AccessDenied, "Access to KMS is not allowed")
            }
            KeyUseDenied::Error(e) => e,
        }
    }

    /// A one-line reason for a replica's StatusMessage, naming the missing permission.
    pub fn describe(&self) -> String {
        match self {
            KeyUseDenied::Policy(detail) => format!("Access to KMS is not allowed: {detail}"),
            KeyUseDenied::Error(e) => e.message.clone(),
        }
    }
}

/// `action` on `key` by `caller`, under the key policy and the caller's identity policies;
/// `Err` is the AccessDenied message. Both Secrets Manager's use of a key and the KMS
/// operations decide through it.
pub fn evaluate_key_policy(
    caller: &Caller,
    key: &KeyHandle,
    action: &str,
    context: &coffer_iam::Context,
) -> std::result::Result<(), String> {
    let principal = caller.principal();
    let request = coffer_iam::Request {
        principal: &principal,
        action,
        resource: &key.arn,
        resource_account: &key.record.account_id,
        context,
    };
    match coffer_iam::evaluate_key_policy(&request, &caller.policies, &key.policy) {
        coffer_iam::Decision::Allow => Ok(()),
        coffer_iam::Decision::Deny(denial) => {
            Err(coffer_iam::access_denied_message(&request, denial))
        }
    }
}

/// The policies [`evaluate_key_policy`] consults for `caller` on `key`: the caller's identity
/// policies and the key policy (for [`coffer_iam::context_read_by`]).
pub fn key_policies<'a>(
    caller: &'a Caller,
    key: &'a KeyHandle,
) -> impl Iterator<Item = &'a coffer_iam::Policy> {
    caller.policies.iter().chain(std::iter::once(&*key.policy))
}

/// Sets the condition keys every KMS authorisation sees (each value computed only if the
/// context keeps its key: see [`coffer_iam::context_read_by`]).
pub fn fill_policy_context(caller: &Caller, context: &mut coffer_iam::Context) {
    context.set_with("aws:PrincipalArn", || caller.principal_arn.clone());
    context.set_with("aws:PrincipalAccount", || caller.account_id.clone());
    if let Some(name) = &caller.user_name {
        context.set_with("aws:username", || name.clone());
    }
    caller.set_principal_tags(context);
    if let Some(ip) = caller.source_ip {
        context.set_with("aws:SourceIp", || ip.to_string());
    }
    context.set_with("aws:SecureTransport", || {
        caller.secure_transport.to_string()
    });
    context.set_with("aws:CurrentTime", || {
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    });
    context.set_with("kms:CallerAccount", || caller.account_id.clone());
}

/// `AlreadyExistsException`: a key id taken in the Region.
pub(crate) fn already_exists(arn: &str) -> Error {
    Error::new(
        ErrorCode::KmsAlreadyExists,
        format!("Key {arn} already exists."),
    )
}
