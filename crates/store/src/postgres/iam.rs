//! [`PostgresIamStore`]: the deployment's principals (accounts, users, access keys, inline
//! policies) in their own PostgreSQL schema, every call under `retrying!`.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgPool;

use super::open::{IAM_POOL, open_pool};
use super::retrying::{Exhausted, PgError, PgResult, retrying};
use crate::iam_rows::{access_key_from_row, user_from_row, user_policy_from_row};
use crate::schema::StoreKind;
use crate::writes::{
    ACCESS_KEY_DELETE, ACCESS_KEY_INSERT, ACCESS_KEY_INSERT_WITHIN, ACCESS_KEY_STATUS_UPDATE,
    ACCOUNT_INSERT, USER_DELETE, USER_INSERT, USER_POLICY_DELETE, USER_POLICY_UPSERT,
    USER_TAGS_REPLACE, bind_access_key, bind_user, bind_user_policy,
};
use crate::{AccessKeyRecord, IamStore, Result, UserPolicyRecord, UserRecord};

/// The deployment's principals in their own PostgreSQL schema (e.g. `coffer_iam`).
pub struct PostgresIamStore {
    pool: PgPool,
}

/// The accounts, oldest first.
const ACCOUNTS: &str =
    "SELECT account_id FROM accounts ORDER BY created_ms, account_id COLLATE \"C\"";

impl PostgresIamStore {
    /// Like [`PostgresStore::open`], for the IAM store.
    pub async fn open(url: &str, schema: &str) -> Result<PostgresIamStore> {
        Self::open_with(url, schema, true).await
    }

    /// Like [`PostgresStore::open_with`], for the IAM store.
    pub async fn open_with(url: &str, schema: &str, migrate: bool) -> Result<PostgresIamStore> {
        Ok(PostgresIamStore {
            pool: open_pool(url, schema, StoreKind::Iam, IAM_POOL, migrate).await?,
        })
    }

    async fn try_execute(
        &self,
        query: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> PgResult<()> {
        query.execute(&self.pool).await?;
        Ok(())
    }

    /// The user's row is locked first, so concurrent creations for one user (on any node)
    /// take turns, and each one's count sees the keys committed before it.
    async fn try_create_access_key_within(
        &self,
        key: &AccessKeyRecord,
        max_per_user: i64,
    ) -> PgResult<bool> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT 1 FROM users WHERE user_arn = $1 FOR UPDATE")
            .bind(&key.user_arn)
            .execute(&mut *tx)
            .await?;
        let done = bind_access_key!(sqlx::query(ACCESS_KEY_INSERT_WITHIN), key)
            .bind(max_per_user)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// `EXCLUSIVE` on `accounts` conflicts with itself: nodes bootstrapping at the same
    /// instant take turns, and the second sees the first's account.
    async fn try_bootstrap_account(
        &self,
        now_ms: i64,
        admin: &UserRecord,
        key: &AccessKeyRecord,
    ) -> PgResult<String> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("LOCK TABLE accounts IN EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
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
        bind_user!(sqlx::query(USER_INSERT), admin)
            .execute(&mut *tx)
            .await?;
        bind_access_key!(sqlx::query(ACCESS_KEY_INSERT), key)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(admin.account_id.clone())
    }

    async fn try_users(&self) -> PgResult<Vec<UserRecord>> {
        let rows = sqlx::query("SELECT * FROM users ORDER BY created_ms, user_arn COLLATE \"C\"")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(user_from_row).collect::<Result<_>>()?)
    }

    async fn try_access_keys(&self) -> PgResult<Vec<AccessKeyRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM access_keys ORDER BY created_ms, access_key_id COLLATE \"C\"",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(access_key_from_row)
            .collect::<Result<_>>()?)
    }
}

#[async_trait]
impl IamStore for PostgresIamStore {
    async fn accounts(&self) -> Result<Vec<String>> {
        retrying!("listing accounts", Exhausted::Backend, async {
            Ok::<_, PgError>(sqlx::query_scalar(ACCOUNTS).fetch_all(&self.pool).await?)
        })
    }

    async fn create_account(&self, account_id: &str, now_ms: i64) -> Result<()> {
        retrying!(
            "creating an account",
            Exhausted::Conflict,
            self.try_execute(sqlx::query(ACCOUNT_INSERT).bind(account_id).bind(now_ms))
        )
    }

    async fn bootstrap_account(
        &self,
        now_ms: i64,
        admin: UserRecord,
        key: AccessKeyRecord,
    ) -> Result<String> {
        retrying!(
            "creating the first account",
            Exhausted::Conflict,
            self.try_bootstrap_account(now_ms, &admin, &key)
        )
    }

    async fn create_user(&self, user: UserRecord) -> Result<()> {
        retrying!(
            "creating a user",
            Exhausted::Conflict,
            self.try_execute(bind_user!(sqlx::query(USER_INSERT), &user))
        )
    }

    async fn create_access_key(&self, key: AccessKeyRecord) -> Result<()> {
        retrying!(
            "creating an access key",
            Exhausted::Conflict,
            self.try_execute(bind_access_key!(sqlx::query(ACCESS_KEY_INSERT), &key))
        )
    }

