//! Replication, as AWS's console does it: "Replicate secret" / "Add Region" open "Add replica
//! Regions"; the status of every Region refreshes itself; an Actions menu per replica offers
//! "Retry replication" (with an Overwrite choice) and "Remove replica"; a replica's page offers
//! "Promote to standalone secret". A failure shows its reason and what to do
//! ([`crate::guidance`]).

use std::sync::Arc;

use askama::Template;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use coffer_core::keys::DEFAULT_KEY_ALIAS;
use coffer_core::ops::Operation as SecretsManager;
use coffer_core::ops::{
    describe_secret, remove_regions_from_replication, replicate_secret_to_regions,
    stop_replication_to_replica,
};
use coffer_core::replica_regions::ReplicaRegionType;

use super::keys::{KeyChoice, pickers};
use crate::drafts::{FormState, Problem};
use crate::form::{Form, url};
use crate::guidance::{Advice, advise};
use crate::view::{Role, day, secret_page_url, secret_url, status_class};
use crate::{Console, Ctx, Layout, html, message, render, see_other};

/// One choice of the Region select.
pub struct RegionOption {
    pub name: String,
    /// AWS's name and the code: `Europe (Ireland) · eu-west-1`.
    pub label: String,
    pub selected: bool,
}

/// One row of "Add replica Regions": a Region and an optional key of that Region.
pub struct ReplicaRow {
    pub index: usize,
    /// The Region chosen ("" when none yet): its keys are the key field's picker.
    pub region: String,
    pub deployment: Vec<RegionOption>,
    pub others: Vec<RegionOption>,
    pub key: String,
}

/// Regions a secret of `own` can be replicated to: those of this deployment first (this
/// node's and its peers'), then the other Regions of the partition, which fail with "not
/// enabled" as the API does.
fn choices(console: &Console, own: &str) -> (Vec<String>, Vec<String>) {
    let partition = coffer_core::model::partition_of(own);
    let mut deployment: Vec<String> = console
        .regions
        .keys()
        .chain(console.peers.iter())
        .filter(|r| r.as_str() != own)
        .cloned()
        .collect();
    deployment.sort();
    deployment.dedup();
    let mut others: Vec<String> = coffer_core::model::regions()
        .filter(|(r, p)| Some(*p) == partition && *r != own && !deployment.iter().any(|d| d == r))
        .map(|(r, _)| r.to_string())
        .collect();
    others.sort();
    (deployment, others)
}

/// The Regions this node serves other than `own`: those whose keys a replica row can pick.
pub fn replica_pickers(console: &Console, own: &str) -> Vec<String> {
    console
        .regions
        .keys()
        .filter(|r| r.as_str() != own)
        .cloned()
        .collect()
}

/// The replica rows of a form (`replica_region`, `replica_key`), with `extra` empty rows.
pub fn replica_rows(
    console: &Console,
    own: &str,
    form: Option<&Form>,
    extra: usize,
) -> Vec<ReplicaRow> {
    let mut picked: Vec<(String, String)> = match form {
        Some(f) => f
            .all("replica_region")
            .zip(f.all("replica_key"))
            .map(|(r, k)| (r.trim().to_string(), k.trim().to_string()))
            .collect(),
        None => Vec::new(),
    };
    if let Some(f) = form
        && let Some(i) = f.get("remove_row").and_then(|i| i.parse::<usize>().ok())
        && i < picked.len()
    {
        picked.remove(i);
    }
    picked.extend((0..extra).map(|_| (String::new(), String::new())));
    let (deployment, others) = choices(console, own);
    let options = |list: &[String], selected: &str| {
        list.iter()
            .map(|r| RegionOption {
                label: crate::view::region_label(r),
                name: r.clone(),
                selected: r == selected,
            })
            .collect()
    };
    picked
        .into_iter()
        .enumerate()
        .map(|(index, (region, key))| ReplicaRow {
            index,
            region: region.clone(),
            deployment: options(&deployment, &region),
            others: options(&others, &region),
            key,
        })
        .collect()
}

/// The `AddReplicaRegions` of a form: rows with a Region chosen.
pub fn requested_regions(form: &Form) -> Vec<ReplicaRegionType> {
    form.all("replica_region")
        .zip(form.all("replica_key"))
        .filter(|(r, _)| !r.trim().is_empty())
        .map(|(r, k)| ReplicaRegionType {
            region: Some(r.trim().to_string()),
            kms_key_id: Some(k.trim().to_string()).filter(|k| !k.is_empty()),
        })
        .collect()
}

