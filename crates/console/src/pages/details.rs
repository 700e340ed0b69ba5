//! A secret's page: overview, secret value, replication, versions with their labels, tags,
//! resource policy, rotation configuration, and delete (with a recovery window) or restore.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use coffer_core::keys::DEFAULT_KEY_ALIAS;
use coffer_core::ops::Operation as SecretsManager;
use coffer_core::ops::{
    cancel_rotate_secret, delete_resource_policy, delete_secret, describe_secret,
    get_resource_policy, list_secret_version_ids, put_resource_policy, restore_secret,
    rotate_secret, tag_resource, untag_resource, update_secret,
};
use coffer_core::rotation::RotationRules;
use coffer_core::{Error, RegionService};

use super::replication::{ReplicationSection, build_section};
use super::value::ValueSection;
use crate::form::{Form, url};
use crate::view::{Role, day, or_dash, secret_url, time};
use crate::{Console, Ctx, Layout, message, render, see_other};

pub struct VersionRow {
    pub id: String,
    created_ms: i64,
    pub labels: Vec<String>,
    pub created: String,
    pub last_accessed: String,
}

pub struct RotationView {
    pub state: &'static str,
    pub function: String,
    pub schedule: String,
    pub duration: String,
    pub last_rotated: String,
    pub next_rotation: String,
    pub enabled: bool,
    pub configured: bool,
    /// The current settings, to fill the form.
    pub schedule_input: String,
    pub duration_input: String,
    pub function_input: String,
    /// On a replica: the primary Region whose rotation this shows (rotation is configured and
    /// run on the primary; each new version reaches the replica).
    pub managed_by: Option<String>,
}

#[derive(Template)]
#[template(path = "secret.html")]
struct SecretPage {
    layout: Layout,
    pickers: Vec<(String, Vec<super::keys::KeyChoice>)>,
    region: String,
    name: String,
    arn: String,
    description: String,
    description_input: String,
    kms_key: String,
    kms_key_input: String,
    created: String,
    last_changed: String,
    last_accessed: String,
    deleted: Option<String>,
    role: Role,
    primary_region: String,
    editable: bool,
    value_html: String,
    replication_html: String,
    versions: Vec<VersionRow>,
    versions_error: Option<String>,
    tags: Vec<(String, String)>,
    policy: Option<String>,
    rotation: RotationView,
    list_url: String,
    edit_url: String,
    /// The Regions this secret (a primary) replicates to.
    replication_regions: Vec<String>,
}

impl SecretPage {
    fn is_replica(&self) -> bool {
        self.role == Role::Replica
    }
}

fn schedule_text(rules: &RotationRules) -> String {
    match (&rules.schedule_expression, rules.automatically_after_days) {
        (Some(expr), _) => expr.clone(),
        (None, Some(days)) => format!("every {days} days"),
        (None, None) => "—".into(),
    }
}

fn rotation_view(entry: &describe_secret::Output) -> RotationView {
    let rules = entry.rotation_rules.clone().unwrap_or_default();
    let enabled = entry.rotation_enabled == Some(true);
    RotationView {
        state: match entry.rotation_enabled {
            Some(true) => "Enabled",
            Some(false) => "Disabled",
            None => "Not configured",
        },
        function: or_dash(entry.rotation_lambda_arn.as_deref()),
        schedule: schedule_text(&rules),
        duration: or_dash(rules.duration.as_deref()),
        last_rotated: time(entry.last_rotated_date),
        next_rotation: time(entry.next_rotation_date),
        enabled,
        configured: entry.rotation_enabled.is_some(),
        schedule_input: rules
            .schedule_expression
            .clone()
            .or(rules
                .automatically_after_days
                .map(|d| format!("rate({d} days)")))
            .unwrap_or_default(),
        duration_input: rules.duration.unwrap_or_default(),
        function_input: entry.rotation_lambda_arn.clone().unwrap_or_default(),
        managed_by: None,
    }
}

