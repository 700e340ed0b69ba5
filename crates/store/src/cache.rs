//! A read-through cache of secrets in front of a [`Store`], for the read path
//! (GetSecretValue, DescribeSecret). It holds only what the store holds — ciphertext, never a
//! plaintext value.
//!
//! It is exact when this process is the only writer of the store (the embedded SQLite default):
//! every change goes through [`Store::commit_with`] or [`Store::record_access`] here, which
//! drop the affected entries. A generation counter closes the race in which a reader that
//! loaded the old state puts it back after a writer dropped it: an entry is only inserted if no
//! change happened since the read began.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::{
    KmsAliasRecord, KmsChange, KmsKeyRecord, OutboxEntry, OutboxRow, Result, Secret, SecretChange,
    Store,
};

#[derive(Default)]
struct Entries {
    generation: u64,
    by_arn: HashMap<String, Arc<Secret>>,
    /// (account, name) -> ARN; names never change for an ARN, so this needs no invalidation
    /// beyond a miss on `by_arn`.
    arn_by_name: HashMap<(String, String), String>,
}

/// Most secrets a cache holds before it starts over (a bound on memory, not a policy).
const MAX_ENTRIES: usize = 100_000;

pub struct CachedStore {
    inner: Arc<dyn Store>,
    entries: Mutex<Entries>,
}

