//! CreateAccessKey: a new key of the user named (or the caller), within AWS's quota of two.

use coffer_store::AccessKeyRecord;
use zeroize::Zeroizing;

use super::{Iam, Operation, UserOrCaller, iso_date};
use crate::principals::{new_access_key_id, new_secret_access_key};
use crate::query::{Node, QueryError, QueryOutput, Result};

/// AWS's quota of access keys per user.
const ACCESS_KEYS_PER_USER: usize = 2;

pub type Input = UserOrCaller;

pub struct Output {
    pub user_name: String,
    pub access_key_id: String,
    /// The only time the secret leaves Coffer.
    pub secret_access_key: Zeroizing<String>,
    pub created_ms: i64,
}

impl QueryOutput for Output {
    fn result(self) -> Option<Vec<Node>> {
        Some(vec![Node::Element(
            "AccessKey",
            vec![
                Node::text("UserName", self.user_name),
                Node::text("AccessKeyId", self.access_key_id),
                Node::text("Status", "Active"),
                Node::text("SecretAccessKey", self.secret_access_key.as_str()),
                Node::text("CreateDate", iso_date(self.created_ms)),
            ],
        )])
    }
}

pub async fn run(iam: &Iam<'_>, input: Input) -> Result<Output> {
    let name = iam.target_name(input.user_name);
    let user = iam
        .authorized_user(Operation::CreateAccessKey, &name)
        .await?;
    let access_key_id = new_access_key_id();
    let secret = new_secret_access_key();
    let record = AccessKeyRecord {
        access_key_id: access_key_id.clone(),
        user_arn: user.user_arn.clone(),
        account_id: user.account_id.clone(),
        wrapped_secret: iam.principals.seal(&access_key_id, &secret),
        status: "Active".into(),
        created_ms: chrono::Utc::now().timestamp_millis(),
    };
    // The quota check and the insert are one atomic step in the store: concurrent calls
    // never give a user a third key.
    if !iam
        .principals
        .iam
        .create_access_key_within(record.clone(), ACCESS_KEYS_PER_USER as i64)
        .await
        .map_err(QueryError::internal)?
    {
        return Err(QueryError::conflict(
            "LimitExceeded",
            format!("Cannot exceed quota for AccessKeysPerUser: {ACCESS_KEYS_PER_USER}"),
        ));
    }
    // Into this node's cache now, so the web console (which reads only the cache) takes it.
    iam.credentials.load(&access_key_id).await;
    Ok(Output {
        user_name: user.user_name,
        access_key_id,
        secret_access_key: secret,
        created_ms: record.created_ms,
    })
}
