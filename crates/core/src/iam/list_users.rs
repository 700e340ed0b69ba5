//! ListUsers: the users of the caller's account, by name without regard to case.

use coffer_store::UserRecord;

use super::{Iam, Listed, Operation, Paging, user_members};
use crate::query::{Node, Params, QueryError, QueryInput, Result};

pub struct Input {
    pub path_prefix: String,
    pub paging: Paging,
}

impl QueryInput for Input {
    fn parse(params: &Params) -> Result<Input> {
        Ok(Input {
            path_prefix: params.get("PathPrefix").unwrap_or("/").to_string(),
            paging: Paging::parse(params)?,
        })
    }
}

pub async fn run(iam: &Iam<'_>, input: Input) -> Result<Listed> {
    iam.authorize(Operation::ListUsers, &iam.user_arn(""))?;
    let prefix = input.path_prefix.as_str();
    let users: Vec<UserRecord> = iam
        .principals
        .iam
        .users()
        .await
        .map_err(QueryError::internal)?
        .into_iter()
        .filter(|u| u.account_id == iam.caller.account_id && "/".starts_with(prefix))
        .collect();
    let (page, next) = input
        .paging
        .page(users, |u| u.user_name.to_ascii_lowercase());
    Ok(Listed {
        list: "Users",
        members: page
            .iter()
            .map(|user| Node::Element("member", user_members(user)))
            .collect(),
        next,
    })
}
