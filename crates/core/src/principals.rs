//! The principals of a deployment, as the IAM store holds them: which access keys exist, who
//! their callers are (their users' inline policies and tags), and the sealing of secret access
//! keys by `keys/deployment.key` ([`RootKey::seal_credential`]); they are opened only here and
//! never logged. The node's cache of live credentials, built on [`Principals::load`], is
//! `coffer_api`'s `Deployment::resolve_credential`.
//!
//! A key whose status is not `Active`, whose user is gone, or which does not exist is refused
//! exactly like an unknown one (AWS answers an inactive key with the same
//! UnrecognizedClientException / InvalidClientTokenId as a key that never existed).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coffer_iam::Policy;
use coffer_kms::RootKey;
use coffer_store::{AccessKeyRecord, IamStore, UserRecord};
use rand::Rng;
use zeroize::Zeroizing;

use crate::Caller;

/// An access key as the verifier needs it. `Debug` never shows the secret.
pub struct Credential {
    pub secret_access_key: Zeroizing<String>,
    pub caller: Caller,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("caller", &self.caller)
            .finish_non_exhaustive()
    }
}

/// Why an access key's credential cannot be loaded: the key is then refused (a request) or the
/// node does not start (`load_all`).
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error(transparent)]
    Store(#[from] coffer_store::StoreError),
    #[error("policy {policy} of {user} no longer parses")]
    PolicyUnreadable {
        policy: String,
        user: String,
        #[source]
        source: coffer_iam::PolicyError,
    },
    #[error(
        "access key {0} cannot be decrypted: keys/deployment.key does not belong to this IAM store"
    )]
    Sealed(String),
    #[error("access key {0} is damaged")]
    Damaged(String),
}

/// How long a cached credential is used before it is read from the IAM store again.
pub const CREDENTIAL_TTL: Duration = Duration::from_secs(2);

/// The IAM store, the key that seals secret access keys, and when each cached credential
/// was read.
pub struct Principals {
    pub iam: Arc<dyn IamStore>,
    deployment_key: RootKey,
    loaded: Mutex<HashMap<String, Instant>>,
}

const KEY_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn random_from(alphabet: &[u8], n: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char)
        .collect()
}

/// A new access key id (`AKIA` + 16), as AWS makes them.
pub fn new_access_key_id() -> String {
    format!("AKIA{}", random_from(KEY_ALPHABET, 16))
}

/// A new secret access key (40 characters).
pub fn new_secret_access_key() -> Zeroizing<String> {
    Zeroizing::new(random_from(SECRET_ALPHABET, 40))
}

/// A new user id (`AIDA` + 17).
pub fn new_user_id() -> String {
    format!("AIDA{}", random_from(KEY_ALPHABET, 17))
}