    async fn create_access_key_within(
        &self,
        key: AccessKeyRecord,
        max_per_user: i64,
    ) -> Result<bool> {
        retrying!(
            "creating an access key",
            Exhausted::Conflict,
            self.try_create_access_key_within(&key, max_per_user)
        )
    }

    async fn users(&self) -> Result<Vec<UserRecord>> {
        retrying!("listing users", Exhausted::Backend, self.try_users())
    }

    async fn access_keys(&self) -> Result<Vec<AccessKeyRecord>> {
        retrying!(
            "listing access keys",
            Exhausted::Backend,
            self.try_access_keys()
        )
    }

    async fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKeyRecord>> {
        retrying!("loading an access key", Exhausted::Backend, async {
            let row = sqlx::query("SELECT * FROM access_keys WHERE access_key_id = $1")
                .bind(access_key_id)
                .fetch_optional(&self.pool)
                .await?;
            Ok::<_, PgError>(row.as_ref().map(access_key_from_row).transpose()?)
        })
    }

    async fn user(&self, user_arn: &str) -> Result<Option<UserRecord>> {
        retrying!("loading a user", Exhausted::Backend, async {
            let row = sqlx::query("SELECT * FROM users WHERE user_arn = $1")
                .bind(user_arn)
                .fetch_optional(&self.pool)
                .await?;
            Ok::<_, PgError>(row.as_ref().map(user_from_row).transpose()?)
        })
    }

    async fn user_access_keys(&self, user_arn: &str) -> Result<Vec<AccessKeyRecord>> {
        retrying!("listing a user's access keys", Exhausted::Backend, async {
            let rows = sqlx::query(
                "SELECT * FROM access_keys WHERE user_arn = $1 \
                 ORDER BY created_ms, access_key_id COLLATE \"C\"",
            )
            .bind(user_arn)
            .fetch_all(&self.pool)
            .await?;
            Ok::<_, PgError>(
                rows.iter()
                    .map(access_key_from_row)
                    .collect::<Result<Vec<_>>>()?,
            )
        })
    }

    async fn set_access_key_status(&self, access_key_id: &str, status: &str) -> Result<bool> {
        retrying!("updating an access key", Exhausted::Backend, async {
            let done = sqlx::query(ACCESS_KEY_STATUS_UPDATE)
                .bind(status)
                .bind(access_key_id)
                .execute(&self.pool)
                .await?;
            Ok::<_, PgError>(done.rows_affected() > 0)
        })
    }

    async fn delete_access_key(&self, access_key_id: &str) -> Result<bool> {
        retrying!("deleting an access key", Exhausted::Backend, async {
            let done = sqlx::query(ACCESS_KEY_DELETE)
                .bind(access_key_id)
                .execute(&self.pool)
                .await?;
            Ok::<_, PgError>(done.rows_affected() > 0)
        })
    }

    async fn delete_user(&self, user_arn: &str) -> Result<bool> {
        retrying!("deleting a user", Exhausted::Backend, async {
            let done = sqlx::query(USER_DELETE)
                .bind(user_arn)
                .execute(&self.pool)
                .await?;
            Ok::<_, PgError>(done.rows_affected() > 0)
        })
    }

    async fn put_user_policy(&self, policy: UserPolicyRecord) -> Result<()> {
        retrying!(
            "putting a user policy",
            Exhausted::Backend,
            self.try_execute(bind_user_policy!(sqlx::query(USER_POLICY_UPSERT), &policy))
        )
    }

    async fn delete_user_policy(&self, user_arn: &str, policy_name: &str) -> Result<bool> {
        retrying!("deleting a user policy", Exhausted::Backend, async {
            let done = sqlx::query(USER_POLICY_DELETE)
                .bind(user_arn)
                .bind(policy_name)
                .execute(&self.pool)
                .await?;
            Ok::<_, PgError>(done.rows_affected() > 0)
        })
    }

    async fn user_policies(&self, user_arn: &str) -> Result<Vec<UserPolicyRecord>> {
        retrying!("listing a user's policies", Exhausted::Backend, async {
            let rows = sqlx::query(
                "SELECT * FROM user_policies WHERE user_arn = $1 ORDER BY policy_name COLLATE \"C\"",
            )
            .bind(user_arn)
            .fetch_all(&self.pool)
            .await?;
            Ok::<_, PgError>(
                rows.iter()
                    .map(user_policy_from_row)
                    .collect::<Result<Vec<_>>>()?,
            )
        })
    }

    async fn user_tags(&self, user_arn: &str) -> Result<Option<String>> {
        retrying!("loading a user's tags", Exhausted::Backend, async {
            let row = sqlx::query("SELECT tags FROM users WHERE user_arn = $1")
                .bind(user_arn)
                .fetch_optional(&self.pool)
                .await?;
            Ok::<_, PgError>(row.map(|r| r.try_get::<String, _>("tags")).transpose()?)
        })
    }

    async fn replace_user_tags(&self, user_arn: &str, old: &str, new: &str) -> Result<bool> {
        retrying!("replacing a user's tags", Exhausted::Backend, async {
            let done = sqlx::query(USER_TAGS_REPLACE)
                .bind(new)
                .bind(user_arn)
                .bind(old)
                .execute(&self.pool)
                .await?;
            Ok::<_, PgError>(done.rows_affected() > 0)
        })
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
