//! GetCallerIdentity: who the caller is. Needs no permission, as on AWS.

use crate::iam::Iam;
use crate::query::{Node, Params, QueryError, QueryInput, QueryOutput, Result};

/// GetCallerIdentity has no members.
pub struct Input;

impl QueryInput for Input {
    fn parse(_: &Params) -> Result<Input> {
        Ok(Input)
    }
}

pub struct Output {
    /// The user's id, or the account id for the account's root.
    pub user_id: String,
    pub account: String,
    pub arn: String,
}

impl QueryOutput for Output {
    fn result(self) -> Option<Vec<Node>> {
        Some(vec![
            Node::text("UserId", self.user_id),
            Node::text("Account", self.account),
            Node::text("Arn", self.arn),
        ])
    }
}

pub async fn run(iam: &Iam<'_>, _: Input) -> Result<Output> {
    let caller = iam.caller;
    let user_id = match iam
        .principals
        .iam
        .user(&caller.principal_arn)
        .await
        .map_err(QueryError::internal)?
    {
        Some(user) => user.user_id,
        None => caller.account_id.clone(),
    };
    Ok(Output {
        user_id,
        account: caller.account_id.clone(),
        arn: caller.principal_arn.clone(),
    })
}
