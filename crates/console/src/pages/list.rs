//! Secrets of one Region: search (ListSecrets filters), primary/replica badge, pagination.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use coffer_core::ops::Operation as SecretsManager;
use coffer_core::ops::list_secrets;

use crate::form::{Form, url};
use crate::view::{Role, day, or_dash, secret_url, time};
use crate::{Console, Layout, render};

/// Rows per page unless the person picks another size.
pub const PAGE_SIZE: i64 = 20;
const PAGE_SIZES: &[i64] = &[10, 20, 50, 100];

/// The sortable columns, as ListSecrets' SortBy values, with the order a first click picks
/// (names A to Z, dates newest first, as AWS's console does).
const SORTS: &[(&str, &str, &str)] = &[
    ("name", "Name", "asc"),
    ("last-accessed-date", "Last retrieved", "desc"),
    ("last-changed-date", "Last changed", "desc"),
    ("created-date", "Created", "desc"),
];

/// A sortable column heading: its link (the other order when it is the sorted column) and its
/// `aria-sort`.
pub struct SortHeading {
    pub label: &'static str,
    pub url: String,
    pub aria_sort: &'static str,
}

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
    pub created: String,
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
    headings: Vec<SortHeading>,
    sort: String,
    order: String,
    sizes: Vec<(i64, bool)>,
    /// Secrets matching, over every page, as shown: `23`, or `1000+` past [`MAX_COUNTED`]
    /// (`None` when they could not be counted).
    total: Option<String>,
    first_shown: usize,
    last_shown: usize,
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
    let sort = q
        .optional("sort")
        .filter(|s| SORTS.iter().any(|(k, _, _)| k == s))
        .unwrap_or_else(|| "created-date".to_string());
    // Unsorted, the list is in ListSecrets' own order (oldest first).
    let order = match q.get("order") {
        Some("asc") => "asc",
        Some("desc") => "desc",
        _ if q.get("sort").is_none() => "asc",
        _ => SORTS
            .iter()
            .find(|(k, _, _)| *k == sort)
            .map_or("desc", |(_, _, o)| *o),
    }
    .to_string();
    let size = q
        .text("size")
        .parse::<i64>()
        .ok()
        .filter(|n| PAGE_SIZES.contains(n))
        .unwrap_or(PAGE_SIZE);
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
            SecretsManager::ListSecrets,
            list_secrets::run,
            list_secrets::Input {
                include_planned_deletion: Some(show_deleted),
                max_results: Some(size),
                next_token: pages.last().cloned(),
                filters: filters.clone(),
                sort_order: Some(order.clone()),
                sort_by: Some(sort.clone()),
            },
        )
        .await;
    let total = count(&ctx, &region, show_deleted, filters).await;
    let size_text = size.to_string();
    // A page of the list with these pages seen, sorted by `by` in `dir`.
    let link_sorted = |pages: &[String], by: &str, dir: &str| {
        let joined = pages.join(",");
        let mut params = vec![
            ("region", region_name.as_str()),
            ("sort", by),
            ("order", dir),
            ("size", size_text.as_str()),
        ];
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
    let link = |pages: &[String]| link_sorted(pages, &sort, &order);
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
                    created: time(s.created_date),
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
    let headings = SORTS
        .iter()
        .map(|(key, label, first)| {
            let sorted = *key == sort;
            let dir = match (sorted, order.as_str()) {
                (true, "asc") => "desc",
                (true, _) => "asc",
                (false, _) => first,
            };
            SortHeading {
                label,
                url: link_sorted(&[], key, dir),
                aria_sort: match (sorted, order.as_str()) {
                    (false, _) => "none",
                    (true, "asc") => "ascending",
                    (true, _) => "descending",
                },
            }
        })
        .collect();
    let first_shown = pages.len() * size as usize + 1;
    let last_shown = first_shown + rows.len() - usize::from(!rows.is_empty());
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
        headings,
        sort,
        order,
        sizes: PAGE_SIZES.iter().map(|n| (*n, *n == size)).collect(),
        total,
        first_shown,
        last_shown,
    };
    Ok(render(status, &page))
}

/// Secrets counted at most; past it the count shows as `1000+`.
const MAX_COUNTED: usize = 1000;

/// How many secrets match, over every page, for "Secrets (N)". ListSecrets has no count, so
/// this pages through it (100 at a time, up to [`MAX_COUNTED`]) as the signed-in user,
/// without an audit record per page: the list's own ListSecrets call is recorded, and this is
/// part of showing it. `None` when the list cannot be read.
async fn count(
    ctx: &crate::Ctx,
    region: &coffer_core::RegionService,
    show_deleted: bool,
    filters: Option<Vec<list_secrets::Filter>>,
) -> Option<String> {
    let mut total = 0;
    let mut token = None;
    while total < MAX_COUNTED {
        let out = list_secrets::run(
            region,
            &ctx.caller,
            list_secrets::Input {
                include_planned_deletion: Some(show_deleted),
                max_results: Some(100),
                next_token: token,
                filters: filters.clone(),
                sort_order: None,
                sort_by: None,
            },
        )
        .await
        .ok()?;
        total += out.secret_list.len();
        match out.next_token {
            Some(t) => token = Some(t),
            None => return Some(total.to_string()),
        }
    }
    Some(format!("{total}+"))
}
