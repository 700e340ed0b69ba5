//! Row -> record mapping of the IAM store, shared by both backends.

use crate::rows::RecordRow;
use crate::{AccessKeyRecord, Result, StoreError, UserPolicyRecord, UserRecord};

pub(crate) fn user_from_row<R: RecordRow>(row: &R) -> Result<UserRecord> {
    Ok(UserRecord {
        user_arn: row.text("user_arn")?,
        account_id: row.text("account_id")?,
        user_name: row.text("user_name")?,
        user_id: row.text("user_id")?,
        is_admin: row.int("is_admin")? != 0,
        created_ms: row.int("created_ms")?,
    })
}

pub(crate) fn access_key_from_row<R: RecordRow>(row: &R) -> Result<AccessKeyRecord> {
    Ok(AccessKeyRecord {
        access_key_id: row.text("access_key_id")?,
        user_arn: row.text("user_arn")?,
        account_id: row.text("account_id")?,
        wrapped_secret: row
            .opt_bytes("wrapped_secret")?
            .ok_or_else(|| StoreError::Backend("access key without its secret".into()))?,
        status: row.text("status")?,
        created_ms: row.int("created_ms")?,
    })
}

pub(crate) fn user_policy_from_row<R: RecordRow>(row: &R) -> Result<UserPolicyRecord> {
    Ok(UserPolicyRecord {
        user_arn: row.text("user_arn")?,
        policy_name: row.text("policy_name")?,
        document: row.text("document")?,
        updated_ms: row.int("updated_ms")?,
    })
}
