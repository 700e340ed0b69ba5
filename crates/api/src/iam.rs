//! The IAM subset (Query protocol, signing name `iam`) and STS GetCallerIdentity (signing name
//! `sts`), served on the same `POST /` as Secrets Manager:
//!
//! CreateUser, GetUser, DeleteUser, ListUsers, CreateAccessKey, ListAccessKeys,
//! UpdateAccessKey, DeleteAccessKey, PutUserPolicy, GetUserPolicy, DeleteUserPolicy,
//! ListUserPolicies, TagUser, UntagUser, ListUserTags (`iam_tags.rs`), and GetCallerIdentity.
//!
//! IAM is global: requests are accepted whatever Region they are signed for. Every IAM
//! operation acts on the caller's own account and is authorised with `coffer_iam::evaluate`
//! (action `iam:<Operation>`, resource `arn:aws:iam::ACCOUNT:user/NAME`; `...:user/` for
//! ListUsers); GetCallerIdentity needs no permission, as on AWS. Order: input validation,
//! then authorisation, then existence (a caller without permission learns nothing).
//!
//! Coffer's choices where AWS has more: user paths are `/` only (a `Path` other than `/` is
//! refused with ValidationError, so no ARN ever differs from what the caller expects);
//! no login profiles, groups, roles or managed policies.

use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use coffer_core::Caller;
use coffer_core::iam::Operation as Iam;
use coffer_core::operation::Operation as _;
use coffer_core::sts::Operation as Sts;
use coffer_iam::{Context, Decision, Policy, Request};
use coffer_sigv4::{Authorization, SigV4Error};
use coffer_store::{AccessKeyRecord, UserPolicyRecord, UserRecord};

use crate::Deployment;
use crate::audit::Facts;
use crate::iam_tags as tags;
use crate::principals::{Principals, new_access_key_id, new_secret_access_key, new_user_id};
use crate::query::{
    IAM_NAMESPACE, Params, QueryError, STS_NAMESPACE, Xml, iso_date, success, url_encode,
};

/// AWS's quota of access keys per user.
const ACCESS_KEYS_PER_USER: usize = 2;
/// AWS's quota for the inline policies of one user: their documents together, whitespace
/// not counted.
const USER_POLICY_BYTES: usize = 2048;
const IAM_VERSION: &str = "2010-05-08";
const STS_VERSION: &str = "2011-06-15";

type Result<T> = std::result::Result<T, QueryError>;

/// Whether a request is one of the Query protocol (a form-encoded body, as the IAM and STS
/// clients send); everything else on `POST /` is AWS JSON 1.1.
pub(crate) fn is_query(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        })
}

/// Serves one Query-protocol request.
pub(crate) async fn handle(
    deployment: &Deployment,
    request_id: &str,
    parts: &Parts,
    body: &[u8],
    facts: &mut Facts,
) -> Response {
    let sts = coffer_sigv4::parse(&parts.headers).is_ok_and(|a| a.service == "sts");
    let namespace = if sts { STS_NAMESPACE } else { IAM_NAMESPACE };
    let started = std::time::Instant::now();
    let (action, result) = match serve(deployment, parts, body, facts).await {
        Ok((action, result)) => {
            let response = success(namespace, &action, result, request_id);
            (action, response)
        }
        Err((action, e)) => (action, e.into_response(namespace, request_id)),
    };
    tracing::debug!(
        request_id,
        service = if sts { "sts" } else { "iam" },
        operation = action,
        status = result.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "Request served"
    );
    result
}

/// The Query protocol's spelling of a signature failure.
fn auth_error(e: &SigV4Error) -> QueryError {
    match e {
        SigV4Error::MissingAuthenticationToken => QueryError::new(
            StatusCode::FORBIDDEN,
            "MissingAuthenticationToken",
            "Request is missing Authentication Token",
        ),
        SigV4Error::IncompleteSignature { .. } => {
            QueryError::new(StatusCode::BAD_REQUEST, "IncompleteSignature", e.message())
        }
        _ => QueryError::new(StatusCode::FORBIDDEN, "SignatureDoesNotMatch", e.message()),
    }
}

