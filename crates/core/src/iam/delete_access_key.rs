//! DeleteAccessKey: removes a key of the user named (or the caller).

use super::{Iam, Operation, optional_user_name};
use crate::query::{Params, QueryError, QueryInput, Result};

pub struct Input {
    /// The caller when absent.
    pub user_name: Option<String>,
    pub access_key_id: String,
}

impl QueryInput for Input {
    fn parse(params: &Params) -> Result<Input> {
        Ok(Input {
            user_name: optional_user_name(params)?,
            access_key_id: params.required("AccessKeyId", "accessKeyId")?.to_string(),
        })
    }
}

pub async fn run(iam: &Iam<'_>, input: Input) -> Result<()> {
    let (user, key) = iam
        .user_key(
            Operation::DeleteAccessKey,
            input.user_name,
            &input.access_key_id,
        )
        .await?;
    iam.principals
        .iam
        .delete_access_key(&key.access_key_id)
        .await
        .map_err(QueryError::internal)?;
    iam.credentials
        .forget(&user.user_arn, Some(&key.access_key_id));
    Ok(())
}
