//! DeleteUserPolicy: removes one inline policy of a user.

use super::{Iam, Operation, PolicyName, no_such_policy};
use crate::query::{QueryError, Result};

pub type Input = PolicyName;

pub async fn run(iam: &Iam<'_>, input: Input) -> Result<()> {
    let PolicyName {
        user_name,
        policy_name,
    } = input;
    let user = iam
        .authorized_user(Operation::DeleteUserPolicy, &user_name)
        .await?;
    if !iam
        .principals
        .iam
        .delete_user_policy(&user.user_arn, &policy_name)
        .await
        .map_err(QueryError::internal)?
    {
        return Err(no_such_policy(&policy_name));
    }
    iam.credentials.forget(&user.user_arn, None);
    Ok(())
}