async fn serve(
    deployment: &Deployment,
    parts: &Parts,
    body: &[u8],
    facts: &mut Facts,
) -> std::result::Result<(String, Option<Xml>), (String, QueryError)> {
    let params = Params::parse(body);
    let action = params
        .as_ref()
        .and_then(|p| p.get("Action"))
        .unwrap_or_default()
        .to_string();
    let fail = |e: QueryError| (action.clone(), e);
    let auth = facts
        .take_auth(&parts.headers)
        .map_err(|e| fail(auth_error(&e)))?;
    if auth.service != "iam" && auth.service != "sts" {
        return Err(fail(auth_error(&SigV4Error::wrong_service("iam"))));
    }
    let caller = authenticate(deployment, &auth, parts, body)
        .await
        .map_err(&fail)?;
    facts.authenticated(&caller);
    let Some(params) = params else {
        return Err(fail(QueryError::new(
            StatusCode::BAD_REQUEST,
            "MalformedQueryString",
            "The request body is not valid form encoding.",
        )));
    };
    let Some(principals) = deployment.principals() else {
        return Err(fail(QueryError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "This node serves no IAM store.",
        )));
    };
    let ctx = Ctx {
        deployment,
        principals,
        caller: &caller,
        params: &params,
    };
    let result = if auth.service == "sts" {
        check_version(&params, &action, STS_VERSION).map_err(&fail)?;
        match action.parse::<Sts>() {
            Ok(Sts::GetCallerIdentity) => ctx.get_caller_identity().await,
            Err(_) => Err(invalid_action(&action, STS_VERSION)),
        }
    } else {
        check_version(&params, &action, IAM_VERSION).map_err(&fail)?;
        match action.parse::<Iam>() {
            Ok(Iam::CreateUser) => ctx.create_user().await,
            Ok(Iam::GetUser) => ctx.get_user().await,
            Ok(Iam::DeleteUser) => ctx.delete_user().await,
            Ok(Iam::ListUsers) => ctx.list_users().await,
            Ok(Iam::CreateAccessKey) => ctx.create_access_key().await,
            Ok(Iam::ListAccessKeys) => ctx.list_access_keys().await,
            Ok(Iam::UpdateAccessKey) => ctx.update_access_key().await,
            Ok(Iam::DeleteAccessKey) => ctx.delete_access_key().await,
            Ok(Iam::PutUserPolicy) => ctx.put_user_policy().await,
            Ok(Iam::GetUserPolicy) => ctx.get_user_policy().await,
            Ok(Iam::DeleteUserPolicy) => ctx.delete_user_policy().await,
            Ok(Iam::ListUserPolicies) => ctx.list_user_policies().await,
            Ok(Iam::TagUser) => ctx.tag_user().await,
            Ok(Iam::UntagUser) => ctx.untag_user().await,
            Ok(Iam::ListUserTags) => ctx.list_user_tags().await,
            Err(_) => Err(invalid_action(&action, IAM_VERSION)),
        }
    };
    result.map(|r| (action.clone(), r)).map_err(fail)
}

/// The caller of a request, or the error AWS gives: an unknown, inactive or deleted key is
/// InvalidClientTokenId (HTTP 403) on IAM and STS.
async fn authenticate(
    deployment: &Deployment,
    auth: &Authorization,
    parts: &Parts,
    body: &[u8],
) -> Result<Caller> {
    let Some(credential) = deployment.resolve_credential(&auth.access_key_id).await else {
        return Err(QueryError::invalid_client_token());
    };
    deployment
        .verifier
        .verify(
            auth,
            &parts.method,
            &parts.uri,
            &parts.headers,
            body,
            &credential.secret_access_key,
            chrono::Utc::now(),
        )
        .map_err(|e| auth_error(&e))?;
    // aws:SourceIp and aws:SecureTransport as for the JSON services.
    let mut caller = credential.caller.clone();
    crate::request_facts(&mut caller, parts);
    Ok(caller)
}

