//! "Encryption keys" (AWS's KMS console, the part secrets need): the keys of a Region with
//! their aliases and state; create a key (with an alias), add an alias, enable or disable a
//! key. And [`key_choices`], the picker offered wherever a secret asks for a key.
//!
//! Every action is a KMS operation run as the signed-in user and recorded as
//! `kms.amazonaws.com`, as the API would record it.

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use coffer_core::kms::Operation as Kms;
use coffer_core::kms::{create_alias, create_key, describe_key, disable_key, enable_key};
use coffer_core::kms::{list_aliases, list_keys};
use coffer_core::{Caller, RegionService};
use serde_json::json;

use crate::form::{Form, url};
use crate::view::time;
use crate::{Console, Ctx, Layout, render, see_other};

pub struct KeyRow {
    pub key_id: String,
    pub aliases: Vec<String>,
    pub description: String,
    pub state: String,
    pub state_class: &'static str,
    pub customer: bool,
    pub enabled: bool,
    pub created: String,
}

#[derive(Template)]
#[template(path = "keys.html")]
struct KeysPage {
    layout: Layout,
    region: String,
    keys: Vec<KeyRow>,
    error: Option<String>,
}

/// One choice of a key picker: the value put in the field and what the list shows.
pub struct KeyChoice {
    pub value: String,
    pub label: String,
}

/// The keys of `region` with their aliases, as the signed-in user can see them; with `ctx`,
/// each DescribeKey is recorded (the keys page), without it not (a picker).
async fn keys_of(
    region: &RegionService,
    caller: &Caller,
    ctx: Option<&Ctx>,
) -> coffer_core::Result<Vec<KeyRow>> {
    let listed = list_keys::run(
        region,
        caller,
        list_keys::Input {
            limit: Some(1000),
            marker: None,
        },
    )
    .await?;
    let aliases = list_aliases::run(
        region,
        caller,
        list_aliases::Input {
            key_id: None,
            limit: Some(1000),
            marker: None,
        },
    )
    .await?;
    let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for a in aliases["Aliases"].as_array().into_iter().flatten() {
        if let (Some(name), Some(target)) = (a["AliasName"].as_str(), a["TargetKeyId"].as_str()) {
            by_key
                .entry(target.to_string())
                .or_default()
                .push(name.to_string());
        }
    }
    let mut rows = Vec::new();
    for k in listed["Keys"].as_array().into_iter().flatten() {
        let Some(id) = k["KeyId"].as_str() else {
            continue;
        };
        let described = match ctx {
            Some(ctx) => {
                ctx.kms(
                    region,
                    Kms::DescribeKey,
                    describe_key::run,
                    json!({ "KeyId": id }),
                )
                .await
            }
            None => {
                describe_key::run(
                    region,
                    caller,
                    describe_key::Input {
                        key_id: id.to_string(),
                        grant_tokens: None,
                    },
                )
                .await
            }
        };
        let Ok(described) = described else {
            continue;
        };
        let m = &described["KeyMetadata"];
        let state = m["KeyState"].as_str().unwrap_or_default().to_string();
        rows.push(KeyRow {
            key_id: id.to_string(),
            aliases: by_key.remove(id).unwrap_or_default(),
            description: m["Description"].as_str().unwrap_or_default().to_string(),
            state_class: match state.as_str() {
                "Enabled" => "badge badge-ok",
                "Disabled" | "PendingDeletion" => "badge badge-failed",
                _ => "badge badge-plain",
            },
            enabled: state == "Enabled",
            state,
            customer: m["KeyManager"].as_str() == Some("CUSTOMER"),
            created: time(
                m["CreationDate"]
                    .as_f64()
                    .map(|s| coffer_core::model::Timestamp((s * 1000.0) as i64)),
            ),
        });
    }
    // Customer keys first (the ones a person manages), then by alias.
    rows.sort_by(|a, b| (!a.customer, &a.aliases).cmp(&(!b.customer, &b.aliases)));
    Ok(rows)
}

/// The enabled keys of `region` for a key picker: each alias, and the id of a key without
/// one. Read as the signed-in user without audit records (it only fills a list; what the
/// person then does with a key is recorded).
pub async fn key_choices(console: &Console, caller: &Caller, region: &str) -> Vec<KeyChoice> {
    let Some(service) = console.region(region) else {
        return Vec::new();
    };
    let Ok(rows) = keys_of(&service, caller, None).await else {
        return Vec::new();
    };
    let mut choices = Vec::new();
    for row in rows.into_iter().filter(|r| r.enabled) {
        let what = if row.description.is_empty() {
            row.key_id.clone()
        } else {
            format!("{} ({})", row.description, row.key_id)
        };
        if row.aliases.is_empty() {
            choices.push(KeyChoice {
                label: what,
                value: row.key_id,
            });
        } else {
            for alias in row.aliases {
                choices.push(KeyChoice {
                    value: alias,
                    label: what.clone(),
                });
            }
        }
    }
    choices
}