pub struct ReplicaView {
    pub region: String,
    pub key: String,
    pub status: String,
    pub status_class: &'static str,
    pub message: String,
    pub last_accessed: String,
    pub advice: Option<Advice>,
    /// Retry is offered only for a replica whose replication failed, as in AWS's console.
    pub failed: bool,
    pub retry_url: String,
    pub remove_url: String,
    /// The replica's own page, when this node serves its Region.
    pub replica_url: Option<String>,
}

#[derive(Template)]
#[template(path = "replication.html")]
pub struct ReplicationSection {
    pub refresh_url: String,
    pub role: Role,
    pub primary_region: String,
    pub primary_url: Option<String>,
    pub replicas: Vec<ReplicaView>,
    pub add_url: String,
    pub promote_url: String,
    pub deleted: bool,
    pub error: Option<String>,
}

impl ReplicationSection {
    pub fn is_replica(&self) -> bool {
        self.role == Role::Replica
    }

    pub fn refreshes(&self) -> bool {
        !self.is_replica()
    }
}

async fn describe(
    ctx: &Ctx,
    region: &coffer_core::RegionService,
    name: &str,
) -> coffer_core::Result<describe_secret::Output> {
    ctx.call(
        region,
        SecretsManager::DescribeSecret,
        describe_secret::run,
        describe_secret::Input {
            secret_id: Some(name.to_string()),
        },
    )
    .await
}

/// The section as DescribeSecret shows the secret now.
pub fn build_section(
    console: &Console,
    region: &str,
    name: &str,
    entry: &coffer_core::view::SecretEntry,
) -> ReplicationSection {
    let role = Role::of(entry.primary_region.as_deref(), region);
    let primary_region = entry
        .primary_region
        .clone()
        .unwrap_or_else(|| region.to_string());
    let replicas = entry
        .replication_status
        .iter()
        .flatten()
        .map(|r| {
            let failed = r.status == coffer_core::replication::ReplicaState::Failed;
            let message = r.status_message.clone().unwrap_or_default();
            ReplicaView {
                region: r.region.clone(),
                key: r.kms_key_id.clone(),
                status: r.status.as_str().to_string(),
                status_class: status_class(r.status),
                advice: failed.then(|| advise(&r.region, r.cause.unwrap_or_default())),
                message: if message.is_empty() {
                    "—".to_string()
                } else {
                    message
                },
                last_accessed: day(r.last_accessed_date),
                failed,
                retry_url: url(
                    "/console/secret/retry",
                    &[("region", region), ("name", name), ("replica", &r.region)],
                ),
                remove_url: url(
                    "/console/secret/remove-replica",
                    &[("region", region), ("name", name), ("replica", &r.region)],
                ),
                replica_url: console
                    .regions
                    .contains_key(&r.region)
                    .then(|| secret_url(&r.region, name)),
            }
        })
        .collect();
    ReplicationSection {
        refresh_url: secret_page_url("replication", region, name),
        role,
        primary_url: (role == Role::Replica && console.regions.contains_key(&primary_region))
            .then(|| secret_url(&primary_region, name)),
        primary_region,
        replicas,
        add_url: secret_page_url("replicate", region, name),
        promote_url: secret_page_url("promote", region, name),
        deleted: entry.deleted_date.is_some(),
        error: None,
    }
}

/// GET: the section alone, for its periodic refresh. It does not count as activity, so an
/// open page does not keep a session alive.
pub async fn section_fragment(
    State(console): State<Arc<Console>>,
    request: Request,
) -> Result<Response, Response> {
    let (parts, _) = request.into_parts();
    let ctx = console.signed_in(&parts, false)?;
    let q = Form::from_query(parts.uri.query());
    let region_name = q.text("region");
    let name = q.text("name");
    let region = ctx.region(&region_name)?;
    // The periodic refresh reads the status as the signed-in user (the same authorization as
    // DescribeSecret) but writes no audit record: nobody asked for this read, and a page left
    // open would otherwise add a record every few seconds. The page load that started it was
    // recorded, as is everything the person does.
    let status = describe_secret::run(
        &region,
        &ctx.caller,
        describe_secret::Input {
            secret_id: Some(name.clone()),
        },
    )
    .await;
    let section = match status {
        Ok(entry) => build_section(&console, &region_name, &name, &entry),
        Err(e) => ReplicationSection {
            refresh_url: secret_page_url("replication", &region_name, &name),
            role: Role::Standalone,
            primary_region: region_name.clone(),
            primary_url: None,
            replicas: Vec::new(),
            add_url: String::new(),
            promote_url: String::new(),
            deleted: true,
            error: Some(e.message),
        },
    };
    Ok(match section.render() {
        Ok(body) => html(StatusCode::OK, body),
        Err(_) => html(StatusCode::INTERNAL_SERVER_ERROR, String::new()),
    })
}

