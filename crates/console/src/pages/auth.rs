//! Sign-in with an access key, and sign-out.

use std::sync::Arc;
use std::time::Instant;

use askama::Template;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;

use crate::form::Form;
use crate::session::{self, SIGN_IN_COOKIE, clear_cookie, set_cookie, tokens_match};
use crate::{Console, Layout, message, render, same_origin, see_other};

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    layout: Layout,
    token: String,
    next: String,
    access_key_id: String,
    error: Option<String>,
    notice: Option<String>,
}

/// Where to go after signing in: a console page, never another site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/console/")
                && !n.contains("//")
                && !n.contains('\\')
                && !n.starts_with("/console/sign-") =>
        {
            n.to_string()
        }
        _ => "/console".to_string(),
    }
}

fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

fn sign_in_page(
    status: StatusCode,
    next: String,
    id: String,
    error: Option<String>,
    notice: Option<String>,
    headers: &HeaderMap,
) -> Response {
    // A double-submit token: the sign-in POST must carry the value of this cookie, which only
    // a page of this origin could have read into the form. A browser that has one keeps it, so
    // two tabs on the sign-in page do not invalidate each other's form.
    let token = headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|c| session::cookie_values(c, SIGN_IN_COOKIE).next())
        .filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_string)
        .unwrap_or_else(session::random_token);
    let page = SignInPage {
        layout: Layout::signed_out("Sign in"),
        token: token.clone(),
        next,
        access_key_id: id,
        error,
        notice,
    };
    with_cookie(render(status, &page), &set_cookie(SIGN_IN_COOKIE, &token))
}

pub async fn form(State(console): State<Arc<Console>>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let query = Form::from_query(parts.uri.query());
    let next = safe_next(query.get("next"));
    if console.session_of(&parts.headers, false).is_some() {
        return see_other(&next);
    }
    // A refused sign-in comes back here (Post/Redirect/Get), saying why.
    let error = match query.get("refused") {
        Some("key") => Some("The access key ID or secret access key is not correct.".to_string()),
        Some(_) => Some("The sign-in form had expired. Enter your access key again.".to_string()),
        None => None,
    };
    let notice = if query.get("signed_out").is_some() {
        Some("You are signed out.".to_string())
    } else if query.get("next").is_some() {
        Some("Sign in to continue. Sessions end after a while without activity.".to_string())
    } else {
        None
    };
    let id = query.text("access_key_id");
    sign_in_page(StatusCode::OK, next, id, error, notice, &parts.headers)
}

