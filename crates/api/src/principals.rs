//! Live credentials: which access keys a node accepts, and who their callers are.
//!
//! The IAM store (SQLite file or a PostgreSQL schema shared by several nodes) is the truth;
//! [`Deployment::credentials`] is a cache of it:
//! - a key that is not in the cache is looked up in the store on its first request, so a key
//!   created by CreateAccessKey or `coffer account create` (on this node, another node or the
//!   command line) works at once;
//! - a cached key is reloaded from the store when its entry is older than
//!   `CREDENTIAL_TTL`, so a key deactivated or deleted, or a policy changed, through another
//!   node is refused (or re-evaluated) within that time;
//! - IAM operations of this node drop the entries they change, so on the node that served
//!   the change it takes effect with the next request.
//!
//! What a key's credential is (refused unless active, its caller's policies and tags) is
//! `coffer_core::principals`. Unknown keys are not cached (negatively): each request with one costs one store lookup
//! (ids that cannot be access key ids are refused without one).
//! When the store cannot be read, a cached entry keeps serving (availability over freshness
//! during a database outage); an uncached key is refused.

use std::sync::Arc;

use coffer_core::iam::CredentialCache;
use coffer_core::principals::{Credential, Principals};

use crate::Deployment;

impl Deployment {
    /// Makes this node's credentials follow the IAM store (see the module comment). Without
    /// it, the node accepts exactly the keys it was created with.
    pub fn set_principals(&self, principals: Arc<Principals>) {
        let _ = self.principals.set(principals);
    }

    pub fn principals(&self) -> Option<&Arc<Principals>> {
        self.principals.get()
    }

    /// The credential of an access key id, reloaded from the IAM store when not cached or
    /// cached for longer than `CREDENTIAL_TTL`.
    pub async fn resolve_credential(&self, access_key_id: &str) -> Option<Arc<Credential>> {
        let cached = self.credential(access_key_id);
        let Some(principals) = self.principals.get() else {
            return cached;
        };
        if cached.is_some() && principals.fresh(access_key_id) {
            return cached;
        }
        match principals.load(access_key_id).await {
            Ok(Some(credential)) => {
                let credential = Arc::new(credential);
                self.credentials
                    .write()
                    .expect("credentials lock")
                    .insert(access_key_id.to_string(), credential.clone());
                principals.mark(access_key_id, true);
                Some(credential)
            }
            Ok(None) => {
                self.credentials
                    .write()
                    .expect("credentials lock")
                    .remove(access_key_id);
                principals.mark(access_key_id, false);
                None
            }
            Err(e) => {
                tracing::warn!(access_key_id, error = %coffer_core::error::Chain(&e), "Cannot reload an access key");
                cached
            }
        }
    }
}

/// IAM operations keep this node's cache in step with what they change: the entries they
/// change are dropped (reloaded on their next request), a new key is loaded at once.
#[async_trait::async_trait]
impl CredentialCache for Deployment {
    fn forget(&self, user_arn: &str, access_key_id: Option<&str>) {
        let mut credentials = self.credentials.write().expect("credentials lock");
        credentials.retain(|id, c| match access_key_id {
            Some(k) => id != k,
            None => c.caller.principal_arn != user_arn,
        });
    }

    async fn load(&self, access_key_id: &str) {
        self.resolve_credential(access_key_id).await;
    }
}
