//! [`SqliteIamStore`]: the deployment's principals (accounts, users, access keys, inline
//! policies) in one SQLite file, written on its one writer connection.

use std::path::Path;

use async_trait::async_trait;
use sqlx::Row;

use super::open::{Pools, open_pools};
use crate::iam_rows::{access_key_from_row, user_from_row, user_policy_from_row};
use crate::schema::StoreKind;
use crate::writes::{
    ACCESS_KEY_DELETE, ACCESS_KEY_INSERT, ACCESS_KEY_INSERT_WITHIN, ACCESS_KEY_STATUS_UPDATE,
    ACCOUNT_INSERT, USER_DELETE, USER_INSERT, USER_POLICY_DELETE, USER_POLICY_UPSERT,
    USER_TAGS_REPLACE, bind_access_key, bind_user, bind_user_policy,
};
use crate::{AccessKeyRecord, IamStore, Result, UserPolicyRecord, UserRecord};

pub struct SqliteIamStore {
    pools: Pools,
}

impl SqliteIamStore {
    pub async fn open(path: &Path) -> Result<SqliteIamStore> {
        Ok(SqliteIamStore {
            pools: open_pools(path, StoreKind::Iam).await?,
        })
    }
}

/// The accounts, oldest first.
const ACCOUNTS: &str = "SELECT account_id FROM accounts ORDER BY created_ms";

#[async_trait]
impl IamStore for SqliteIamStore {
    async fn accounts(&self) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(ACCOUNTS)
            .fetch_all(&self.pools.reader)
            .await?)
    }

    async fn create_account(&self, account_id: &str, now_ms: i64) -> Result<()> {
        sqlx::query(ACCOUNT_INSERT)
            .bind(account_id)
            .bind(now_ms)
            .execute(&self.pools.writer)
            .await?;
        Ok(())
    }

    async fn bootstrap_account(
        &self,
        now_ms: i64,
        admin: UserRecord,
        key: AccessKeyRecord,
    ) -> Result<String> {
        // The one writer connection: the look and the inserts cannot interleave with another.
        let mut tx = self.pools.writer.begin().await?;
        let first = sqlx::query_scalar::<_, String>(ACCOUNTS)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(existing) = first {
            return Ok(existing);
        }
        sqlx::query(ACCOUNT_INSERT)
            .bind(&admin.account_id)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        bind_user!(sqlx::query(USER_INSERT), &admin)
            .execute(&mut *tx)
            .await?;
        bind_access_key!(sqlx::query(ACCESS_KEY_INSERT), &key)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(admin.account_id)
    }

    async fn create_user(&self, user: UserRecord) -> Result<()> {
        bind_user!(sqlx::query(USER_INSERT), &user)
            .execute(&self.pools.writer)
            .await?;
        Ok(())
    }

    async fn create_access_key(&self, key: AccessKeyRecord) -> Result<()> {
        bind_access_key!(sqlx::query(ACCESS_KEY_INSERT), &key)
            .execute(&self.pools.writer)
            .await?;
        Ok(())
    }

    async fn create_access_key_within(
        &self,
        key: AccessKeyRecord,
        max_per_user: i64,
    ) -> Result<bool> {
        // One statement on the one writer connection: the count cannot change under it.
        let done = bind_access_key!(sqlx::query(ACCESS_KEY_INSERT_WITHIN), &key)
            .bind(max_per_user)
            .execute(&self.pools.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn users(&self) -> Result<Vec<UserRecord>> {
        let rows = sqlx::query("SELECT * FROM users ORDER BY created_ms")
            .fetch_all(&self.pools.reader)
            .await?;
        rows.iter().map(user_from_row).collect()
    }

    async fn access_keys(&self) -> Result<Vec<AccessKeyRecord>> {
        let rows = sqlx::query("SELECT * FROM access_keys ORDER BY created_ms")
            .fetch_all(&self.pools.reader)
            .await?;
        rows.iter().map(access_key_from_row).collect()
    }

    async fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKeyRecord>> {
        sqlx::query("SELECT * FROM access_keys WHERE access_key_id = $1")
            .bind(access_key_id)
            .fetch_optional(&self.pools.reader)
            .await?
            .as_ref()
            .map(access_key_from_row)
            .transpose()
    }

    async fn user(&self, user_arn: &str) -> Result<Option<UserRecord>> {
        sqlx::query("SELECT * FROM users WHERE user_arn = $1")
            .bind(user_arn)
            .fetch_optional(&self.pools.reader)
            .await?
            .as_ref()
            .map(user_from_row)
            .transpose()
    }

    async fn user_access_keys(&self, user_arn: &str) -> Result<Vec<AccessKeyRecord>> {
        sqlx::query(
            "SELECT * FROM access_keys WHERE user_arn = $1 ORDER BY created_ms, access_key_id",
        )
        .bind(user_arn)
        .fetch_all(&self.pools.reader)
        .await?
        .iter()
        .map(access_key_from_row)
        .collect()
    }

    async fn set_access_key_status(&self, access_key_id: &str, status: &str) -> Result<bool> {
        let done = sqlx::query(ACCESS_KEY_STATUS_UPDATE)
            .bind(status)
            .bind(access_key_id)
            .execute(&self.pools.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_access_key(&self, access_key_id: &str) -> Result<bool> {
        let done = sqlx::query(ACCESS_KEY_DELETE)
            .bind(access_key_id)
            .execute(&self.pools.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_user(&self, user_arn: &str) -> Result<bool> {
        let done = sqlx::query(USER_DELETE)
            .bind(user_arn)
            .execute(&self.pools.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn put_user_policy(&self, policy: UserPolicyRecord) -> Result<()> {
        bind_user_policy!(sqlx::query(USER_POLICY_UPSERT), &policy)
            .execute(&self.pools.writer)
            .await?;
        Ok(())
    }

    async fn delete_user_policy(&self, user_arn: &str, policy_name: &str) -> Result<bool> {
        let done = sqlx::query(USER_POLICY_DELETE)
            .bind(user_arn)
            .bind(policy_name)
            .execute(&self.pools.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn user_policies(&self, user_arn: &str) -> Result<Vec<UserPolicyRecord>> {
        sqlx::query("SELECT * FROM user_policies WHERE user_arn = $1 ORDER BY policy_name")
            .bind(user_arn)
            .fetch_all(&self.pools.reader)
            .await?
            .iter()
            .map(user_policy_from_row)
            .collect()
    }

    async fn user_tags(&self, user_arn: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT tags FROM users WHERE user_arn = $1")
            .bind(user_arn)
            .fetch_optional(&self.pools.reader)
            .await?;
        row.map(|r| r.try_get::<String, _>("tags").map_err(Into::into))
            .transpose()
    }

    async fn replace_user_tags(&self, user_arn: &str, old: &str, new: &str) -> Result<bool> {
        let done = sqlx::query(USER_TAGS_REPLACE)
            .bind(new)
            .bind(user_arn)
            .bind(old)
            .execute(&self.pools.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn close(&self) {
        self.pools.reader.close().await;
        self.pools.writer.close().await;
        self.pools.checkpointer.close().await;
    }
}