/// A replica's rotation is its primary's: read from the primary when this node serves its
/// Region (else the replica's own, which says "Not configured").
async fn replica_rotation(ctx: &Ctx, entry: &describe_secret::Output) -> RotationView {
    let Some(primary) = entry.primary_region.clone() else {
        return rotation_view(entry);
    };
    let from_primary = match ctx.console.region(&primary) {
        Some(region) => ctx
            .call(
                &region,
                SecretsManager::DescribeSecret,
                describe_secret::run,
                describe_secret::Input {
                    secret_id: Some(entry.name.clone()),
                },
            )
            .await
            .ok(),
        None => None,
    };
    let mut view = match &from_primary {
        Some(p) => rotation_view(p),
        None => rotation_view(entry),
    };
    if from_primary.is_none() && entry.rotation_enabled.is_none() {
        view.state = "Managed by the primary secret";
    }
    view.managed_by = Some(primary);
    view
}

/// The secret's page; `value` is the revealed value section after "Retrieve secret value"
/// when JavaScript is off (with htmx the section alone is swapped in).
pub async fn page_with(
    ctx: &Ctx,
    region_name: &str,
    name: &str,
    value: Option<ValueSection>,
) -> Result<Response, Response> {
    let region = ctx.region(region_name)?;
    let entry = match ctx
        .call(
            &region,
            SecretsManager::DescribeSecret,
            describe_secret::run,
            describe_secret::Input {
                secret_id: Some(name.to_string()),
            },
        )
        .await
    {
        Ok(e) => e,
        Err(e) => {
            let list = url("/console/secrets", &[("region", region_name)]);
            return Err(message(
                StatusCode::NOT_FOUND,
                ctx.layout("Secret not found", region_name),
                "Secret not found",
                &format!("{name} in {region_name}: {}", e.message),
                Some((&list, "Back to the secrets")),
            ));
        }
    };
    // Use the stored name from here on (a partial ARN or differently written id resolves too).
    let name = entry.name.clone();
    let deleted = entry.deleted_date;
    let role = Role::of(entry.primary_region.as_deref(), region_name);
    let editable = deleted.is_none() && role != Role::Replica;
    let (versions, versions_error) = if deleted.is_some() {
        (Vec::new(), None)
    } else {
        match ctx
            .call(
                &region,
                SecretsManager::ListSecretVersionIds,
                list_secret_version_ids::run,
                list_secret_version_ids::Input {
                    secret_id: Some(name.clone()),
                    max_results: Some(100),
                    next_token: None,
                    include_deprecated: Some(true),
                },
            )
            .await
        {
            Ok(out) => {
                let mut rows: Vec<VersionRow> = out
                    .versions
                    .iter()
                    .map(|v| VersionRow {
                        id: v.version_id.clone(),
                        created_ms: v.created_date.0,
                        labels: v.version_stages.clone().unwrap_or_default(),
                        created: time(Some(v.created_date)),
                        last_accessed: day(v.last_accessed_date),
                    })
                    .collect();
                // Newest first, as AWS's console lists them.
                rows.sort_by_key(|r| std::cmp::Reverse(r.created_ms));
                (rows, None)
            }
            Err(e) => (Vec::new(), Some(e.message)),
        }
    };
    let policy = if deleted.is_some() {
        None
    } else {
        ctx.call(
            &region,
            SecretsManager::GetResourcePolicy,
            get_resource_policy::run,
            get_resource_policy::Input {
                secret_id: Some(name.clone()),
            },
        )
        .await
        .ok()
        .and_then(|o| o.resource_policy)
        .map(|p| {
            serde_json::from_str::<serde_json::Value>(&p)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                .unwrap_or(p)
        })
    };
    let value = value
        .unwrap_or_else(|| ValueSection::hidden(&ctx.session.csrf, region_name, &name, editable));
    let replication: ReplicationSection = build_section(&ctx.console, region_name, &name, &entry);
    let render_part = |r: Result<String, askama::Error>| {
        r.unwrap_or_else(|e| {
            tracing::error!(error = %e, "Console template failed");
            String::new()
        })
    };
    let pickers = if editable {
        super::keys::pickers(&ctx.console, &ctx.caller, [region_name.to_string()]).await
    } else {
        Vec::new()
    };
    let page = SecretPage {
        layout: ctx.layout(&name, region_name),
        pickers,
        region: region_name.to_string(),
        arn: entry.arn.clone(),
        description: or_dash(entry.description.as_deref()),
        description_input: entry.description.clone().unwrap_or_default(),
        kms_key: entry
            .kms_key_id
            .clone()
            .unwrap_or_else(|| DEFAULT_KEY_ALIAS.to_string()),
        kms_key_input: entry.kms_key_id.clone().unwrap_or_default(),
        created: time(entry.created_date),
        last_changed: time(entry.last_changed_date),
        last_accessed: day(entry.last_accessed_date),
        deleted: deleted.map(|d| time(Some(d))),
        role,
        primary_region: entry
            .primary_region
            .clone()
            .unwrap_or_else(|| "—".to_string()),
        editable,
        value_html: render_part(value.render()),
        replication_html: render_part(replication.render()),
        versions,
        versions_error,
        tags: entry
            .tags
            .iter()
            .flatten()
            .map(|t| (t.key.clone(), t.value.clone()))
            .collect(),
        policy,
        rotation: if role == Role::Replica {
            replica_rotation(ctx, &entry).await
        } else {
            rotation_view(&entry)
        },
        list_url: url("/console/secrets", &[("region", region_name)]),
        edit_url: super::value::edit_url(region_name, &name),
        replication_regions: replica_regions(&entry),
        name,
    };
    Ok(render(StatusCode::OK, &page))
}

