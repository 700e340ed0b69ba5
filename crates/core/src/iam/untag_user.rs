//! UntagUser: removes the tags named from a user (keys without regard to case).

use super::{Iam, Operation, required_name};
use crate::query::{Params, QueryInput, Result};
use crate::user_tags as tags;

pub struct Input {
    pub user_name: String,
    pub tag_keys: Vec<String>,
}

impl QueryInput for Input {
    fn parse(params: &Params) -> Result<Input> {
        Ok(Input {
            user_name: required_name(params, "UserName", "userName", 128)?,
            tag_keys: tags::tag_keys_param(params)?,
        })
    }
}

pub async fn run(iam: &Iam<'_>, input: Input) -> Result<()> {
    let user = iam
        .authorized_user(Operation::UntagUser, &input.user_name)
        .await?;
    iam.change_tags(&user, |old| Ok(tags::without(old, &input.tag_keys)))
        .await
}
