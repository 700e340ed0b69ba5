//! CreateUser: a user of the caller's account, with tags if the request has some.

use coffer_store::{StoreError, UserRecord};

use super::{Iam, Operation, UserOutput, required_name};
use crate::principals::new_user_id;
use crate::query::{Params, QueryError, QueryInput, Result};
use crate::user_tags::{self as tags, Tag};

pub struct Input {
    pub user_name: String,
    pub tags: Vec<Tag>,
}

impl QueryInput for Input {
    fn parse(params: &Params) -> Result<Input> {
        let user_name = required_name(params, "UserName", "userName", 64)?;
        if let Some(path) = params.get("Path")
            && path != "/"
        {
            return Err(QueryError::constraint(
                path,
                "path",
                "Coffer supports only the path /",
            ));
        }
        let tags = tags::merged(Vec::new(), tags::tags_param(params)?)?;
        Ok(Input { user_name, tags })
    }
}

fn already_exists(name: &str) -> QueryError {
    QueryError::conflict(
        "EntityAlreadyExists",
        format!("User with name {name} already exists."),
    )
}

pub async fn run(iam: &Iam<'_>, input: Input) -> Result<UserOutput> {
    let name = &input.user_name;
    let tags = input.tags;
    iam.authorize(Operation::CreateUser, &iam.user_arn(name))?;
    // [D CreateUser] tagging while creating also needs iam:TagUser.
    if !tags.is_empty() {
        iam.authorize(Operation::TagUser, &iam.user_arn(name))?;
    }
    if iam.find_user(name).await?.is_some() {
        return Err(already_exists(name));
    }
    let user = UserRecord {
        user_arn: iam.user_arn(name),
        account_id: iam.caller.account_id.clone(),
        user_name: name.to_string(),
        user_id: new_user_id(),
        is_admin: false,
        created_ms: chrono::Utc::now().timestamp_millis(),
    };
    let store = &iam.principals.iam;
    match store.create_user(user.clone()).await {
        Ok(()) => {}
        Err(StoreError::Conflict) => return Err(already_exists(name)),
        Err(e) => return Err(QueryError::internal(e)),
    }
    if !tags.is_empty()
        && let Err(e) = store
            .replace_user_tags(&user.user_arn, "[]", &tags::to_json(&tags))
            .await
    {
        // Not half-created: without its tags the user goes again.
        let _ = store.delete_user(&user.user_arn).await;
        return Err(QueryError::internal(e));
    }
    Ok(UserOutput { user, tags })
}
