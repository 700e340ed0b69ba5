//! ListAccessKeys: the keys of the user named (or the caller), without their secrets.

use super::{Iam, Listed, Operation, Paging, iso_date, optional_user_name};
use crate::query::{Node, Params, QueryError, QueryInput, Result};

pub struct Input {
    /// The caller when absent.
    pub user_name: Option<String>,
    pub paging: Paging,
}

impl QueryInput for Input {
    fn parse(params: &Params) -> Result<Input> {
        Ok(Input {
            user_name: optional_user_name(params)?,
            paging: Paging::parse(params)?,
        })
    }
}

pub async fn run(iam: &Iam<'_>, input: Input) -> Result<Listed> {
    let name = iam.target_name(input.user_name);
    let user = iam
        .authorized_user(Operation::ListAccessKeys, &name)
        .await?;
    let keys = iam
        .principals
        .iam
        .user_access_keys(&user.user_arn)
        .await
        .map_err(QueryError::internal)?;
    let (page, next) = input
        .paging
        .page(keys, |k| k.access_key_id.to_ascii_lowercase());
    Ok(Listed {
        list: "AccessKeyMetadata",
        members: page
            .iter()
            .map(|key| {
                Node::Element(
                    "member",
                    vec![
                        Node::text("UserName", &user.user_name),
                        Node::text("AccessKeyId", &key.access_key_id),
                        Node::text("Status", &key.status),
                        Node::text("CreateDate", iso_date(key.created_ms)),
                    ],
                )
            })
            .collect(),
        next,
    })
}
