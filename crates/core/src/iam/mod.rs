//! The IAM subset Coffer serves (Query protocol, signing name `iam`, version 2010-05-08): one
//! file per operation, named after it (`create_user.rs`, ...), each with its `Input` (read from
//! the request's members), `Output` and `run`; [`dispatch`] maps the operation to it. User tags
//! are `crate::user_tags`; the api crate decodes the form, writes the XML and renders errors.
//!
//! IAM is global: requests are accepted whatever Region they are signed for. Every IAM
//! operation acts on the caller's own account and is authorised with `coffer_iam::evaluate`
//! (the operation's action from the table, resource `arn:aws:iam::ACCOUNT:user/NAME`;
//! `...:user/` for ListUsers). Order: input validation, then authorisation, then existence (a
//! caller without permission learns nothing).
//!
//! Coffer's choices where AWS has more: user paths are `/` only (a `Path` other than `/` is
//! refused with ValidationError, so no ARN ever differs from what the caller expects);
//! no login profiles, groups, roles or managed policies.

use coffer_iam::{Decision, Request};
use coffer_store::{AccessKeyRecord, UserPolicyRecord, UserRecord};

use crate::Caller;
use crate::operation::operations;
use crate::principals::Principals;
use crate::query::{Node, Params, QueryError, QueryInput, QueryOutput, Result};
use crate::user_tags::{self as tags, Tag};

pub mod create_access_key;
pub mod create_user;
pub mod delete_access_key;
pub mod delete_user;
pub mod delete_user_policy;
pub mod get_user;
pub mod get_user_policy;
pub mod list_access_keys;
pub mod list_user_policies;
pub mod list_user_tags;
pub mod list_users;
pub mod put_user_policy;
pub mod tag_user;
pub mod untag_user;
pub mod update_access_key;

operations! {
    /// Every IAM operation Coffer serves, each `iam/<snake_case_name>.rs`.
    pub enum Operation in "iam", "iam.amazonaws.com" {
        CreateUser: change,
        GetUser: read,
        DeleteUser: change,
        ListUsers: read,
        CreateAccessKey: change,
        ListAccessKeys: read,
        UpdateAccessKey: change,
        DeleteAccessKey: change,
        PutUserPolicy: change,
        GetUserPolicy: read,
        DeleteUserPolicy: change,
        ListUserPolicies: read,
        TagUser: change,
        UntagUser: change,
        ListUserTags: read,
    }
}

/// The node's cache of live credentials, which IAM operations keep in step with what they
/// change (implemented by `coffer_api::Deployment`).
#[async_trait::async_trait]
pub trait CredentialCache: Sync {
    /// Drops cached credentials (reloaded on their next request): every key of `user_arn`,
    /// or only `access_key_id`.
    fn forget(&self, user_arn: &str, access_key_id: Option<&str>);
    /// Loads a new key into the cache now (the web console reads only the cache).
    async fn load(&self, access_key_id: &str);
}

/// What every IAM operation runs with: the IAM store, the caller, the node's credentials.
pub struct Iam<'a> {
    pub principals: &'a Principals,
    pub caller: &'a Caller,
    pub credentials: &'a dyn CredentialCache,
}

/// Runs IAM `operation` with the request's members; `None` for an answer without a result
/// element.
pub async fn dispatch(
    iam: &Iam<'_>,
    operation: Operation,
    params: &Params,
) -> Result<Option<Vec<Node>>> {
    match operation {
        Operation::CreateUser => call(create_user::run, iam, params).await,
        Operation::GetUser => call(get_user::run, iam, params).await,
        Operation::DeleteUser => call(delete_user::run, iam, params).await,
        Operation::ListUsers => call(list_users::run, iam, params).await,
        Operation::CreateAccessKey => call(create_access_key::run, iam, params).await,
        Operation::ListAccessKeys => call(list_access_keys::run, iam, params).await,
        Operation::UpdateAccessKey => call(update_access_key::run, iam, params).await,
        Operation::DeleteAccessKey => call(delete_access_key::run, iam, params).await,
        Operation::PutUserPolicy => call(put_user_policy::run, iam, params).await,
        Operation::GetUserPolicy => call(get_user_policy::run, iam, params).await,
        Operation::DeleteUserPolicy => call(delete_user_policy::run, iam, params).await,
        Operation::ListUserPolicies => call(list_user_policies::run, iam, params).await,
        Operation::TagUser => call(tag_user::run, iam, params).await,
        Operation::UntagUser => call(untag_user::run, iam, params).await,
        Operation::ListUserTags => call(list_user_tags::run, iam, params).await,
    }
}

