//! TagUser: adds tags to a user (a key equal without regard to case replaces the old tag).

use super::{Iam, Operation, required_name};
use crate::query::{Params, QueryError, QueryInput, Result};
use crate::user_tags::{self as tags, Tag};

pub struct Input {
    pub user_name: String,
    pub tags: Vec<Tag>,
}

impl QueryInput for Input {
    fn parse(params: &Params) -> Result<Input> {
        let user_name = required_name(params, "UserName", "userName", 128)?;
        let tags = tags::tags_param(params)?;
        if tags.is_empty() {
            return Err(QueryError::validation(
                "1 validation error detected: Value null at 'tags' failed to satisfy constraint: Member must not be null",
            ));
        }
        Ok(Input { user_name, tags })
    }
}

pub async fn run(iam: &Iam<'_>, input: Input) -> Result<()> {
    let user = iam
        .authorized_user(Operation::TagUser, &input.user_name)
        .await?;
    iam.change_tags(&user, |old| tags::merged(old, input.tags.clone()))
        .await
}
