//! The console's pages, one module per screen of AWS's console.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{any, get, post};

use crate::{Console, Layout, assets, message, see_other};

mod auth;
mod create;
mod details;
mod keys;
mod list;
mod regions;
mod replication;
mod value;

pub(crate) fn routes() -> Router<Arc<Console>> {
    Router::new()
        .route("/console", get(home))
        .route("/console/", get(home))
        .route("/console/sign-in", get(auth::form).post(auth::sign_in))
        .route("/console/sign-out", post(auth::sign_out))
        .route("/console/secrets", get(list::page))
        .route(
            "/console/secrets/new",
            get(create::page).post(create::submit),
        )
        .route("/console/secret", get(details::page))
        .route("/console/secret/value", post(value::retrieve))
        .route("/console/secret/edit-value", get(value::edit))
        .route("/console/secret/put-value", post(value::put))
        .route("/console/secret/update", post(details::update))
        .route("/console/secret/tag", post(details::tag))
        .route("/console/secret/untag", post(details::untag))
        .route("/console/secret/policy", post(details::put_policy))
        .route(
            "/console/secret/policy/delete",
            post(details::delete_policy),
        )
        .route("/console/secret/rotation", post(details::rotation))
        .route(
            "/console/secret/rotation/cancel",
            post(details::cancel_rotation),
        )
        .route(
            "/console/secret/delete",
            get(details::delete_page).post(details::delete),
        )
        .route("/console/secret/restore", post(details::restore))
        .route(
            "/console/secret/replication",
            get(replication::section_fragment),
        )
        .route(
            "/console/secret/replicate",
            get(replication::add_page).post(replication::add_submit),
        )
        .route(
            "/console/secret/retry",
            get(replication::retry_page).post(replication::retry_submit),
        )
        .route(
            "/console/secret/remove-replica",
            get(replication::remove_page).post(replication::remove_submit),
        )
        .route(
            "/console/secret/promote",
            get(replication::promote_page).post(replication::promote_submit),
        )
        .route("/console/regions", get(regions::page))
        .route(
            "/console/regions/failover",
            get(regions::failover_page).post(regions::failover_submit),
        )
        .route("/console/keys", get(keys::page))
        .route("/console/keys/create", post(keys::create))
        .route("/console/keys/alias", post(keys::alias))
        .route("/console/keys/state", post(keys::state))
        .route("/console/static/{file}", get(assets::serve))
        .route("/console/{*rest}", any(not_found))
}

async fn home(State(console): State<Arc<Console>>, request: Request) -> Result<Response, Response> {
    let (parts, _) = request.into_parts();
    console.signed_in(&parts, true)?;
    Ok(see_other(&crate::form::url(
        "/console/secrets",
        &[("region", &console.default_region())],
    )))
}

async fn not_found() -> Response {
    message(
        StatusCode::NOT_FOUND,
        Layout::signed_out("Not found"),
        "Not found",
        "The console has no page at this address.",
        Some(("/console", "Go to the console")),
    )
}
