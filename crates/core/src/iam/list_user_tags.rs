//! ListUserTags: a user's tags, by key without regard to case.

use super::{Iam, Listed, Operation, UserPage};
use crate::query::Result;
use crate::user_tags as tags;

pub type Input = UserPage;

pub async fn run(iam: &Iam<'_>, input: Input) -> Result<Listed> {
    let user = iam
        .authorized_user(Operation::ListUserTags, &input.user_name)
        .await?;
    let all = iam.user_tags(&user).await?;
    let (page, next) = input.paging.page(all, |t| t.key.to_lowercase());
    Ok(Listed {
        list: "Tags",
        members: page.iter().map(tags::member).collect(),
        next,
    })
}