pub async fn page(
    State(console): State<Arc<Console>>,
    request: Request,
) -> Result<Response, Response> {
    let (parts, _) = request.into_parts();
    let ctx = console.signed_in(&parts, true)?;
    let q = Form::from_query(parts.uri.query());
    let (region, name) = (q.text("region"), q.text("name"));
    // A draft here is a "Retrieve secret value" sent without JavaScript.
    let value = match ctx.draft(&q) {
        Some(Ok((form, _))) => Some(super::value::reveal(&ctx, &region, &name, &form).await?),
        _ => None,
    };
    page_with(&ctx, &region, &name, value).await
}

/// A signed-in POST about one secret: the context, the form, the Region and the name.
async fn target(
    console: &Arc<Console>,
    request: Request,
) -> Result<(Ctx, Form, Arc<RegionService>, String), Response> {
    let (ctx, form) = console.posted(request).await?;
    let region = ctx.region(&form.text("region"))?;
    let name = form.text("name");
    Ok((ctx, form, region, name))
}

/// After an action: its outcome as a message on the secret's page, at `anchor`.
fn done(
    ctx: &Ctx,
    region: &str,
    name: &str,
    result: Result<String, Error>,
    anchor: &str,
) -> Response {
    ctx.flash_outcome(result);
    see_other(&format!("{}{anchor}", secret_url(region, name)))
}

pub async fn update(
    State(console): State<Arc<Console>>,
    request: Request,
) -> Result<Response, Response> {
    let (ctx, form, region, name) = target(&console, request).await?;
    let result = ctx
        .call(
            &region,
            SecretsManager::UpdateSecret,
            update_secret::run,
            update_secret::Input {
                secret_id: Some(name.clone()),
                client_request_token: None,
                description: Some(form.text("description")),
                kms_key_id: form.optional("kms_key"),
                secret_string: None,
                secret_binary: None,
                secret_type: None,
            },
        )
        .await
        .map(|_| "Saved the description and encryption key.".to_string());
    Ok(done(&ctx, &region.region, &name, result, "#overview"))
}

