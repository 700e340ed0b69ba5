//! ListUserPolicies: the names of a user's inline policies.

use super::{Iam, Listed, Operation, UserPage};
use crate::query::{Node, Result};

pub type Input = UserPage;

pub async fn run(iam: &Iam<'_>, input: Input) -> Result<Listed> {
    let user = iam
        .authorized_user(Operation::ListUserPolicies, &input.user_name)
        .await?;
    let names: Vec<String> = iam
        .user_policies(&user)
        .await?
        .into_iter()
        .map(|p| p.policy_name)
        .collect();
    let (page, next) = input.paging.page(names, |n| n.to_ascii_lowercase());
    Ok(Listed {
        list: "PolicyNames",
        members: page
            .into_iter()
            .map(|name| Node::text("member", name))
            .collect(),
        next,
    })
}
