//! DeleteUser: refused while the user has access keys or inline policies, as on AWS.

use super::{Iam, Operation, required_name};
use crate::query::{Params, QueryError, QueryInput, Result};

pub struct Input {
    pub user_name: String,
}

impl QueryInput for Input {
    fn parse(params: &Params) -> Result<Input> {
        Ok(Input {
            user_name: required_name(params, "UserName", "userName", 64)?,
        })
    }
}

pub async fn run(iam: &Iam<'_>, input: Input) -> Result<()> {
    let user = iam
        .authorized_user(Operation::DeleteUser, &input.user_name)
        .await?;
    let store = &iam.principals.iam;
    let conflict = |what: &str| {
        QueryError::conflict(
            "DeleteConflict",
            format!("Cannot delete entity, must delete {what} first."),
        )
    };
    if !store
        .user_access_keys(&user.user_arn)
        .await
        .map_err(QueryError::internal)?
        .is_empty()
    {
        return Err(conflict("access keys"));
    }
    if !iam.user_policies(&user).await?.is_empty() {
        return Err(conflict("policies"));
    }
    store
        .delete_user(&user.user_arn)
        .await
        .map_err(QueryError::internal)?;
    iam.credentials.forget(&user.user_arn, None);
    Ok(())
}
