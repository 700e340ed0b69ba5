//! GetUserPolicy: one inline policy of a user, its document as it was put.

use super::{Iam, Operation, PolicyName, no_such_policy};
use crate::query::{Node, QueryOutput, Result};

pub type Input = PolicyName;

pub struct Output {
    pub user_name: String,
    pub policy_name: String,
    pub policy_document: String,
}

impl QueryOutput for Output {
    fn result(self) -> Option<Vec<Node>> {
        Some(vec![
            Node::text("UserName", self.user_name),
            Node::text("PolicyName", self.policy_name),
            Node::Document("PolicyDocument", self.policy_document),
        ])
    }
}

pub async fn run(iam: &Iam<'_>, input: Input) -> Result<Output> {
    let PolicyName {
        user_name,
        policy_name,
    } = input;
    let user = iam
        .authorized_user(Operation::GetUserPolicy, &user_name)
        .await?;
    let policy = iam
        .user_policies(&user)
        .await?
        .into_iter()
        .find(|p| p.policy_name == policy_name)
        .ok_or_else(|| no_such_policy(&policy_name))?;
    Ok(Output {
        user_name: user.user_name,
        policy_name: policy.policy_name,
        policy_document: policy.document,
    })
}