/// Post/Redirect/Get for a refused sign-in: back to the form, with the reason and the access
/// key ID filled in again. The ID goes in the URL only when it looks like one (uppercase
/// letters and digits), so a secret access key pasted into the wrong field never does.
fn refused(next: &str, reason: &str, id: &str) -> Response {
    let looks_like_an_id = (16..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    let id = if looks_like_an_id { id } else { "" };
    see_other(&crate::form::url(
        "/console/sign-in",
        &[("next", next), ("refused", reason), ("access_key_id", id)],
    ))
}

pub async fn sign_in(State(console): State<Arc<Console>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if !same_origin(&parts.headers) {
        return message(
            StatusCode::FORBIDDEN,
            Layout::signed_out("Request refused"),
            "Request refused",
            "The console accepts forms only from its own pages.",
            Some(("/console/sign-in", "Sign in")),
        );
    }
    let Ok(bytes) = axum::body::to_bytes(Body::new(body), 16 * 1024).await else {
        return message(
            StatusCode::PAYLOAD_TOO_LARGE,
            Layout::signed_out("Sign in"),
            "Too large",
            "The sign-in form is larger than expected.",
            Some(("/console/sign-in", "Sign in")),
        );
    };
    let form = Form::parse(&bytes);
    let next = safe_next(form.get("next"));
    let token = form.get("token").unwrap_or_default();
    let cookies = parts
        .headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !session::cookie_values(cookies, SIGN_IN_COOKIE).any(|c| tokens_match(c, token)) {
        if console.session_of(&parts.headers, false).is_some() {
            // Signed in meanwhile (in another tab): nothing to do but go on.
            return see_other(&next);
        }
        return refused(&next, "expired", "");
    }
    let id = form.text("access_key_id");
    let origin = crate::audit::Origin::of(&parts);
    // Fail closed: with a log known to be unwritable, nobody signs in (nothing they did would
    // be recorded).
    if console.audit.as_ref().is_some_and(|l| l.is_poisoned()) {
        return not_recorded_page(next, id, &parts.headers);
    }
    // Throttled before the key is looked up: per source address, and per key id for failures.
    let now = Instant::now();
    let throttled = console
        .throttle
        .attempt_from(&origin.source_ip, now)
        .map_err(|wait| (wait, "from this address"))
        .and_then(|()| {
            console
                .throttle
                .key_may_try(&id, now)
                .map_err(|wait| (wait, "for this access key"))
        });
    if let Err((wait, what)) = throttled {
        tracing::warn!(access_key_id = %id, source_ip = %origin.source_ip, "Console sign-in throttled {what}");
        let mut response = sign_in_page(
            StatusCode::TOO_MANY_REQUESTS,
            next,
            id,
            Some(format!(
                "Too many sign-in attempts {what}. Try again in {} seconds.",
                wait.as_secs().max(1)
            )),
            None,
            &parts.headers,
        );
        if let Ok(v) = wait.as_secs().max(1).to_string().parse() {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return response;
    }
    let secret = form.secret("secret_access_key");
    let key = console.credentials.current_access_key(&id).await;
    let accepted = match &key {
        Some(k) => tokens_match(&k.secret_access_key, &secret),
        None => {
            // Same work as for a known key, so timing does not tell which ids exist.
            let _ = tokens_match("coffer-console-no-such-access-key", &secret);
            false
        }
    };
    // The attempt is recorded in the Region the console opens on (CloudTrail records a
    // sign-in in the Region of the sign-in endpoint; the console has no other).
    if let Some(log) = &console.audit
        && let Err(e) = log
            .append(&crate::audit::sign_in_record(
                &console.default_region(),
                &id,
                key.as_ref().map(|k| &k.caller),
                accepted,
                &origin,
            ))
            .await
    {
        tracing::error!(error = %e, "Console sign-in refused: its audit record cannot be written");
        return not_recorded_page(next, id, &parts.headers);
    }
    let Some(key) = key.filter(|_| accepted) else {
        console.throttle.key_failed(&id, now);
        tracing::warn!(access_key_id = %id, "Console sign-in refused");
        return refused(&next, "key", &id);
    };
    let (cookie, _) = console.sessions.start(&id, &key.caller.principal_arn, now);
    tracing::info!(access_key_id = %id, principal = %key.caller.principal_arn, "Console sign-in");
    with_cookie(see_other(&next), &set_cookie(session::COOKIE, &cookie))
}

/// The sign-in form again, saying the attempt could not be recorded (no session started).
fn not_recorded_page(next: String, id: String, headers: &HeaderMap) -> Response {
    sign_in_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        next,
        id,
        Some(
            "The sign-in could not be recorded in the audit log, so you were not signed in. Contact the administrator of this Coffer deployment.".into(),
        ),
        None,
        headers,
    )
}

pub async fn sign_out(
    State(console): State<Arc<Console>>,
    request: Request,
) -> Result<Response, Response> {
    let (ctx, _) = console.posted(request).await?;
    console.sessions.end(&ctx.session);
    tracing::info!(access_key_id = %ctx.session.access_key_id, "Console sign-out");
    Ok(with_cookie(
        see_other("/console/sign-in?signed_out=1"),
        &clear_cookie(session::COOKIE),
    ))
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_inside_the_console() {
        assert_eq!(
            safe_next(Some("/console/secret?region=x&name=a")),
            "/console/secret?region=x&name=a"
        );
        assert_eq!(safe_next(Some("https://evil.example/")), "/console");
        assert_eq!(safe_next(Some("//evil.example/console/")), "/console");
        assert_eq!(safe_next(Some("/console/..//evil")), "/console");
        assert_eq!(safe_next(Some("/console/sign-in")), "/console");
        assert_eq!(safe_next(None), "/console");
    }
}