/// The key pickers of several Regions, as `(Region, choices)` for `<datalist id="keys-REGION">`.
pub async fn pickers(
    console: &Console,
    caller: &Caller,
    regions: impl IntoIterator<Item = String>,
) -> Vec<(String, Vec<KeyChoice>)> {
    let mut out = Vec::new();
    for r in regions {
        let choices = key_choices(console, caller, &r).await;
        out.push((r, choices));
    }
    out
}

fn keys_url(region: &str) -> String {
    url("/console/keys", &[("region", region)])
}

pub async fn page(
    State(console): State<Arc<Console>>,
    request: Request,
) -> Result<Response, Response> {
    let (parts, _) = request.into_parts();
    let ctx = console.signed_in(&parts, true)?;
    let q = Form::from_query(parts.uri.query());
    let region_name = q
        .optional("region")
        .unwrap_or_else(|| console.default_region());
    let region = ctx.region(&region_name)?;
    // The page's reads are recorded as the KMS console's are: ListKeys, ListAliases and a
    // DescribeKey per key.
    let listed = ctx
        .kms(
            &region,
            Kms::ListKeys,
            list_keys::run,
            json!({"Limit": 1000}),
        )
        .await;
    let _ = ctx
        .kms(
            &region,
            Kms::ListAliases,
            list_aliases::run,
            json!({"Limit": 1000}),
        )
        .await;
    let (keys, error) = match listed {
        Err(e) => (Vec::new(), Some(e.message)),
        Ok(_) => match keys_of(&region, &ctx.caller, Some(&ctx)).await {
            Ok(rows) => (rows, None),
            Err(e) => (Vec::new(), Some(e.message)),
        },
    };
    Ok(render(
        StatusCode::OK,
        &KeysPage {
            layout: ctx.layout(&format!("Encryption keys in {region_name}"), &region_name),
            region: region_name,
            keys,
            error,
        },
    ))
}

/// "Create key": CreateKey (symmetric, for encryption) and, when one is given, CreateAlias.
pub async fn create(
    State(console): State<Arc<Console>>,
    request: Request,
) -> Result<Response, Response> {
    let (ctx, form) = console.posted(request).await?;
    let region_name = form.text("region");
    let region = ctx.region(&region_name)?;
    let alias = form.optional("alias").map(|a| {
        if a.starts_with("alias/") {
            a
        } else {
            format!("alias/{a}")
        }
    });
    let mut params = json!({});
    if let Some(d) = form.optional("description") {
        params["Description"] = json!(d);
    }
    match ctx
        .kms(&region, Kms::CreateKey, create_key::run, params)
        .await
    {
        Ok(out) => {
            let id = out["KeyMetadata"]["KeyId"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let mut text = format!("Created the key {id}.");
            if let Some(alias) = alias {
                match ctx
                    .kms(
                        &region,
                        Kms::CreateAlias,
                        create_alias::run,
                        json!({"AliasName": alias, "TargetKeyId": id}),
                    )
                    .await
                {
                    Ok(_) => text = format!("Created the key {alias} ({id})."),
                    Err(e) => {
                        text.push_str(&format!(" The alias was not added: {}", e.message));
                        ctx.flash(true, text);
                        return Ok(see_other(&keys_url(&region_name)));
                    }
                }
            }
            ctx.flash(false, text);
        }
        Err(e) => ctx.flash(true, e.message),
    }
    Ok(see_other(&keys_url(&region_name)))
}

/// "Add alias" of a key.
pub async fn alias(
    State(console): State<Arc<Console>>,
    request: Request,
) -> Result<Response, Response> {
    let (ctx, form) = console.posted(request).await?;
    let region_name = form.text("region");
    let region = ctx.region(&region_name)?;
    let key_id = form.text("key_id");
    let mut alias = form.text("alias");
    if !alias.starts_with("alias/") {
        alias = format!("alias/{alias}");
    }
    let params = json!({"AliasName": alias, "TargetKeyId": key_id});
    let added = ctx
        .kms(&region, Kms::CreateAlias, create_alias::run, params)
        .await;
    ctx.flash_outcome(added.map(|_| format!("Added the alias {alias} to the key {key_id}.")));
    Ok(see_other(&keys_url(&region_name)))
}

/// "Enable" / "Disable" a key. Disabling one stops the secrets encrypted under it.
pub async fn state(
    State(console): State<Arc<Console>>,
    request: Request,
) -> Result<Response, Response> {
    let (ctx, form) = console.posted(request).await?;
    let region_name = form.text("region");
    let region = ctx.region(&region_name)?;
    let key_id = form.text("key_id");
    let params = json!({ "KeyId": key_id });
    let result = if form.get("enable") == Some("true") {
        ctx.kms(&region, Kms::EnableKey, enable_key::run, params)
            .await
            .map(|_| format!("Enabled the key {key_id}."))
    } else {
        ctx.kms(&region, Kms::DisableKey, disable_key::run, params)
            .await
            .map(|_| format!("Disabled the key {key_id}. Secrets encrypted under it cannot be read until it is enabled again."))
    };
    ctx.flash_outcome(result);
    Ok(see_other(&keys_url(&region_name)))
}