#[derive(Template)]
#[template(path = "replicate.html")]
struct AddRegionsPage {
    layout: Layout,
    pickers: Vec<(String, Vec<KeyChoice>)>,
    region: String,
    name: String,
    rows: Vec<ReplicaRow>,
    fs: FormState,
    back_url: String,
    replicated: bool,
    overwrite: bool,
}

fn add_url(region: &str, name: &str) -> String {
    secret_page_url("replicate", region, name)
}

/// "Replicate secret" / "Add Region": the "Add replica Regions" form, or the form as the user
/// left it when it came back (Post/Redirect/Get, see [`crate::drafts`]).
pub async fn add_page(
    State(console): State<Arc<Console>>,
    request: Request,
) -> Result<Response, Response> {
    let (parts, _) = request.into_parts();
    let ctx = console.signed_in(&parts, true)?;
    let q = Form::from_query(parts.uri.query());
    let region_name = q.text("region");
    let name = q.text("name");
    let region = ctx.region(&region_name)?;
    let replicated = match describe(&ctx, &region, &name).await {
        Ok(entry) => entry.replication_status.is_some(),
        Err(e) => {
            return Err(message(
                StatusCode::NOT_FOUND,
                ctx.layout("Secret not found", &region_name),
                "Secret not found",
                &e.message,
                None,
            ));
        }
    };
    let (rows, fs, overwrite) = match ctx.draft(&q) {
        Some(Ok((form, problem))) => {
            let extra = usize::from(form.get("more").is_some());
            let rows = replica_rows(&console, &region_name, Some(&form), extra);
            let focus = if extra > 0 {
                format!("replica-region-{}", rows.len().saturating_sub(1))
            } else if form.get("remove_row").is_some() {
                "add-more-regions".to_string()
            } else {
                String::new()
            };
            (
                rows,
                FormState::new(problem, focus),
                form.checked("overwrite"),
            )
        }
        Some(Err(problem)) => (
            replica_rows(&console, &region_name, None, 1),
            FormState::new(Some(problem), ""),
            false,
        ),
        None => (
            replica_rows(&console, &region_name, None, 1),
            FormState::default(),
            false,
        ),
    };
    Ok(render(
        StatusCode::OK,
        &AddRegionsPage {
            layout: ctx.layout(&format!("Add replica Regions: {name}"), &region_name),
            pickers: pickers(
                &console,
                &ctx.caller,
                replica_pickers(&console, &region_name),
            )
            .await,
            back_url: format!("{}#replication", secret_url(&region_name, &name)),
            region: region_name,
            name,
            rows,
            fs,
            replicated,
            overwrite,
        },
    ))
}

pub async fn add_submit(
    State(console): State<Arc<Console>>,
    request: Request,
) -> Result<Response, Response> {
    let (ctx, form) = console.posted(request).await?;
    let region_name = form.text("region");
    let name = form.text("name");
    let region = ctx.region(&region_name)?;
    let overwrite = form.checked("overwrite");
    let again = add_url(&region_name, &name);
    if form.get("more") == Some("replica") {
        let anchor = format!("#replica-region-{}", form.all("replica_region").count());
        return Ok(ctx.redirect_with_draft(&again, &form, None, &anchor));
    }
    if form.get("remove_row").is_some() {
        return Ok(ctx.redirect_with_draft(&again, &form, None, "#add-more-regions"));
    }
    let requested = requested_regions(&form);
    if requested.is_empty() {
        let problem = Problem::field("replica-region-0", "Choose at least one Region.");
        return Ok(ctx.redirect_with_draft(&again, &form, Some(problem), ""));
    }
    let regions: Vec<String> = requested.iter().filter_map(|r| r.region.clone()).collect();
    let result = ctx
        .call(
            &region,
            SecretsManager::ReplicateSecretToRegions,
            replicate_secret_to_regions::run,
            replicate_secret_to_regions::Input {
                secret_id: Some(name.clone()),
                add_replica_regions: Some(requested),
                // "Overwrite" as on the Retry dialog: a Region that already holds a secret of
                // this name (a promoted replica, say) takes this secret's value.
                force_overwrite_replica_secret: overwrite.then_some(true),
            },
        )
        .await;
    match result {
        Ok(_) => {
            ctx.flash(
                false,
                format!(
                    "Replication to {} started. The status below updates by itself.",
                    regions.join(", ")
                ),
            );
            Ok(see_other(&format!(
                "{}#replication",
                secret_url(&region_name, &name)
            )))
        }
        Err(e) => Ok(ctx.redirect_with_draft(&again, &form, Some(Problem::form(e.message)), "")),
    }
}