/// Reads the input, runs the operation, gives its result elements (also used by STS).
pub(crate) async fn call<C, I, O, F>(f: F, ctx: &C, params: &Params) -> Result<Option<Vec<Node>>>
where
    C: ?Sized,
    I: QueryInput,
    O: QueryOutput,
    F: AsyncFnOnce(&C, I) -> Result<O>,
{
    let input = I::parse(params)?;
    Ok(f(ctx, input).await?.result())
}

/// User and policy names: `[\w+=,.@-]+`, 1 to `max` characters.
pub(crate) fn check_name(value: &str, member: &str, max: usize) -> Result<()> {
    if value.is_empty() {
        return Err(QueryError::constraint(
            value,
            member,
            "Member must have length greater than or equal to 1",
        ));
    }
    if value.chars().count() > max {
        return Err(QueryError::constraint(
            value,
            member,
            &format!("Member must have length less than or equal to {max}"),
        ));
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
    {
        return Err(QueryError::constraint(
            value,
            member,
            "Member must satisfy regular expression pattern: [\\w+=,.@-]+",
        ));
    }
    Ok(())
}

/// A required name member, checked by [`check_name`].
pub(crate) fn required_name(
    params: &Params,
    name: &str,
    member: &str,
    max: usize,
) -> Result<String> {
    let value = params.required(name, member)?;
    check_name(value, member, max)?;
    Ok(value.to_string())
}

/// `UserName` of the operations that default to the caller (GetUser, the access key
/// operations): checked when present.
pub(crate) fn optional_user_name(params: &Params) -> Result<Option<String>> {
    params
        .get("UserName")
        .map(|name| {
            check_name(name, "userName", 64)?;
            Ok(name.to_string())
        })
        .transpose()
}

/// A list operation's `MaxItems` (1 to 1000, default 100) and `Marker`.
pub struct Paging {
    pub max_items: usize,
    pub marker: Option<String>,
}

impl Paging {
    pub fn parse(params: &Params) -> Result<Paging> {
        let max_items = match params.get("MaxItems") {
            None => 100,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=1000).contains(&n) => n,
                _ => {
                    return Err(QueryError::constraint(
                        v,
                        "maxItems",
                        "Member must have value between 1 and 1000",
                    ));
                }
            },
        };
        Ok(Paging {
            max_items,
            marker: params.get("Marker").map(str::to_string),
        })
    }

    /// One page after `Marker` (the sort key of the first item of the page) and the `Marker`
    /// of the next page, if any.
    pub(crate) fn page<T>(
        &self,
        mut items: Vec<T>,
        key: impl Fn(&T) -> String,
    ) -> (Vec<T>, Option<String>) {
        items.sort_by_key(|i| key(i));
        let start = match &self.marker {
            None => 0,
            Some(m) => {
                let m = m.to_ascii_lowercase();
                items
                    .iter()
                    .position(|i| key(i) >= m)
                    .unwrap_or(items.len())
            }
        };
        let mut rest: Vec<T> = items.into_iter().skip(start).collect();
        let next = if rest.len() > self.max_items {
            Some(key(&rest[self.max_items]))
        } else {
            None
        };
        rest.truncate(self.max_items);
        (rest, next)
    }
}

/// A list operation's answer: `<list>` holding `members`, then `IsTruncated` and, when there
/// is a next page, its `Marker`.
pub struct Listed {
    pub list: &'static str,
    pub members: Vec<Node>,
    pub next: Option<String>,
}