/// Whether `id` can be an access key id at all: IAM's are [A-Z0-9]{16,128}; an id configured
/// with `admin_access_key_id` may use any ASCII letters and digits, and be longer.
fn plausible_key_id(id: &str) -> bool {
    (1..=1024).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl Principals {
    pub fn new(iam: Arc<dyn IamStore>, deployment_key: RootKey) -> Principals {
        Principals {
            iam,
            deployment_key,
            loaded: Mutex::new(HashMap::new()),
        }
    }

    /// The sealed form of a secret access key, for [`AccessKeyRecord::wrapped_secret`].
    pub fn seal(&self, access_key_id: &str, secret: &str) -> Vec<u8> {
        self.deployment_key
            .seal_credential(access_key_id, secret.as_bytes())
    }

    /// The caller a user's requests act as: its inline policies (and, for the administrator
    /// created with the account, AdministratorAccess before them) and its tags
    /// (`aws:PrincipalTag/<key>`).
    pub async fn caller_of(&self, user: &UserRecord) -> Result<Caller, CredentialError> {
        let mut policies = Vec::new();
        if user.is_admin {
            policies.push(Policy::administrator_access());
        }
        for p in self.iam.user_policies(&user.user_arn).await? {
            // Stored documents passed the same parser when they were put. Should one no longer
            // parse (a stricter Coffer), the credential fails to load, which refuses the key:
            // ignoring the document could drop a Deny.
            policies.push(Policy::parse(&p.document).map_err(|source| {
                CredentialError::PolicyUnreadable {
                    policy: p.policy_name.clone(),
                    user: user.user_arn.clone(),
                    source,
                }
            })?);
        }
        let tags = self
            .iam
            .user_tags(&user.user_arn)
            .await?
            .map(|stored| crate::user_tags::parse(&stored))
            .unwrap_or_default();
        Ok(Caller {
            account_id: user.account_id.clone(),
            principal_arn: user.user_arn.clone(),
            user_name: Some(user.user_name.clone()),
            policies: Arc::from(policies),
            source_ip: None,
            secure_transport: false,
            principal_tags: tags.into_iter().map(|t| (t.key, t.value)).collect(),
        })
    }

    /// The credential of an access key record, `None` unless it is active and its user exists.
    async fn credential_of(
        &self,
        key: &AccessKeyRecord,
    ) -> Result<Option<Credential>, CredentialError> {
        if key.status != "Active" {
            return Ok(None);
        }
        let Some(user) = self.iam.user(&key.user_arn).await? else {
            return Ok(None);
        };
        let secret = self
            .deployment_key
            .open_credential(&key.access_key_id, &key.wrapped_secret)
            .map_err(|_| CredentialError::Sealed(key.access_key_id.clone()))?;
        // The UTF-8 error is not kept: it holds the secret's bytes.
        let secret = String::from_utf8(secret.to_vec())
            .map_err(|_| CredentialError::Damaged(key.access_key_id.clone()))?;
        Ok(Some(Credential {
            secret_access_key: Zeroizing::new(secret),
            caller: self.caller_of(&user).await?,
        }))
    }

    /// Reads one access key from the store.
    pub async fn load(&self, access_key_id: &str) -> Result<Option<Credential>, CredentialError> {
        if !plausible_key_id(access_key_id) {
            return Ok(None);
        }
        match self.iam.access_key(access_key_id).await? {
            Some(key) => self.credential_of(&key).await,
            None => Ok(None),
        }
    }

    /// Every active key of the store (the cache a node starts with).
    pub async fn load_all(&self) -> Result<HashMap<String, Arc<Credential>>, CredentialError> {
        let mut out = HashMap::new();
        for key in self.iam.access_keys().await? {
            if let Some(c) = self.credential_of(&key).await? {
                out.insert(key.access_key_id.clone(), Arc::new(c));
            }
        }
        let now = Instant::now();
        let mut loaded = self.loaded.lock().expect("loaded lock");
        for id in out.keys() {
            loaded.insert(id.clone(), now);
        }
        Ok(out)
    }

    /// Whether a cached entry is still fresh. A stale one is claimed for reloading by the
    /// first request that sees it (its time is reset), so concurrent requests keep using the
    /// cached entry meanwhile instead of all reading the store at once.
    pub fn fresh(&self, access_key_id: &str) -> bool {
        let mut loaded = self.loaded.lock().expect("loaded lock");
        match loaded.get_mut(access_key_id) {
            Some(at) if at.elapsed() < CREDENTIAL_TTL => true,
            Some(at) => {
                *at = Instant::now();
                false
            }
            None => false,
        }
    }

    /// Records that `access_key_id` was just read from the store (`present`) or found absent.
    pub fn mark(&self, access_key_id: &str, present: bool) {
        let mut loaded = self.loaded.lock().expect("loaded lock");
        if present {
            loaded.insert(access_key_id.to_string(), Instant::now());
        } else {
            loaded.remove(access_key_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_have_aws_shapes() {
        let key = new_access_key_id();
        assert!(key.starts_with("AKIA") && key.len() == 20 && plausible_key_id(&key));
        assert_ne!(key, new_access_key_id());
        assert_eq!(new_secret_access_key().len(), 40);
        assert!(new_user_id().starts_with("AIDA"));
        assert!(!plausible_key_id("AKIA/000000000000000"));
        assert!(!plausible_key_id(""));
        assert!(plausible_key_id(&"A".repeat(129)));
        assert!(!plausible_key_id(&"A".repeat(1025)));
    }
}
