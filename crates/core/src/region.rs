//! One Region's service: its store, its key service and its clock. Every operation runs
//! against exactly one `RegionService`, chosen by the SigV4 credential scope.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use coffer_kms::{EncryptionContext, KeyMaterial, RootKey};
use coffer_store::{KmsAliasRecord, KmsKeyRecord, Store, StoreError};
use zeroize::Zeroizing;

use crate::error::{Error, ErrorCode, Result};
use crate::model::{Arn, SecretValue};

/// Time source, injected so tests can move time (deletion windows, day-resolution reads).
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }
}

/// Who is calling, as established by SigV4, with what the policy evaluation needs about them
/// and about this request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account_id: String,
    pub principal_arn: String,
    /// `aws:username` for IAM users; `None` for the account root and service principals.
    pub user_name: Option<String>,
    /// The caller's identity-based policies, parsed once when the credential is loaded.
    pub policies: Arc<[coffer_iam::Policy]>,
    /// `aws:SourceIp` of this request (set by the HTTP layer; `None` for internal callers).
    pub source_ip: Option<std::net::IpAddr>,
    /// `aws:SecureTransport`: whether this request arrived over TLS.
    pub secure_transport: bool,
    /// `aws:PrincipalTag/<key>`: the IAM user's tags (none for roots and Coffer's workers).
    pub principal_tags: Arc<[(String, String)]>,
}

impl Caller {
    /// A principal that may do everything in its own account (the administrator created at
    /// initialisation, and Coffer's own workers acting for an account).
    pub fn administrator(account_id: &str, principal_arn: &str) -> Caller {
        Caller {
            account_id: account_id.to_string(),
            principal_arn: principal_arn.to_string(),
            user_name: principal_arn
                .split_once(":user/")
                .map(|(_, name)| name.rsplit('/').next().unwrap_or(name).to_string()),
            policies: Arc::from(vec![coffer_iam::Policy::administrator_access()]),
            source_ip: None,
            secure_transport: false,
            principal_tags: Arc::from(Vec::new()),
        }
    }

    /// The principal as policy evaluation sees it.
    /// Sets `aws:PrincipalTag/<key>` for each of the caller's tags.
    pub fn set_principal_tags(&self, context: &mut coffer_iam::Context) {
        for (key, value) in self.principal_tags.iter() {
            context.set(&format!("aws:PrincipalTag/{key}"), value.as_str());
        }
    }

    pub fn principal(&self) -> coffer_iam::Principal {
        coffer_iam::Principal {
            arn: self.principal_arn.clone(),
            account_id: self.account_id.clone(),
            user_name: self.user_name.clone(),
        }
    }
}

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
    pub meta: Arc<crate::kms::KeyMeta>,
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

pub struct RegionService {
    pub region: String,
    pub partition: &'static str,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    /// The root key new key material is wrapped under; replaced when a rotated key file is
    /// found (see [`RegionService::set_root_key_reloader`]).
    root_key: std::sync::RwLock<Arc<RootKey>>,
    /// Earlier (or, during a rotation, next) root keys: used only to unwrap.
    unwrap_keys: std::sync::RwLock<Vec<Arc<RootKey>>>,
    /// Reads the Region's root key files again: the current key first, then others.
    reloader: std::sync::OnceLock<RootKeyReloader>,
    /// Loaded keys (material unwrapped, zeroized when dropped) by key ARN, with when they were
    /// loaded.
    keys: Mutex<HashMap<String, (std::time::Instant, KeyHandle)>>,
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
            region,
            partition,
            store,
            clock,
            root_key: std::sync::RwLock::new(Arc::new(root_key)),
            unwrap_keys: std::sync::RwLock::new(Vec::new()),
            reloader: std::sync::OnceLock::new(),
            keys: Mutex::new(HashMap::new()),
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

    fn kms_arn(&self, account: &str, resource: &str) -> String {
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
        self.keys.lock().expect("key cache").remove(key_arn);
    }

    /// A key of this Region by ARN, or `None` when there is no such key.
    pub async fn key_by_arn(&self, key_arn: &str) -> Result<Option<KeyHandle>> {
        if let Some((at, handle)) = self.keys.lock().expect("key cache").get(key_arn)
            && at.elapsed() < KEY_CACHE_TTL
        {
            return Ok(Some(handle.clone()));
        }
        let Some(record) = self.store.load_kms_key(key_arn).await? else {
            self.forget_key(key_arn);
            return Ok(None);
        };
        let handle = self.handle(record)?;
        self.keys.lock().expect("key cache").insert(
            key_arn.to_string(),
            (std::time::Instant::now(), handle.clone()),
        );
        Ok(Some(handle))
    }