fn check_version(params: &Params, action: &str, version: &str) -> Result<()> {
    match params.get("Version") {
        None => Ok(()),
        Some(v) if v == version => Ok(()),
        Some(v) => Err(invalid_action(action, v)),
    }
}

fn invalid_action(action: &str, version: &str) -> QueryError {
    QueryError::new(
        StatusCode::BAD_REQUEST,
        "InvalidAction",
        format!("Could not find operation {action} for version {version}"),
    )
}

fn internal(e: impl std::fmt::Display) -> QueryError {
    tracing::error!("IAM store: {e}");
    QueryError::service_failure()
}

/// Coral's validation messages, as IAM words them.
fn constraint(value: &str, member: &str, rule: &str) -> QueryError {
    QueryError::validation(format!(
        "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {rule}"
    ))
}

fn required<'a>(params: &'a Params, name: &str, member: &str) -> Result<&'a str> {
    params.get(name).ok_or_else(|| {
        QueryError::validation(format!(
            "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
        ))
    })
}

/// User and policy names: `[\w+=,.@-]+`, 1 to `max` characters.
fn check_name(value: &str, member: &str, max: usize) -> Result<()> {
    if value.is_empty() {
        return Err(constraint(
            value,
            member,
            "Member must have length greater than or equal to 1",
        ));
    }
    if value.chars().count() > max {
        return Err(constraint(
            value,
            member,
            &format!("Member must have length less than or equal to {max}"),
        ));
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
    {
        return Err(constraint(
            value,
            member,
            "Member must satisfy regular expression pattern: [\\w+=,.@-]+",
        ));
    }
    Ok(())
}

fn write_user(xml: &mut Xml, user: &UserRecord) {
    xml.text("Path", "/")
        .text("UserName", &user.user_name)
        .text("UserId", &user.user_id)
        .text("Arn", &user.user_arn)
        .text("CreateDate", &iso_date(user.created_ms));
}

/// CreateUser's and GetUser's `<User>`; its `<Tags>` absent when the user has none (as AWS).
fn user_xml(user: &UserRecord, tags: &[tags::Tag]) -> Xml {
    let mut xml = Xml::new();
    xml.element("User", |xml| {
        write_user(xml, user);
        if !tags.is_empty() {
            xml.element("Tags", |xml| tags::write_members(xml, tags));
        }
    });
    xml
}

/// A list operation's answer: `<list>` holding what `member` writes for each item of the
/// page, then `IsTruncated` and, when there is a next page, its `Marker`.
fn listed<T>(list: &str, page: &[T], next: Option<&str>, member: impl Fn(&mut Xml, &T)) -> Xml {
    let mut xml = Xml::new();
    xml.element(list, |xml| {
        for item in page {
            member(xml, item);
        }
    });
    match next {
        Some(marker) => xml.text("IsTruncated", "true").text("Marker", marker),
        None => xml.text("IsTruncated", "false"),
    };
    xml
}

fn no_such_user(name: &str) -> QueryError {
    QueryError::no_such_entity(format!("The user with name {name} cannot be found."))
}

fn user_name_of(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

struct Ctx<'a> {
    deployment: &'a Deployment,
    principals: &'a Principals,
    caller: &'a Caller,
    params: &'a Params,
}

impl Ctx<'_> {
    fn user_arn(&self, name: &str) -> String {
        format!("arn:aws:iam::{}:user/{name}", self.caller.account_id)
    }

    /// The operation's action on `resource` by the caller, with the global condition keys.
    fn authorize(&self, operation: Iam, resource: &str) -> Result<()> {
        let caller = self.caller;
        let mut context = Context::new();
        // IAM is global: AWS serves it from us-east-1, which is its aws:RequestedRegion.
        coffer_core::authorize::global_context_at(
            "us-east-1",
            chrono::Utc::now().timestamp_millis(),
            caller,
            &mut context,
        );
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
                StatusCode::FORBIDDEN,
                "AccessDenied",
                coffer_iam::access_denied_message(&request, denial),
            )),
        }
    }

    /// `UserName`, or the caller's own name when absent (GetUser, the access key operations).
    fn target_name(&self) -> Result<String> {
        match self.params.get("UserName") {
            Some(name) => {
                check_name(name, "userName", 64)?;
                Ok(name.to_string())
            }
            None => Ok(user_name_of(&self.caller.principal_arn).to_string()),
        }
    }

    /// The user of the caller's account with that name. IAM user names are unique without
    /// regard to case, and found that way.
    async fn find_user(&self, name: &str) -> Result<Option<UserRecord>> {
        let iam = &self.principals.iam;
        if let Some(user) = iam.user(&self.user_arn(name)).await.map_err(internal)? {
            return Ok(Some(user));
        }
        Ok(iam.users().await.map_err(internal)?.into_iter().find(|u| {
            u.account_id == self.caller.account_id && u.user_name.eq_ignore_ascii_case(name)
        }))
    }

    async fn existing_user(&self, name: &str) -> Result<UserRecord> {
        self.find_user(name)
            .await?
            .ok_or_else(|| no_such_user(name))
    }

    async fn get_caller_identity(&self) -> Result<Option<Xml>> {
        let user_id = match self
            .principals
            .iam
            .user(&self.caller.principal_arn)
            .await
            .map_err(internal)?
        {
            Some(user) => user.user_id,
            None => self.caller.account_id.clone(),
        };
        let mut xml = Xml::new();
        xml.text("UserId", &user_id)
            .text("Account", &self.caller.account_id)
            .text("Arn", &self.caller.principal_arn);
        Ok(Some(xml))
    }

    async fn create_user(&self) -> Result<Option<Xml>> {
        let name = required(self.params, "UserName", "userName")?;
        check_name(name, "userName", 64)?;
        if let Some(path) = self.params.get("Path")
            && path != "/"
        {
            return Err(constraint(path, "path", "Coffer supports only the path /"));
        }
        let tags = tags::merged(Vec::new(), tags::tags_param(self.params)?)?;
        self.authorize(Iam::CreateUser, &self.user_arn(name))?;
        // [D CreateUser] tagging while creating also needs iam:TagUser.
        if !tags.is_empty() {
            self.authorize(Iam::TagUser, &self.user_arn(name))?;
        }
        if self.find_user(name).await?.is_some() {
            return Err(QueryError::new(
                StatusCode::CONFLICT,
                "EntityAlreadyExists",
                format!("User with name {name} already exists."),
            ));
        }
        let user = UserRecord {
            user_arn: self.user_arn(name),
            account_id: self.caller.account_id.clone(),
            user_name: name.to_string(),
            user_id: new_user_id(),
            is_admin: false,
            created_ms: chrono::Utc::now().timestamp_millis(),
        };
        match self.principals.iam.create_user(user.clone()).await {
            Ok(()) => {}
            Err(coffer_store::StoreError::Conflict) => {
                return Err(QueryError::new(
                    StatusCode::CONFLICT,
                    "EntityAlreadyExists",
                    format!("User with name {name} already exists."),
                ));
            }
            Err(e) => return Err(internal(e)),
        }
        if !tags.is_empty() {
            let iam = &self.principals.iam;
            if let Err(e) = iam
                .replace_user_tags(&user.user_arn, "[]", &tags::to_json(&tags))
                .await
            {
                // Not half-created: without its tags the user goes again.
                let _ = iam.delete_user(&user.user_arn).await;
                return Err(internal(e));
            }
        }
        Ok(Some(user_xml(&user, &tags)))
    }

    async fn get_user(&self) -> Result<Option<Xml>> {
        let name = self.target_name()?;
        self.authorize(Iam::GetUser, &self.user_arn(&name))?;
        let user = self.existing_user(&name).await?;
        let tags = self.user_tags(&user).await?;
        Ok(Some(user_xml(&user, &tags)))
    }

    async fn user_tags(&self, user: &UserRecord) -> Result<Vec<tags::Tag>> {
        let stored = self
            .principals
            .iam
            .user_tags(&user.user_arn)
            .await
            .map_err(internal)?
            .ok_or_else(|| no_such_user(&user.user_name))?;
        Ok(tags::parse(&stored))
    }

    /// Applies `change` to the user's tags, again if another request changed them meanwhile.
    async fn change_tags(
        &self,
        user: &UserRecord,
        change: impl Fn(Vec<tags::Tag>) -> Result<Vec<tags::Tag>>,
    ) -> Result<()> {
        let iam = &self.principals.iam;
        for _ in 0..8 {
            let stored = iam
                .user_tags(&user.user_arn)
                .await
                .map_err(internal)?
                .ok_or_else(|| no_such_user(&user.user_name))?;
            let new = tags::to_json(&change(tags::parse(&stored))?);
            if iam
                .replace_user_tags(&user.user_arn, &stored, &new)
                .await
                .map_err(internal)?
            {
                // The user's requests see their new aws:PrincipalTag values at once.
                self.deployment.forget_credentials(&user.user_arn, None);
                return Ok(());
            }
        }
        Err(QueryError::new(
            StatusCode::CONFLICT,
            "ConcurrentModification",
            "The user's tags were being changed by other requests; try again.",
        ))
    }

    /// The tag operations' `UserName` (required, up to 128 characters).
    fn tagged_user_name(&self) -> Result<&str> {
        let name = required(self.params, "UserName", "userName")?;
        check_name(name, "userName", 128)?;
        Ok(name)
    }

    /// The operation's action on the user named `name`, then the user (NoSuchEntity if none).
    async fn authorized_user(&self, operation: Iam, name: &str) -> Result<UserRecord> {
        self.authorize(operation, &self.user_arn(name))?;
        self.existing_user(name).await
    }

    async fn tag_user(&self) -> Result<Option<Xml>> {
        let name = self.tagged_user_name()?;
        let new = tags::tags_param(self.params)?;
        if new.is_empty() {
            return Err(QueryError::validation(
                "1 validation error detected: Value null at 'tags' failed to satisfy constraint: Member must not be null",
            ));
        }
        let user = self.authorized_user(Iam::TagUser, name).await?;
        self.change_tags(&user, |old| tags::merged(old, new.clone()))
            .await?;
        Ok(None)
    }

    async fn untag_user(&self) -> Result<Option<Xml>> {
        let name = self.tagged_user_name()?;
        let keys = tags::tag_keys_param(self.params)?;
        let user = self.authorized_user(Iam::UntagUser, name).await?;
        self.change_tags(&user, |old| Ok(tags::without(old, &keys)))
            .await?;
        Ok(None)
    }

    async fn list_user_tags(&self) -> Result<Option<Xml>> {
        let name = self.tagged_user_name()?;
        let max_items = self.max_items()?;
        let user = self.authorized_user(Iam::ListUserTags, name).await?;
        let all = self.user_tags(&user).await?;
        let (page, next) = self.page(all, max_items, |t| t.key.to_lowercase())?;
        Ok(Some(listed(
            "Tags",
            &page,
            next.as_deref(),
            tags::write_member,
        )))
    }

    async fn delete_user(&self) -> Result<Option<Xml>> {
        let name = required(self.params, "UserName", "userName")?;
        check_name(name, "userName", 64)?;
        self.authorize(Iam::DeleteUser, &self.user_arn(name))?;
        let user = self.existing_user(name).await?;
        let iam = &self.principals.iam;
        let conflict = |what: &str| {
            QueryError::new(
                StatusCode::CONFLICT,
                "DeleteConflict",
                format!("Cannot delete entity, must delete {what} first."),
            )
        };
        if !iam
            .user_access_keys(&user.user_arn)
            .await
            .map_err(internal)?
            .is_empty()
        {
            return Err(conflict("access keys"));
        }
        if !iam
            .user_policies(&user.user_arn)
            .await
            .map_err(internal)?
            .is_empty()
        {
            return Err(conflict("policies"));
        }
        iam.delete_user(&user.user_arn).await.map_err(internal)?;
        self.deployment.forget_credentials(&user.user_arn, None);
        Ok(None)
    }

    async fn list_users(&self) -> Result<Option<Xml>> {
        let prefix = self.params.get("PathPrefix").unwrap_or("/");
        let max_items = self.max_items()?;
        self.authorize(Iam::ListUsers, &self.user_arn(""))?;
        let users: Vec<UserRecord> = self
            .principals
            .iam
            .users()
            .await
            .map_err(internal)?
            .into_iter()
            .filter(|u| u.account_id == self.caller.account_id && "/".starts_with(prefix))
            .collect();
        let (page, next) = self.page(users, max_items, |u| u.user_name.to_ascii_lowercase())?;
        Ok(Some(listed(
            "Users",
            &page,
            next.as_deref(),
            |xml, user| {
                xml.element("member", |xml| write_user(xml, user));
            },
        )))
    }

    fn max_items(&self) -> Result<usize> {
        match self.params.get("MaxItems") {
            None => Ok(100),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=1000).contains(&n) => Ok(n),
                _ => Err(constraint(
                    v,
                    "maxItems",
                    "Member must have value between 1 and 1000",
                )),
            },
        }
    }

    /// One page after `Marker` (the sort key of the first item of the page) and the
    /// `Marker` of the next page, if any.
    fn page<T>(
        &self,
        mut items: Vec<T>,
        max_items: usize,
        key: impl Fn(&T) -> String,
    ) -> Result<(Vec<T>, Option<String>)> {
        items.sort_by_key(|i| key(i));
        let start = match self.params.get("Marker") {
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
        let next = if rest.len() > max_items {
            Some(key(&rest[max_items]))
        } else {
            None
        };
        rest.truncate(max_items);
        Ok((rest, next))
    }

    async fn create_access_key(&self) -> Result<Option<Xml>> {
        let name = self.target_name()?;
        self.authorize(Iam::CreateAccessKey, &self.user_arn(&name))?;
        let user = self.existing_user(&name).await?;
        let iam = &self.principals.iam;
        let access_key_id = new_access_key_id();
        let secret = new_secret_access_key();
        let record = AccessKeyRecord {
            access_key_id: access_key_id.clone(),
            user_arn: user.user_arn.clone(),
            account_id: user.account_id.clone(),
            wrapped_secret: self.principals.seal(&access_key_id, &secret),
            status: "Active".into(),
            created_ms: chrono::Utc::now().timestamp_millis(),
        };
        // The quota check and the insert are one atomic step in the store: concurrent calls
        // never give a user a third key.
        if !iam
            .create_access_key_within(record.clone(), ACCESS_KEYS_PER_USER as i64)
            .await
            .map_err(internal)?
        {
            return Err(QueryError::new(
                StatusCode::CONFLICT,
                "LimitExceeded",
                format!("Cannot exceed quota for AccessKeysPerUser: {ACCESS_KEYS_PER_USER}"),
            ));
        }
        // Into this node's cache now, so the web console (which reads only the cache) takes it.
        self.deployment.resolve_credential(&access_key_id).await;
        // The only time the secret leaves Coffer.
        let mut xml = Xml::new();
        xml.element("AccessKey", |xml| {
            xml.text("UserName", &user.user_name)
                .text("AccessKeyId", &access_key_id)
                .text("Status", "Active")
                .text("SecretAccessKey", &secret)
                .text("CreateDate", &iso_date(record.created_ms));
        });
        Ok(Some(xml))
    }

    async fn list_access_keys(&self) -> Result<Option<Xml>> {
        let name = self.target_name()?;
        let max_items = self.max_items()?;
        self.authorize(Iam::ListAccessKeys, &self.user_arn(&name))?;
        let user = self.existing_user(&name).await?;
        let keys = self
            .principals
            .iam
            .user_access_keys(&user.user_arn)
            .await
            .map_err(internal)?;
        let (page, next) = self.page(keys, max_items, |k| k.access_key_id.to_ascii_lowercase())?;
        Ok(Some(listed(
            "AccessKeyMetadata",
            &page,
            next.as_deref(),
            |xml, key| {
                xml.element("member", |xml| {
                    xml.text("UserName", &user.user_name)
                        .text("AccessKeyId", &key.access_key_id)
                        .text("Status", &key.status)
                        .text("CreateDate", &iso_date(key.created_ms));
                });
            },
        )))
    }

    /// The key `AccessKeyId` of the target user, or NoSuchEntity.
    async fn existing_key(&self, user: &UserRecord) -> Result<AccessKeyRecord> {
        let id = required(self.params, "AccessKeyId", "accessKeyId")?;
        let missing =
            || QueryError::no_such_entity(format!("The Access Key with id {id} cannot be found."));
        if !(16..=128).contains(&id.len()) {
            return Err(constraint(
                id,
                "accessKeyId",
                "Member must have length between 16 and 128",
            ));
        }
        match self.principals.iam.access_key(id).await.map_err(internal)? {
            Some(key) if key.user_arn == user.user_arn => Ok(key),
            _ => Err(missing()),
        }
    }

    async fn update_access_key(&self) -> Result<Option<Xml>> {
        let name = self.target_name()?;
        let status = required(self.params, "Status", "status")?;
        if status != "Active" && status != "Inactive" {
            return Err(constraint(
                status,
                "status",
                "Member must satisfy enum value set: [Active, Inactive]",
            ));
        }
        required(self.params, "AccessKeyId", "accessKeyId")?;
        self.authorize(Iam::UpdateAccessKey, &self.user_arn(&name))?;
        let user = self.existing_user(&name).await?;
        let key = self.existing_key(&user).await?;
        self.principals
            .iam
            .set_access_key_status(&key.access_key_id, status)
            .await
            .map_err(internal)?;
        self.deployment
            .forget_credentials(&user.user_arn, Some(&key.access_key_id));
        Ok(None)
    }

    async fn delete_access_key(&self) -> Result<Option<Xml>> {
        let name = self.target_name()?;
        required(self.params, "AccessKeyId", "accessKeyId")?;
        self.authorize(Iam::DeleteAccessKey, &self.user_arn(&name))?;
        let user = self.existing_user(&name).await?;
        let key = self.existing_key(&user).await?;
        self.principals
            .iam
            .delete_access_key(&key.access_key_id)
            .await
            .map_err(internal)?;
        self.deployment
            .forget_credentials(&user.user_arn, Some(&key.access_key_id));
        Ok(None)
    }

    fn policy_params(&self) -> Result<(&str, &str)> {
        let user = required(self.params, "UserName", "userName")?;
        check_name(user, "userName", 128)?;
        let policy = required(self.params, "PolicyName", "policyName")?;
        check_name(policy, "policyName", 128)?;
        Ok((user, policy))
    }

    fn no_such_policy(name: &str) -> QueryError {
        QueryError::no_such_entity(format!("The user policy with name {name} cannot be found."))
    }

    async fn put_user_policy(&self) -> Result<Option<Xml>> {
        let (name, policy_name) = self.policy_params()?;
        let document = required(self.params, "PolicyDocument", "policyDocument")?;
        if document.is_empty() || document.len() > 131_072 {
            return Err(constraint(
                "",
                "policyDocument",
                "Member must have length between 1 and 131072",
            ));
        }
        self.authorize(Iam::PutUserPolicy, &self.user_arn(name))?;
        Policy::parse_identity_policy(document).map_err(|e| {
            QueryError::new(StatusCode::BAD_REQUEST, "MalformedPolicyDocument", e.0)
        })?;
        let user = self.existing_user(name).await?;
        let iam = &self.principals.iam;
        let size = |d: &str| d.chars().filter(|c| !c.is_whitespace()).count();
        let others: usize = iam
            .user_policies(&user.user_arn)
            .await
            .map_err(internal)?
            .iter()
            .filter(|p| p.policy_name != policy_name)
            .map(|p| size(&p.document))
            .sum();
        if others + size(document) > USER_POLICY_BYTES {
            return Err(QueryError::new(
                StatusCode::CONFLICT,
                "LimitExceeded",
                format!(
                    "Maximum policy size of {USER_POLICY_BYTES} bytes exceeded for user {}",
                    user.user_name
                ),
            ));
        }
        iam.put_user_policy(UserPolicyRecord {
            user_arn: user.user_arn.clone(),
            policy_name: policy_name.to_string(),
            document: document.to_string(),
            updated_ms: chrono::Utc::now().timestamp_millis(),
        })
        .await
        .map_err(internal)?;
        self.deployment.forget_credentials(&user.user_arn, None);
        Ok(None)
    }

    async fn get_user_policy(&self) -> Result<Option<Xml>> {
        let (name, policy_name) = self.policy_params()?;
        self.authorize(Iam::GetUserPolicy, &self.user_arn(name))?;
        let user = self.existing_user(name).await?;
        let policy = self
            .principals
            .iam
            .user_policies(&user.user_arn)
            .await
            .map_err(internal)?
            .into_iter()
            .find(|p| p.policy_name == policy_name)
            .ok_or_else(|| Self::no_such_policy(policy_name))?;
        // IAM returns the document URL-encoded (RFC 3986); the SDKs decode it.
        let mut xml = Xml::new();
        xml.text("UserName", &user.user_name)
            .text("PolicyName", &policy.policy_name)
            .text("PolicyDocument", &url_encode(&policy.document));
        Ok(Some(xml))
    }

    async fn delete_user_policy(&self) -> Result<Option<Xml>> {
        let (name, policy_name) = self.policy_params()?;
        self.authorize(Iam::DeleteUserPolicy, &self.user_arn(name))?;
        let user = self.existing_user(name).await?;
        if !self
            .principals
            .iam
            .delete_user_policy(&user.user_arn, policy_name)
            .await
            .map_err(internal)?
        {
            return Err(Self::no_such_policy(policy_name));
        }
        self.deployment.forget_credentials(&user.user_arn, None);
        Ok(None)
    }

    async fn list_user_policies(&self) -> Result<Option<Xml>> {
        let name = required(self.params, "UserName", "userName")?;
        check_name(name, "userName", 128)?;
        let max_items = self.max_items()?;
        self.authorize(Iam::ListUserPolicies, &self.user_arn(name))?;
        let user = self.existing_user(name).await?;
        let names: Vec<String> = self
            .principals
            .iam
            .user_policies(&user.user_arn)
            .await
            .map_err(internal)?
            .into_iter()
            .map(|p| p.policy_name)
            .collect();
        let (page, next) = self.page(names, max_items, |n| n.to_ascii_lowercase())?;
        Ok(Some(listed(
            "PolicyNames",
            &page,
            next.as_deref(),
            |xml, name| {
                xml.text("member", name);
            },
        )))
    }
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

    #[test]
    fn query_requests_are_recognised_by_their_content_type() {
        let mut headers = HeaderMap::new();
        assert!(!is_query(&headers));
        headers.insert(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded; charset=utf-8"
                .parse()
                .unwrap(),
        );
        assert!(is_query(&headers));
        headers.insert(
            header::CONTENT_TYPE,
            "application/x-amz-json-1.1".parse().unwrap(),
        );
        assert!(!is_query(&headers));
    }

    #[test]
    fn signature_failures_use_the_query_protocols_codes() {
        assert_eq!(
            auth_error(&SigV4Error::MissingAuthenticationToken).code,
            "MissingAuthenticationToken"
        );
        let wrong = auth_error(&SigV4Error::wrong_service("iam"));
        assert_eq!(
            (wrong.code, wrong.status),
            ("SignatureDoesNotMatch", StatusCode::FORBIDDEN)
        );
    }
}
