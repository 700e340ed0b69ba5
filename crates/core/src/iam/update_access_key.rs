//! UpdateAccessKey: makes a key of the user named (or the caller) `Active` or `Inactive`.

use super::{Iam, Operation, optional_user_name};
use crate::query::{Params, QueryError, QueryInput, Result};

pub struct Input {
    /// The caller when absent.
    pub user_name: Option<String>,
    pub access_key_id: String,
    /// `Active` or `Inactive`.
    pub status: String,
}

impl QueryInput for Input {
    fn parse(params: &Params) -> Result<Input> {
        let user_name = optional_user_name(params)?;
        let status = params.required("Status", "status")?;
        if status != "Active" && status != "Inactive" {
            return Err(QueryError::constraint(
                status,
                "status",
                "Member must satisfy enum value set: [Active, Inactive]",
            ));
        }
        Ok(Input {
            user_name,
            access_key_id: params.required("AccessKeyId", "accessKeyId")?.to_string(),
            status: status.to_string(),
        })
    }
}

pub async fn run(iam: &Iam<'_>, input: Input) -> Result<()> {
    let (user, key) = iam
        .user_key(
            Operation::UpdateAccessKey,
            input.user_name,
            &input.access_key_id,
        )
        .await?;
    iam.principals
        .iam
        .set_access_key_status(&key.access_key_id, &input.status)
        .await
        .map_err(QueryError::internal)?;
    iam.credentials
        .forget(&user.user_arn, Some(&key.access_key_id));
    Ok(())
}