    /// Unwraps and parses a stored key.
    pub fn handle(&self, record: KmsKeyRecord) -> Result<KeyHandle> {
        let material = self.unwrap_material(&record.key_arn, &record.wrapped_material)?;
        let meta: crate::kms::KeyMeta = serde_json::from_str(&record.metadata)
            .map_err(|_| Error::internal("stored KMS key metadata is not valid"))?;
        let document = meta
            .policy
            .clone()
            .unwrap_or_else(|| crate::kms::default_policy(self, &record.account_id, &meta));
        let policy = coffer_iam::Policy::parse(&document)
            .map_err(|_| Error::internal("stored KMS key policy is not valid"))?;
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

    /// [`RegionService::authorize_key_use`] with the reason kept apart, so replication can put
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
        let mut context = crate::kms::policy_context(caller);
        context.set(
            "kms:ViaService",
            format!("secretsmanager.{}.amazonaws.com", self.region),
        );
        let principal = caller.principal();
        let request = coffer_iam::Request {
            principal: &principal,
            action: use_.action(),
            resource: &key.arn,
            resource_account: &key.record.account_id,
            context: &context,
        };
        match coffer_iam::evaluate_key_policy(&request, &caller.policies, &key.policy) {
            coffer_iam::Decision::Allow => Ok(()),
            coffer_iam::Decision::Deny(denial) => Err(KeyUseDenied::Policy(
                coffer_iam::access_denied_message(&request, denial),
            )),
        }
    }

    /// Stores a new customer key (`key_id` a UUID or `mrk-...`) with `material` wrapped under
    /// this Region's root key. `AlreadyExistsException` when the key id is taken here.
    pub async fn create_key(
        &self,
        account: &str,
        key_id: &str,
        meta: crate::kms::KeyMeta,
        material: KeyMaterial,
    ) -> Result<KeyHandle> {
        let key_arn = self.kms_arn(account, &format!("key/{key_id}"));
        let record = KmsKeyRecord {
            key_arn: key_arn.clone(),
            account_id: account.to_string(),
            key_id: key_id.to_string(),
            wrapped_material: self.wrap_material(&key_arn, &material),
            metadata: meta.to_json(),
            created_ms: self.now_ms(),
        };
        match self.store.create_kms_key(record.clone(), None).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => {
                return Err(crate::kms::replicate_key::already_exists(&key_arn));
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
            let now = self.now_ms();
            let metadata = crate::kms::KeyMeta::aws_managed(
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

    /// AAD for the value: binds Region, secret ARN and VersionId, so a ciphertext copied to
    /// another secret, version or Region does not decrypt.
    fn value_aad(&self, arn: &str, version_id: &str) -> Vec<u8> {
        let mut aad = Vec::with_capacity(self.region.len() + arn.len() + version_id.len() + 2);
        aad.extend_from_slice(self.region.as_bytes());
        aad.push(0);
        aad.extend_from_slice(arn.as_bytes());
        aad.push(0);
        aad.extend_from_slice(version_id.as_bytes());
        aad
    }

    fn context(arn: &str, version_id: &str) -> EncryptionContext {
        // The two pairs Secrets Manager sends to KMS (spec §7.1).
        let mut ctx = EncryptionContext::new();
        ctx.insert("SecretARN".into(), arn.into());
        ctx.insert("SecretVersionId".into(), version_id.into());
        ctx
    }

    /// Envelope-encrypts a value: a fresh data key wrapped by `key`, the value sealed by it.
    /// Returns (wrapped data key, ciphertext).
    pub fn encrypt_value(
        &self,
        caller: &Caller,
        key: &KeyHandle,
        arn: &str,
        version_id: &str,
        value: &SecretValue,
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        self.authorize_key_use(caller, key, KeyUse::Encrypt)?;
        let (data_key, wrapped) =
            coffer_kms::generate_data_key(&key.material, &key.arn, &Self::context(arn, version_id))
                .map_err(|_| {
                    Error::new(
                        ErrorCode::EncryptionFailure,
                        "Secrets Manager can't encrypt the secret value.",
                    )
                })?;
        let ciphertext = data_key.seal(&self.value_aad(arn, version_id), value.as_bytes());
        Ok((wrapped, ciphertext))
    }

    pub async fn decrypt_value(
        &self,
        caller: &Caller,
        arn: &str,
        version: &coffer_store::VersionRecord,
    ) -> Result<SecretValue> {
        let failure = || {
            Error::new(
                ErrorCode::DecryptionFailure,
                "Secrets Manager can't decrypt the protected secret text using the provided KMS key.",
            )
        };
        let (Some(wrapped), Some(ciphertext)) = (&version.wrapped_data_key, &version.ciphertext)
        else {
            return Err(failure());
        };
        let key_arn = coffer_kms::ciphertext_key_id(wrapped).map_err(|_| failure())?;
        let key = self.key_by_arn(key_arn).await?.ok_or_else(failure)?;
        self.authorize_key_use(caller, &key, KeyUse::Decrypt)?;
        let context = Self::context(arn, &version.version_id);
        let data_key = key
            .materials_for(wrapped)
            .into_iter()
            .find_map(|m| coffer_kms::decrypt_data_key(m, wrapped, &context).ok())
            .ok_or_else(failure)?;
        let plain = data_key
            .open(&self.value_aad(arn, &version.version_id), ciphertext)
            .map_err(|_| failure())?;
        Ok(match version.value_kind {
            coffer_store::ValueKind::String => SecretValue::String(Zeroizing::new(
                String::from_utf8(plain.to_vec()).map_err(|_| failure())?,
            )),
            _ => SecretValue::Binary(plain),
        })
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
