//! Secrets of one Region: search (ListSecrets filters), primary/replica badge, pagination.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use coffer_core::ops::list_secrets;

use crate::form::{Form, url};
use crate::view::{Role, day, or_dash, secret_url, time};
use crate::{Console, Layout, render};

pub const PAGE_SIZE: i64 = 20;

/// The search fields, as ListSecrets filter keys.
const FIELDS: &[(&str, &str)] = &[
    ("all", "All fields"),
    ("name", "Name"),
    ("description", "Description"),
    ("tag-key", "Tag key"),
    ("tag-value", "Tag value"),
];

pub struct Row {
    /// The name, escaped, with a line-break opportunity after each "/".
    pub name_html: String,
    pub url: String,
    pub description: String,
    pub role: Role,
    pub last_accessed: String,
    pub last_changed: String,
    pub deleted: bool,
}

#[derive(Template)]
#[template(path = "secrets.html")]
struct ListPage {
    layout: Layout,
    region: String,
    rows: Vec<Row>,
    query: String,
    fields: Vec<(&'static str, &'static str, bool)>,
    show_deleted: bool,
    page: usize,
    previous: Option<String>,
    next: Option<String>,
    error: Option<String>,
    new_url: String,
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
    let query = q.get("q").unwrap_or_default().trim().to_string();
    let field = q
        .optional("field")
        .filter(|f| FIELDS.iter().any(|(k, _)| k == f))
        .unwrap_or_else(|| "all".to_string());
    let show_deleted = q.checked("deleted");
    // The tokens of the pages seen so far: the last one fetches this page.
    let pages: Vec<String> = q
        .get("pages")
        .unwrap_or_default()
        .split(',')
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    let filters = (!query.is_empty()).then(|| {
        vec![list_secrets::Filter {
            key: Some(field.clone()),
            values: Some(vec![query.clone()]),
        }]
    });
    let result = ctx
        .call(
            &region,
            "ListSecrets",
            list_secrets::run,
            list_secrets::Input {
                include_planned_deletion: Some(show_deleted),
                max_results: Some(PAGE_SIZE),
                next_token: pages.last().cloned(),
                filters,
                sort_order: None,
                sort_by: None,
            },
        )
        .await;
    let link = |pages: &[String]| {
        let joined = pages.join(",");
        let mut params = vec![("region", region_name.as_str())];
        if !query.is_empty() {
            params.push(("q", query.as_str()));
            params.push(("field", field.as_str()));
        }
        if show_deleted {
            params.push(("deleted", "on"));
        }
        if !joined.is_empty() {
            params.push(("pages", joined.as_str()));
        }
        url("/console/secrets", &params)
    };
    let (rows, next, error, status) = match result {
        Ok(out) => {
            let rows = out
                .secret_list
                .iter()
                .map(|s| Row {
                    name_html: crate::view::breakable_name(&s.name),
                    url: secret_url(&region_name, &s.name),
                    description: or_dash(s.description.as_deref()),
                    role: Role::of(s.primary_region.as_deref(), &region_name),
                    last_accessed: day(s.last_accessed_date),
                    last_changed: time(s.last_changed_date),
                    deleted: s.deleted_date.is_some(),
                })
                .collect();
            let next = out.next_token.map(|t| {
                let mut more = pages.clone();
                more.push(t);
                link(&more)
            });
            (rows, next, None, StatusCode::OK)
        }
        Err(e) => (Vec::new(), None, Some(e.message), StatusCode::BAD_REQUEST),
    };
    let fields = FIELDS.iter().map(|(k, l)| (*k, *l, *k == field)).collect();
    let previous = (!pages.is_empty()).then(|| link(&pages[..pages.len() - 1]));
    let page = ListPage {
        layout: ctx.layout(&format!("Secrets in {region_name}"), &region_name),
        new_url: url("/console/secrets/new", &[("region", &region_name)]),
        region: region_name,
        rows,
        query,
        fields,
        show_deleted,
        page: pages.len() + 1,
        previous,
        next,
        error,
    };
    Ok(render(status, &page))
}