impl CachedStore {
    pub fn new(inner: Arc<dyn Store>) -> CachedStore {
        CachedStore {
            inner,
            entries: Mutex::new(Entries::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().expect("secret cache lock")
    }

    #[cfg(test)]
    fn generation(&self) -> u64 {
        self.lock().generation
    }

    fn remember(&self, since: u64, secret: &Secret) {
        let mut e = self.lock();
        if e.generation != since {
            return;
        }
        if e.by_arn.len() >= MAX_ENTRIES {
            e.by_arn.clear();
            e.arn_by_name.clear();
        }
        let r = &secret.record;
        e.arn_by_name
            .insert((r.account_id.clone(), r.name.clone()), r.arn.clone());
        e.by_arn.insert(r.arn.clone(), Arc::new(secret.clone()));
    }

    fn forget(&self, arns: &[&str]) {
        let mut e = self.lock();
        e.generation += 1;
        for arn in arns {
            e.by_arn.remove(*arn);
        }
    }
}

fn changed_arns(changes: &[SecretChange]) -> Vec<String> {
    changes
        .iter()
        .map(|c| match c {
            SecretChange::Insert { secret, .. } => secret.arn.clone(),
            SecretChange::Update { secret, .. } => secret.arn.clone(),
            SecretChange::Delete { arn, .. } => arn.clone(),
        })
        .collect()
}

#[async_trait]
impl Store for CachedStore {
    async fn load_secret_by_name(&self, account_id: &str, name: &str) -> Result<Option<Secret>> {
        let since = {
            let e = self.lock();
            let hit = e
                .arn_by_name
                .get(&(account_id.to_string(), name.to_string()))
                .and_then(|arn| e.by_arn.get(arn));
            if let Some(s) = hit {
                return Ok(Some(Secret::clone(s)));
            }
            e.generation
        };
        let found = self.inner.load_secret_by_name(account_id, name).await?;
        if let Some(s) = &found {
            self.remember(since, s);
        }
        Ok(found)
    }

    async fn load_secret_by_arn(&self, arn: &str) -> Result<Option<Secret>> {
        let since = {
            let e = self.lock();
            if let Some(s) = e.by_arn.get(arn) {
                return Ok(Some(Secret::clone(s)));
            }
            e.generation
        };
        let found = self.inner.load_secret_by_arn(arn).await?;
        if let Some(s) = &found {
            self.remember(since, s);
        }
        Ok(found)
    }

    async fn list_secrets(&self, account_id: &str) -> Result<Vec<Secret>> {
        self.inner.list_secrets(account_id).await
    }

    async fn commit_with(
        &self,
        changes: Vec<SecretChange>,
        outbox: Vec<OutboxEntry>,
    ) -> Result<()> {
        let arns = changed_arns(&changes);
        let result = self.inner.commit_with(changes, outbox).await;
        // Forget even on failure: the outcome of a failed commit is not known for sure.
        self.forget(&arns.iter().map(String::as_str).collect::<Vec<_>>());
        result
    }

    async fn commit_and_finish(
        &self,
        changes: Vec<SecretChange>,
        finish: &[(&str, &str, &str, i64)],
    ) -> Result<()> {
        let arns = changed_arns(&changes);
        let result = self.inner.commit_and_finish(changes, finish).await;
        self.forget(&arns.iter().map(String::as_str).collect::<Vec<_>>());
        result
    }

    async fn record_access(&self, arn: &str, version_id: &str, day: i64) -> Result<()> {
        let result = self.inner.record_access(arn, version_id, day).await;
        self.forget(&[arn]);
        result
    }

    async fn secrets_due_for_purge(&self, now_ms: i64) -> Result<Vec<String>> {
        self.inner.secrets_due_for_purge(now_ms).await
    }

    async fn load_kms_key(&self, key_arn: &str) -> Result<Option<KmsKeyRecord>> {
        self.inner.load_kms_key(key_arn).await
    }

    async fn load_kms_alias(
        &self,
        account_id: &str,
        alias_name: &str,
    ) -> Result<Option<KmsAliasRecord>> {
        self.inner.load_kms_alias(account_id, alias_name).await
    }

    async fn create_kms_key(&self, key: KmsKeyRecord, alias: Option<KmsAliasRecord>) -> Result<()> {
        self.inner.create_kms_key(key, alias).await
    }

    async fn list_kms_keys(&self, account_id: Option<&str>) -> Result<Vec<KmsKeyRecord>> {
        self.inner.list_kms_keys(account_id).await
    }

    async fn list_kms_aliases(&self, account_id: &str) -> Result<Vec<KmsAliasRecord>> {
        self.inner.list_kms_aliases(account_id).await
    }

    async fn commit_kms_with(&self, change: KmsChange, outbox: Vec<OutboxEntry>) -> Result<()> {
        self.inner.commit_kms_with(change, outbox).await
    }

    async fn claim_outbox(
        &self,
        now_ms: i64,
        owner: &str,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<OutboxRow>> {
        self.inner
            .claim_outbox(now_ms, owner, lease_ms, limit)
            .await
    }

    async fn finish_outbox(
        &self,
        secret_arn: &str,
        dest_region: &str,
        kind: &str,
        up_to_id: i64,
    ) -> Result<()> {
        self.inner
            .finish_outbox(secret_arn, dest_region, kind, up_to_id)
            .await
    }

    async fn retry_outbox(
        &self,
        id: i64,
        attempts: i64,
        next_attempt_ms: i64,
        first_failure_ms: Option<i64>,
    ) -> Result<()> {
        self.inner
            .retry_outbox(id, attempts, next_attempt_ms, first_failure_ms)
            .await
    }

    async fn outbox_depth(&self) -> Result<Vec<(String, i64)>> {
        self.inner.outbox_depth().await
    }

    async fn close(&self) {
        self.inner.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SecretRecord, SqliteStore};

    fn record(name: &str, row_version: i64, description: &str) -> SecretRecord {
        SecretRecord {
            arn: format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}-abcdef"),
            account_id: "123456789012".into(),
            name: name.into(),
            description: Some(description.into()),
            kms_key_id: None,
            tags: None,
            resource_policy: None,
            created_ms: 1,
            last_changed_ms: 1,
            last_accessed_day: None,
            deleted_ms: None,
            purge_at_ms: None,
            rotation: None,
            replication: None,
            row_version,
        }
    }

    #[tokio::test]
    async fn reads_see_every_committed_change() {
        let dir = tempfile::tempdir().unwrap();
        let inner: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("r.db")).await.unwrap());
        let store = CachedStore::new(inner);
        let r = record("a", 1, "one");
        store
            .commit(SecretChange::Insert {
                secret: r.clone(),
                versions: vec![],
            })
            .await
            .unwrap();
        let first = store
            .load_secret_by_name("123456789012", "a")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.record.description.as_deref(), Some("one"));
        let mut r2 = record("a", 2, "two");
        r2.arn = r.arn.clone();
        store
            .commit(SecretChange::Update {
                secret: r2,
                expected_row_version: 1,
                upsert_versions: vec![],
                delete_versions: vec![],
            })
            .await
            .unwrap();
        let second = store.load_secret_by_arn(&r.arn).await.unwrap().unwrap();
        assert_eq!(second.record.description.as_deref(), Some("two"));
        let by_name = store
            .load_secret_by_name("123456789012", "a")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(by_name.record.row_version, 2);
        store
            .commit(SecretChange::Delete {
                arn: r.arn.clone(),
                expected_row_version: 2,
            })
            .await
            .unwrap();
        assert!(
            store
                .load_secret_by_name("123456789012", "a")
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_read_that_raced_a_write_is_not_cached() {
        let dir = tempfile::tempdir().unwrap();
        let inner: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("r.db")).await.unwrap());
        let store = CachedStore::new(inner);
        let r = record("b", 1, "old");
        store
            .commit(SecretChange::Insert {
                secret: r.clone(),
                versions: vec![],
            })
            .await
            .unwrap();
        let stale = store
            .inner
            .load_secret_by_arn(&r.arn)
            .await
            .unwrap()
            .unwrap();
        let since = store.generation();
        store.forget(&[&r.arn]); // a write lands between the read and the insert
        store.remember(since, &stale);
        assert!(store.lock().by_arn.is_empty());
    }
}
