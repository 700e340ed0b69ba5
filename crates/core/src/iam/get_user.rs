//! GetUser: the user named, or the caller, with its tags.

use super::{Iam, Operation, UserOrCaller, UserOutput};
use crate::query::Result;

pub type Input = UserOrCaller;

pub async fn run(iam: &Iam<'_>, input: Input) -> Result<UserOutput> {
    let name = iam.target_name(input.user_name);
    let user = iam.authorized_user(Operation::GetUser, &name).await?;
    let tags = iam.user_tags(&user).await?;
    Ok(UserOutput { user, tags })
}