#[derive(Template)]
#[template(path = "retry.html")]
struct RetryPage {
    layout: Layout,
    pickers: Vec<(String, Vec<KeyChoice>)>,
    region: String,
    name: String,
    replica: String,
    status: String,
    status_class: &'static str,
    message: String,
    advice: Option<Advice>,
    key: String,
    back_url: String,
}

/// The replica `replica` of the primary `name`, as DescribeSecret shows it.
async fn replica_status(
    ctx: &Ctx,
    region: &coffer_core::RegionService,
    name: &str,
    replica: &str,
) -> Result<coffer_core::replication::ReplicationStatusView, String> {
    let entry = describe(ctx, region, name).await.map_err(|e| e.message)?;
    entry
        .replication_status
        .into_iter()
        .flatten()
        .find(|r| r.region == replica)
        .ok_or_else(|| format!("{replica} is not a replica Region of this secret."))
}

/// "Retry replication": a dialog with the failure, what to do, and an Overwrite choice.
pub async fn retry_page(
    State(console): State<Arc<Console>>,
    request: Request,
) -> Result<Response, Response> {
    let (parts, _) = request.into_parts();
    let ctx = console.signed_in(&parts, true)?;
    let q = Form::from_query(parts.uri.query());
    let region_name = q.text("region");
    let name = q.text("name");
    let replica = q.text("replica");
    let region = ctx.region(&region_name)?;
    let status = match replica_status(&ctx, &region, &name, &replica).await {
        Ok(s) => s,
        Err(e) => {
            ctx.flash(true, e);
            return Ok(see_other(&secret_url(&region_name, &name)));
        }
    };
    let message_text = status.status_message.clone().unwrap_or_default();
    let advice = (status.status == coffer_core::replication::ReplicaState::Failed)
        .then(|| advise(&replica, status.cause.unwrap_or_default()).in_retry_dialog());
    let page = RetryPage {
        layout: ctx.layout(&format!("Retry replication: {name}"), &region_name),
        pickers: pickers(&console, &ctx.caller, [replica.clone()]).await,
        back_url: format!("{}#replication", secret_url(&region_name, &name)),
        region: region_name,
        name,
        status_class: status_class(status.status),
        status: status.status.as_str().to_string(),
        message: if message_text.is_empty() {
            "—".into()
        } else {
            message_text
        },
        advice,
        key: Some(status.kms_key_id)
            .filter(|k| k != DEFAULT_KEY_ALIAS)
            .unwrap_or_default(),
        replica,
    };
    Ok(render(StatusCode::OK, &page))
}

pub async fn retry_submit(
    State(console): State<Arc<Console>>,
    request: Request,
) -> Result<Response, Response> {
    let (ctx, form) = console.posted(request).await?;
    let region_name = form.text("region");
    let name = form.text("name");
    let replica = form.text("replica");
    let region = ctx.region(&region_name)?;
    let overwrite = form.checked("overwrite");
    let result = ctx
        .call(
            &region,
            SecretsManager::ReplicateSecretToRegions,
            replicate_secret_to_regions::run,
            replicate_secret_to_regions::Input {
                secret_id: Some(name.clone()),
                add_replica_regions: Some(vec![ReplicaRegionType {
                    region: Some(replica.clone()),
                    kms_key_id: form.optional("key"),
                }]),
                force_overwrite_replica_secret: Some(overwrite),
            },
        )
        .await;
    ctx.flash_outcome(result.map(|_| {
        if overwrite {
            format!(
                "Retrying replication to {replica}, overwriting a secret of the same name there."
            )
        } else {
            format!("Retrying replication to {replica}.")
        }
    }));
    Ok(see_other(&format!(
        "{}#replication",
        secret_url(&region_name, &name)
    )))
}