pub async fn tag(
    State(console): State<Arc<Console>>,
    request: Request,
) -> Result<Response, Response> {
    let (ctx, form, region, name) = target(&console, request).await?;
    let key = form.text("tag_key");
    let result = ctx
        .call(
            &region,
            SecretsManager::TagResource,
            tag_resource::run,
            tag_resource::Input {
                secret_id: Some(name.clone()),
                tags: Some(vec![coffer_core::input::TagInput {
                    key: Some(key.clone()),
                    value: Some(form.text("tag_value")),
                }]),
            },
        )
        .await
        .map(|_| format!("Saved the tag {key}."));
    Ok(done(&ctx, &region.region, &name, result, "#tags"))
}

pub async fn untag(
    State(console): State<Arc<Console>>,
    request: Request,
) -> Result<Response, Response> {
    let (ctx, form, region, name) = target(&console, request).await?;
    let key = form.text("tag_key");
    let result = ctx
        .call(
            &region,
            SecretsManager::UntagResource,
            untag_resource::run,
            untag_resource::Input {
                secret_id: Some(name.clone()),
                tag_keys: Some(vec![key.clone()]),
            },
        )
        .await
        .map(|_| format!("Removed the tag {key}."));
    Ok(done(&ctx, &region.region, &name, result, "#tags"))
}

pub async fn put_policy(
    State(console): State<Arc<Console>>,
    request: Request,
) -> Result<Response, Response> {
    let (ctx, form, region, name) = target(&console, request).await?;
    let result = ctx
        .call(
            &region,
            SecretsManager::PutResourcePolicy,
            put_resource_policy::run,
            put_resource_policy::Input {
                secret_id: Some(name.clone()),
                resource_policy: Some(form.text("policy")),
                block_public_policy: Some(form.checked("block_public")),
            },
        )
        .await
        .map(|_| "Saved the resource policy.".to_string());
    Ok(done(&ctx, &region.region, &name, result, "#policy"))
}

pub async fn delete_policy(
    State(console): State<Arc<Console>>,
    request: Request,
) -> Result<Response, Response> {
    let (ctx, _, region, name) = target(&console, request).await?;
    let result = ctx
        .call(
            &region,
            SecretsManager::DeleteResourcePolicy,
            delete_resource_policy::run,
            delete_resource_policy::Input {
                secret_id: Some(name.clone()),
            },
        )
        .await
        .map(|_| "Deleted the resource policy.".to_string());
    Ok(done(&ctx, &region.region, &name, result, "#policy"))
}

/// RotateSecret: "Save" stores the configuration (rotating at once only when asked); "Rotate
/// secret immediately" starts a rotation with the stored configuration.
pub async fn rotation(
    State(console): State<Arc<Console>>,
    request: Request,
) -> Result<Response, Response> {
    let (ctx, form, region, name) = target(&console, request).await?;
    let now_only = form.get("rotate_now") == Some("only");
    let input = if now_only {
        rotate_secret::Input {
            secret_id: Some(name.clone()),
            client_request_token: Some(uuid::Uuid::new_v4().to_string()),
            rotation_lambda_arn: None,
            rotation_rules: None,
            rotate_immediately: None,
        }
    } else {
        rotate_secret::Input {
            secret_id: Some(name.clone()),
            client_request_token: Some(uuid::Uuid::new_v4().to_string()),
            rotation_lambda_arn: form.optional("function"),
            rotation_rules: Some(RotationRules {
                automatically_after_days: None,
                duration: form.optional("duration"),
                schedule_expression: form.optional("schedule"),
            }),
            rotate_immediately: Some(form.checked("rotate_immediately")),
        }
    };
    let result = ctx
        .call(
            &region,
            SecretsManager::RotateSecret,
            rotate_secret::run,
            input,
        )
        .await
        .map(|_| {
            if now_only {
                "Rotation started.".to_string()
            } else {
                "Saved the rotation configuration.".to_string()
            }
        });
    Ok(done(&ctx, &region.region, &name, result, "#rotation"))
}