impl QueryOutput for Listed {
    fn result(self) -> Option<Vec<Node>> {
        let mut nodes = vec![Node::Element(self.list, self.members)];
        match self.next {
            Some(marker) => {
                nodes.push(Node::text("IsTruncated", "true"));
                nodes.push(Node::text("Marker", marker));
            }
            None => nodes.push(Node::text("IsTruncated", "false")),
        }
        Some(nodes)
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ`, as IAM writes dates.
pub(crate) fn iso_date(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A user's members (`Path` ... `CreateDate`), as every answer naming a user writes them.
pub(crate) fn user_members(user: &UserRecord) -> Vec<Node> {
    vec![
        Node::text("Path", "/"),
        Node::text("UserName", &user.user_name),
        Node::text("UserId", &user.user_id),
        Node::text("Arn", &user.user_arn),
        Node::text("CreateDate", iso_date(user.created_ms)),
    ]
}

/// CreateUser's and GetUser's `<User>`; its `<Tags>` absent when the user has none (as AWS).
pub struct UserOutput {
    pub user: UserRecord,
    pub tags: Vec<Tag>,
}

impl QueryOutput for UserOutput {
    fn result(self) -> Option<Vec<Node>> {
        let mut members = user_members(&self.user);
        if !self.tags.is_empty() {
            members.push(Node::Element("Tags", tags::members(&self.tags)));
        }
        Some(vec![Node::Element("User", members)])
    }
}

pub(crate) fn no_such_user(name: &str) -> QueryError {
    QueryError::no_such_entity(format!("The user with name {name} cannot be found."))
}

impl Iam<'_> {
    pub(crate) fn user_arn(&self, name: &str) -> String {
        format!("arn:aws:iam::{}:user/{name}", self.caller.account_id)
    }

    /// The operation's action on `resource` by the caller, with the global condition keys.
    pub(crate) fn authorize(&self, operation: Operation, resource: &str) -> Result<()> {
        use crate::operation::Operation as _;
        let caller = self.caller;
        let context = coffer_iam::context_read_by(caller.policies.iter(), |context| {
            // IAM is global: AWS serves it from us-east-1, which is its aws:RequestedRegion.
            crate::authorize::global_context_at(
                "us-east-1",
                chrono::Utc::now().timestamp_millis(),
                caller,
                context,
            );
        });
        let principal = caller.principal();
        let request = Request {
            principal: &principal,
            action: operation.action(),
            resource,
            resource_account: &caller.account_id,
            context: &context,
        };
        match coffer_iam::evaluate(&request, &caller.policies, None) {
            Decision::Allow => Ok(()),
            Decision::Deny(denial) => Err(QueryError::new(
                403,
                "AccessDenied",
                coffer_iam::access_denied_message(&request, denial),
            )),
        }
    }

    /// The user named, or the caller's own name when none was (GetUser, the access key
    /// operations).
    pub(crate) fn target_name(&self, name: Option<String>) -> String {
        name.unwrap_or_else(|| {
            let arn = &self.caller.principal_arn;
            arn.rsplit('/').next().unwrap_or(arn).to_string()
        })
    }

    /// The user of the caller's account with that name. IAM user names are unique without
    /// regard to case, and found that way.
    pub(crate) async fn find_user(&self, name: &str) -> Result<Option<UserRecord>> {
        let iam = &self.principals.iam;
        if let Some(user) = iam
            .user(&self.user_arn(name))
            .await
            .map_err(QueryError::internal)?
        {
            return Ok(Some(user));
        }
        Ok(iam
            .users()
            .await
            .map_err(QueryError::internal)?
            .into_iter()
            .find(|u| {
                u.account_id == self.caller.account_id && u.user_name.eq_ignore_ascii_case(name)
            }))
    }

    pub(crate) async fn existing_user(&self, name: &str) -> Result<UserRecord> {
        self.find_user(name)
            .await?
            .ok_or_else(|| no_such_user(name))
    }

    /// The operation's action on the user named `name`, then the user (NoSuchEntity if none).
    pub(crate) async fn authorized_user(
        &self,
        operation: Operation,
        name: &str,
    ) -> Result<UserRecord> {
        self.authorize(operation, &self.user_arn(name))?;
        self.existing_user(name).await
    }

    pub(crate) async fn user_tags(&self, user: &UserRecord) -> Result<Vec<Tag>> {
        let stored = self
            .principals
            .iam
            .user_tags(&user.user_arn)
            .await
            .map_err(QueryError::internal)?
            .ok_or_else(|| no_such_user(&user.user_name))?;
        Ok(tags::parse(&stored))
    }

    /// Applies `change` to the user's tags, again if another request changed them meanwhile.
    pub(crate) async fn change_tags(
        &self,
        user: &UserRecord,
        change: impl Fn(Vec<Tag>) -> Result<Vec<Tag>>,
    ) -> Result<()> {
        let iam = &self.principals.iam;
        for _ in 0..8 {
            let stored = iam
                .user_tags(&user.user_arn)
                .await
                .map_err(QueryError::internal)?
                .ok_or_else(|| no_such_user(&user.user_name))?;
            let new = tags::to_json(&change(tags::parse(&stored))?);
            if iam
                .replace_user_tags(&user.user_arn, &stored, &new)
                .await
                .map_err(QueryError::internal)?
            {
                // The user's requests see their new aws:PrincipalTag values at once.
                self.credentials.forget(&user.user_arn, None);
                return Ok(());
            }
        }
        Err(QueryError::conflict(
            "ConcurrentModification",
            "The user's tags were being changed by other requests; try again.",
        ))
    }

    /// The inline policies of `user`.
    pub(crate) async fn user_policies(&self, user: &UserRecord) -> Result<Vec<UserPolicyRecord>> {
        self.principals
            .iam
            .user_policies(&user.user_arn)
            .await
            .map_err(QueryError::internal)
    }

    /// The operation's action on the user named (or the caller), the user, then its key
    /// `access_key_id` (NoSuchEntity if either is missing).
    pub(crate) async fn user_key(
        &self,
        operation: Operation,
        user_name: Option<String>,
        access_key_id: &str,
    ) -> Result<(UserRecord, AccessKeyRecord)> {
        let name = self.target_name(user_name);
        let user = self.authorized_user(operation, &name).await?;
        let key = self.existing_key(&user, access_key_id).await?;
        Ok((user, key))
    }

    /// The key `access_key_id` of `user`, or NoSuchEntity.
    async fn existing_key(
        &self,
        user: &UserRecord,
        access_key_id: &str,
    ) -> Result<AccessKeyRecord> {
        let id = access_key_id;
        if !(16..=128).contains(&id.len()) {
            return Err(QueryError::constraint(
                id,
                "accessKeyId",
                "Member must have length between 16 and 128",
            ));
        }
        match self
            .principals
            .iam
            .access_key(id)
            .await
            .map_err(QueryError::internal)?
        {
            Some(key) if key.user_arn == user.user_arn => Ok(key),
            _ => Err(QueryError::no_such_entity(format!(
                "The Access Key with id {id} cannot be found."
            ))),
        }
    }
}

/// The input of the operations on a user that default to the caller (GetUser,
/// CreateAccessKey): `UserName`, checked when present.
pub struct UserOrCaller {
    /// The caller when absent.
    pub user_name: Option<String>,
}

impl QueryInput for UserOrCaller {
    fn parse(params: &Params) -> Result<UserOrCaller> {
        Ok(UserOrCaller {
            user_name: optional_user_name(params)?,
        })
    }
}

/// The input of the lists of one user's things (ListUserPolicies, ListUserTags).
pub struct UserPage {
    pub user_name: String,
    pub paging: Paging,
}

impl QueryInput for UserPage {
    fn parse(params: &Params) -> Result<UserPage> {
        Ok(UserPage {
            user_name: required_name(params, "UserName", "userName", 128)?,
            paging: Paging::parse(params)?,
        })
    }
}

/// The user and policy names of the inline policy operations (the whole input of
/// GetUserPolicy and DeleteUserPolicy).
pub struct PolicyName {
    pub user_name: String,
    pub policy_name: String,
}

impl QueryInput for PolicyName {
    fn parse(params: &Params) -> Result<PolicyName> {
        Ok(PolicyName {
            user_name: required_name(params, "UserName", "userName", 128)?,
            policy_name: required_name(params, "PolicyName", "policyName", 128)?,
        })
    }
}

pub(crate) fn no_such_policy(name: &str) -> QueryError {
    QueryError::no_such_entity(format!("The user policy with name {name} cannot be found."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_iams_pattern_and_length() {
        assert!(check_name("a-b_c+d=e,f.g@h", "userName", 64).is_ok());
        assert!(check_name(&"a".repeat(64), "userName", 64).is_ok());
        let long = check_name(&"a".repeat(65), "userName", 64).unwrap_err();
        assert_eq!(long.code, "ValidationError");
        assert!(
            long.message
                .ends_with("Member must have length less than or equal to 64")
        );
        for bad in ["a b", "a/b", "é", "a:b"] {
            let e = check_name(bad, "userName", 64).unwrap_err();
            assert!(e.message.contains("regular expression pattern"), "{bad}");
        }
        assert!(check_name("", "policyName", 128).is_err());
    }
}