/// A confirmation page (the replication actions, the Regions page's failover).
#[derive(Template)]
#[template(path = "confirm.html")]
pub(super) struct ConfirmPage {
    pub(super) layout: Layout,
    pub(super) heading: String,
    pub(super) text: String,
    pub(super) action: String,
    pub(super) button: String,
    pub(super) danger: bool,
    pub(super) fields: Vec<(&'static str, String)>,
    pub(super) back_url: String,
}

/// "Remove replica": confirmation.
pub async fn remove_page(
    State(console): State<Arc<Console>>,
    request: Request,
) -> Result<Response, Response> {
    let (parts, _) = request.into_parts();
    let ctx = console.signed_in(&parts, true)?;
    let q = Form::from_query(parts.uri.query());
    let region_name = q.text("region");
    let name = q.text("name");
    let replica = q.text("replica");
    ctx.region(&region_name)?;
    let page = ConfirmPage {
        layout: ctx.layout(&format!("Remove replica: {name}"), &region_name),
        heading: format!("Remove the replica in {replica}?"),
        text: format!(
            "The replica of {name} in {replica} is deleted at once, without a recovery window, and {region_name} stops replicating to it. The primary secret is not changed."
        ),
        action: "/console/secret/remove-replica".into(),
        button: "Remove replica".into(),
        danger: true,
        fields: vec![
            ("region", region_name.clone()),
            ("name", name.clone()),
            ("replica", replica),
        ],
        back_url: format!("{}#replication", secret_url(&region_name, &name)),
    };
    Ok(render(StatusCode::OK, &page))
}

pub async fn remove_submit(
    State(console): State<Arc<Console>>,
    request: Request,
) -> Result<Response, Response> {
    let (ctx, form) = console.posted(request).await?;
    let region_name = form.text("region");
    let name = form.text("name");
    let replica = form.text("replica");
    let region = ctx.region(&region_name)?;
    let result = ctx
        .call(
            &region,
            SecretsManager::RemoveRegionsFromReplication,
            remove_regions_from_replication::run,
            remove_regions_from_replication::Input {
                secret_id: Some(name.clone()),
                remove_replica_regions: Some(vec![replica.clone()]),
            },
        )
        .await;
    ctx.flash_outcome(result.map(|_| format!("Removed the replica in {replica}.")));
    Ok(see_other(&format!(
        "{}#replication",
        secret_url(&region_name, &name)
    )))
}

/// "Promote to standalone secret" (on a replica's page): confirmation.
pub async fn promote_page(
    State(console): State<Arc<Console>>,
    request: Request,
) -> Result<Response, Response> {
    let (parts, _) = request.into_parts();
    let ctx = console.signed_in(&parts, true)?;
    let q = Form::from_query(parts.uri.query());
    let region_name = q.text("region");
    let name = q.text("name");
    let region = ctx.region(&region_name)?;
    let primary = describe(&ctx, &region, &name)
        .await
        .ok()
        .and_then(|e| e.primary_region)
        .unwrap_or_else(|| "its primary Region".into());
    let page = ConfirmPage {
        layout: ctx.layout(
            &format!("Promote to standalone secret: {name}"),
            &region_name,
        ),
        heading: "Promote to standalone secret?".into(),
        text: format!(
            "The replica of {name} in {region_name} becomes a standalone secret that you can change; {primary} stops replicating to it. This works even while {primary} is unreachable, and cannot be undone (you can replicate the primary to {region_name} again later, with Overwrite)."
        ),
        action: "/console/secret/promote".into(),
        button: "Promote to standalone secret".into(),
        danger: false,
        fields: vec![("region", region_name.clone()), ("name", name.clone())],
        back_url: format!("{}#replication", secret_url(&region_name, &name)),
    };
    Ok(render(StatusCode::OK, &page))
}

pub async fn promote_submit(
    State(console): State<Arc<Console>>,
    request: Request,
) -> Result<Response, Response> {
    let (ctx, form) = console.posted(request).await?;
    let region_name = form.text("region");
    let name = form.text("name");
    let region = ctx.region(&region_name)?;
    let result = ctx
        .call(
            &region,
            SecretsManager::StopReplicationToReplica,
            stop_replication_to_replica::run,
            stop_replication_to_replica::Input {
                secret_id: Some(name.clone()),
            },
        )
        .await;
    ctx.flash_outcome(
        result.map(|_| format!("{name} in {region_name} is now a standalone secret.")),
    );
    Ok(see_other(&secret_url(&region_name, &name)))
}
