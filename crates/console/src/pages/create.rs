//! "Store a new secret": key/value pairs or plaintext, description, encryption key, tags and
//! replica Regions, in one CreateSecret call.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use coffer_core::input::TagInput;
use coffer_core::ops::Operation as SecretsManager;
use coffer_core::ops::create_secret;

use super::keys::{KeyChoice, pickers};
use super::replication::{ReplicaRow, replica_rows, requested_regions};
use super::value::ValueEditor;
use crate::drafts::{FormState, Problem};
use crate::form::{Form, url};
use crate::view::secret_url;
use crate::{Console, Ctx, Layout, render, see_other};

#[derive(Template)]
#[template(path = "new_secret.html")]
struct NewSecretPage {
    layout: Layout,
    pickers: Vec<(String, Vec<KeyChoice>)>,
    region: String,
    name: String,
    description: String,
    kms_key: String,
    editor: ValueEditor,
    tags: Vec<(String, String)>,
    rows: Vec<ReplicaRow>,
    fs: FormState,
    back_url: String,
}

fn tags_of(form: &Form, add_row: bool) -> Vec<(String, String)> {
    let mut tags: Vec<(String, String)> = form
        .all("tag_key")
        .zip(form.all("tag_value"))
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .collect();
    if tags.is_empty() || add_row {
        tags.push((String::new(), String::new()));
    }
    tags
}

fn new_url(region: &str) -> String {
    url("/console/secrets/new", &[("region", region)])
}

async fn page_for(
    ctx: &Ctx,
    region: &str,
    form: Option<&Form>,
    problem: Option<Problem>,
) -> Response {
    let more = form.and_then(|f| f.get("more")).unwrap_or_default();
    let editor = match form {
        Some(f) => ValueEditor::from_form(f, more == "pair"),
        None => ValueEditor::empty(),
    };
    let tags = match form {
        Some(f) => tags_of(f, more == "tag"),
        None => vec![(String::new(), String::new())],
    };
    let rows = replica_rows(&ctx.console, region, form, usize::from(more == "replica"));
    // The row just added gets the focus (a Remove leaves it on "Add more Regions").
    let focus = match more {
        "pair" => format!("pair-key-{}", editor.pairs.len()),
        "tag" => format!("tag-key-{}", tags.len()),
        "replica" => format!("replica-region-{}", rows.len().saturating_sub(1)),
        _ if form.is_some_and(|f| f.get("remove_row").is_some()) => "add-more-regions".into(),
        _ => String::new(),
    };
    let page = NewSecretPage {
        layout: ctx.layout("Store a new secret", region),
        pickers: pickers(
            &ctx.console,
            &ctx.caller,
            ctx.console.regions.keys().cloned(),
        )
        .await,
        region: region.to_string(),
        name: form.map(|f| f.text("name")).unwrap_or_default(),
        description: form.map(|f| f.text("description")).unwrap_or_default(),
        kms_key: form.map(|f| f.text("kms_key")).unwrap_or_default(),
        editor,
        tags,
        rows,
        fs: FormState::new(problem, focus),
        back_url: url("/console/secrets", &[("region", region)]),
    };
    render(StatusCode::OK, &page)
}

pub async fn page(
    State(console): State<Arc<Console>>,
    request: Request,
) -> Result<Response, Response> {
    let (parts, _) = request.into_parts();
    let ctx = console.signed_in(&parts, true)?;
    let q = Form::from_query(parts.uri.query());
    let region = q
        .optional("region")
        .unwrap_or_else(|| console.default_region());
    ctx.region(&region)?;
    Ok(match ctx.draft(&q) {
        Some(Ok((form, problem))) => page_for(&ctx, &region, Some(&form), problem).await,
        Some(Err(problem)) => page_for(&ctx, &region, None, Some(problem)).await,
        None => page_for(&ctx, &region, None, None).await,
    })
}

/// The field an error of CreateSecret is about: the name for a clash or an invalid name, the
/// encryption key for a key that cannot be used (EncryptionFailure); else the form as a whole.
fn problem_of(e: &coffer_core::Error) -> Problem {
    use coffer_core::ErrorCode;
    let m = &e.message;
    if e.code == ErrorCode::ResourceExists || m.starts_with("Invalid name") || m.contains("'name'")
    {
        Problem::field("name", m.clone())
    } else if e.code == ErrorCode::EncryptionFailure || m.contains("'kmsKeyId'") {
        Problem::field("kms_key", m.clone())
    } else {
        Problem::form(m.clone())
    }
}

pub async fn submit(
    State(console): State<Arc<Console>>,
    request: Request,
) -> Result<Response, Response> {
    let (ctx, form) = console.posted(request).await?;
    let region_name = form.text("region");
    let region = ctx.region(&region_name)?;
    let again = new_url(&region_name);
    // "Add row", "Add tag", "Add more Regions" and a row's "Remove" show the form again
    // (Post/Redirect/Get), at the row they added.
    if let Some(more) = form.get("more") {
        let anchor = match more {
            "pair" => format!("#pair-key-{}", form.all("pair_key").count().max(1) + 1),
            "tag" => format!("#tag-key-{}", form.all("tag_key").count().max(1) + 1),
            _ => format!("#replica-region-{}", form.all("replica_region").count()),
        };
        return Ok(ctx.redirect_with_draft(&again, &form, None, &anchor));
    }
    if form.get("remove_row").is_some() {
        return Ok(ctx.redirect_with_draft(&again, &form, None, "#add-more-regions"));
    }
    let name = form.text("name");
    if name.is_empty() {
        let problem = Problem::field("name", "Enter a name for the secret.");
        return Ok(ctx.redirect_with_draft(&again, &form, Some(problem), ""));
    }
    let editor = ValueEditor::from_form(&form, false);
    let value = match editor.value() {
        Ok(v) => v,
        Err(p) => return Ok(ctx.redirect_with_draft(&again, &form, Some(p), "")),
    };
    let tags: Vec<TagInput> = tags_of(&form, false)
        .into_iter()
        .filter(|(k, v)| !k.is_empty() || !v.is_empty())
        .map(|(k, v)| TagInput {
            key: Some(k),
            value: Some(v),
        })
        .collect();
    let replicas = requested_regions(&form);
    let result = ctx
        .call(
            &region,
            SecretsManager::CreateSecret,
            create_secret::run,
            create_secret::Input {
                name: Some(name.clone()),
                client_request_token: Some(uuid::Uuid::new_v4().to_string()),
                description: form.optional("description"),
                kms_key_id: form.optional("kms_key"),
                secret_string: Some(value),
                secret_binary: None,
                tags: (!tags.is_empty()).then_some(tags),
                add_replica_regions: (!replicas.is_empty()).then_some(replicas),
                force_overwrite_replica_secret: None,
                secret_type: None,
            },
        )
        .await;
    match result {
        Ok(out) => {
            let mut text = format!("Stored the secret {}.", out.name);
            if let Some(status) = &out.replication_status {
                let regions: Vec<&str> = status.iter().map(|s| s.region.as_str()).collect();
                text.push_str(&format!(" Replication to {} started.", regions.join(", ")));
            }
            ctx.flash(false, text);
            Ok(see_other(&secret_url(&region_name, &out.name)))
        }
        Err(e) => Ok(ctx.redirect_with_draft(&again, &form, Some(problem_of(&e)), "")),
    }
}