pub async fn cancel_rotation(
    State(console): State<Arc<Console>>,
    request: Request,
) -> Result<Response, Response> {
    let (ctx, _, region, name) = target(&console, request).await?;
    let result = ctx
        .call(
            &region,
            SecretsManager::CancelRotateSecret,
            cancel_rotate_secret::run,
            cancel_rotate_secret::Input {
                secret_id: Some(name.clone()),
            },
        )
        .await
        .map(|_| "Rotation is off.".to_string());
    Ok(done(&ctx, &region.region, &name, result, "#rotation"))
}

fn replica_regions(entry: &describe_secret::Output) -> Vec<String> {
    entry
        .replication_status
        .iter()
        .flatten()
        .map(|r| r.region.clone())
        .collect()
}

#[derive(Template)]
#[template(path = "delete.html")]
struct DeletePage {
    layout: Layout,
    region: String,
    name: String,
    days: i64,
    deletion_date: String,
    replicas: Vec<String>,
    replication_url: String,
    back_url: String,
}

/// "Delete secret": the confirmation, with the waiting period and the day it ends, as AWS's
/// console asks. A primary with replicas gets the way out instead: DeleteSecret refuses it
/// until its replica Regions are removed.
pub async fn delete_page(
    State(console): State<Arc<Console>>,
    request: Request,
) -> Result<Response, Response> {
    let (parts, _) = request.into_parts();
    let ctx = console.signed_in(&parts, true)?;
    let q = Form::from_query(parts.uri.query());
    let region_name = q.text("region");
    let name = q.text("name");
    let region = ctx.region(&region_name)?;
    let entry = match ctx
        .call(
            &region,
            SecretsManager::DescribeSecret,
            describe_secret::run,
            describe_secret::Input {
                secret_id: Some(name.clone()),
            },
        )
        .await
    {
        Ok(e) => e,
        Err(e) => {
            ctx.flash(true, e.message);
            return Ok(see_other(&secret_url(&region_name, &name)));
        }
    };
    let days = q
        .text("recovery_window")
        .parse::<i64>()
        .unwrap_or(30)
        .clamp(7, 30);
    let deletion_date = (chrono::Utc::now() + chrono::Duration::days(days))
        .format("%Y-%m-%d")
        .to_string();
    let back_url = secret_url(&region_name, &entry.name);
    let page = DeletePage {
        layout: ctx.layout(&format!("Delete secret: {}", entry.name), &region_name),
        region: region_name,
        name: entry.name.clone(),
        days,
        deletion_date,
        replicas: replica_regions(&entry),
        replication_url: format!("{back_url}#replication"),
        back_url,
    };
    Ok(render(StatusCode::OK, &page))
}

pub async fn delete(
    State(console): State<Arc<Console>>,
    request: Request,
) -> Result<Response, Response> {
    let (ctx, form, region, name) = target(&console, request).await?;
    let days = form.text("recovery_window").parse::<i64>().ok();
    let result = ctx
        .call(
            &region,
            SecretsManager::DeleteSecret,
            delete_secret::run,
            delete_secret::Input {
                secret_id: Some(name.clone()),
                recovery_window_in_days: Some(days.unwrap_or(0)),
                force_delete_without_recovery: None,
            },
        )
        .await
        .map(|out| {
            format!(
                "{name} is scheduled for deletion on {}. Until then you can cancel the deletion.",
                time(Some(out.deletion_date))
            )
        })
        .map_err(|mut e| {
            if e.message.contains("still has replica regions") {
                e.message.push_str(
                    " Remove the replica Regions first: in Replication, choose Actions, then Remove replica.",
                );
            }
            e
        });
    Ok(done(&ctx, &region.region, &name, result, ""))
}

pub async fn restore(
    State(console): State<Arc<Console>>,
    request: Request,
) -> Result<Response, Response> {
    let (ctx, _, region, name) = target(&console, request).await?;
    let result = ctx
        .call(
            &region,
            SecretsManager::RestoreSecret,
            restore_secret::run,
            restore_secret::Input {
                secret_id: Some(name.clone()),
            },
        )
        .await
        .map(|_| format!("Cancelled the deletion of {name}."));
    Ok(done(&ctx, &region.region, &name, result, ""))
}
