//! Coffer's web console, served at `/console` by `coffer serve`: server-rendered HTML
//! (askama templates in `templates/`), plain forms, and a vendored htmx for the parts that
//! refresh themselves. Every page reads without JavaScript.
//!
//! Every action calls the same `coffer_core::ops::*::run` as the API, as the signed-in user's
//! `Caller`, so the console's behaviour and errors are the API's; an error is shown with AWS's
//! message. Sign-in takes an access key id and secret access key (checked against the
//! deployment's keys in constant time); the session, its CSRF token and their rules are in
//! [`session`].
//!
//! A secret value is never put in a URL, a log line or a page until the user asks for it with
//! "Retrieve secret value" (a POST, answered with `Cache-Control: no-store`).

// Handlers answer early with a finished page (`Result<_, Response>`, axum's idiom); boxing
// the response would only add an allocation to every refusal.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use askama::Template;
use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use coffer_core::operation::Operation;
use coffer_core::{Caller, RegionService};

mod assets;
pub mod audit;
mod drafts;
mod form;
mod guidance;
mod pages;
pub mod session;
mod throttle;
mod view;

use drafts::Problem;
use form::Form;
use session::{Flash, Session, Sessions};

/// Where the console lives on the server.
pub const BASE: &str = "/console";
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Largest form accepted: a 64 KiB secret value, percent-encoded, plus the other fields.
const MAX_FORM_BYTES: usize = 512 * 1024;

/// How the console is served (`console`, `console_public`, `console_idle_timeout_secs` in
/// `coffer serve`'s config file).
#[derive(Clone, Debug)]
pub struct Settings {
    /// Serve the console at all (default: yes).
    pub enabled: bool,
    /// Also serve it when the listening address is not a loopback address (default: no).
    pub public: bool,
    /// A session ends after this long without a request (default: 15 minutes).
    pub idle_timeout: Duration,
    /// Where sessions are kept across restarts (none: in memory only).
    pub sessions_file: Option<std::path::PathBuf>,
    /// Sessions of one principal at most; a new one ends that principal's least recently used.
    pub max_sessions_per_principal: usize,
    /// Sign-in attempts a source address may make per minute.
    pub sign_in_per_address_per_minute: u32,
    /// Failed sign-ins an access key id may have per minute.
    pub sign_in_failures_per_key_per_minute: u32,
    /// The Region the console opens on after sign-in (`coffer serve`: the first of
    /// `--regions`, the Region of the AWS config it writes); `None` or a Region this node
    /// does not serve: the first of its Regions by name.
    pub default_region: Option<String>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            enabled: true,
            public: false,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            sessions_file: None,
            max_sessions_per_principal: session::DEFAULT_PER_PRINCIPAL,
            sign_in_per_address_per_minute: 30,
            sign_in_failures_per_key_per_minute: 10,
            default_region: None,
        }
    }
}

impl Settings {
    /// Whether a listener bound to `ip` serves the console: on by default, but only on a
    /// loopback address unless `public` is set.
    pub fn serves(&self, ip: IpAddr) -> bool {
        self.enabled && (self.public || ip.is_loopback())
    }
}

/// An access key as the console needs it: the API's own (`Debug` never shows the secret).
pub use coffer_core::principals::Credential;

/// The access keys the deployment accepts (the API's own table, so a key that stops working
/// for the API also ends its console sessions).
pub trait Credentials: Send + Sync {
    /// The key as last known (the server's cache): asked on every console request.
    fn access_key(&self, access_key_id: &str) -> Option<Arc<Credential>>;

    /// The key as it is now (the server reads its IAM store when the cache has no fresh
    /// entry): asked at sign-in, so a key made Active again signs in at once.
    fn current_access_key<'a>(
        &'a self,
        access_key_id: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<Arc<Credential>>> + Send + 'a>>
    {
        Box::pin(std::future::ready(self.access_key(access_key_id)))
    }
}

pub struct Console {
    regions: BTreeMap<String, Arc<RegionService>>,
    /// Regions served by other nodes of the deployment (possible replica Regions).
    peers: BTreeSet<String>,
    credentials: Arc<dyn Credentials>,
    sessions: Sessions,
    throttle: throttle::SignInThrottle,
    default_region: Option<String>,
    /// Forms kept between a POST and the GET page that shows them again.
    drafts: drafts::Drafts,
    /// The audit log every console action and sign-in is recorded in (`None`: not recorded).
    audit: Option<Arc<coffer_audit::AuditLog>>,
}

/// The console's routes under [`BASE`], for `merge` into the server's router. Every
/// operation and sign-in attempt is recorded in `audit` (see [`audit`]).
pub fn router(
    regions: &HashMap<String, Arc<RegionService>>,
    peers: impl IntoIterator<Item = String>,
    credentials: Arc<dyn Credentials>,
    settings: &Settings,
    audit: Option<Arc<coffer_audit::AuditLog>>,
) -> Router {
    let console = Arc::new(Console {
        regions: regions
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        peers: peers.into_iter().collect(),
        credentials,
        sessions: {
            let sessions = Sessions::new(settings.idle_timeout)
                .with_per_principal(settings.max_sessions_per_principal);
            match &settings.sessions_file {
                Some(file) => sessions.with_file(file.clone()),
                None => sessions,
            }
        },
        throttle: throttle::SignInThrottle::new(
            settings.sign_in_per_address_per_minute,
            settings.sign_in_failures_per_key_per_minute,
        ),
        default_region: settings.default_region.clone(),
        drafts: drafts::Drafts::default(),
        audit,
    });
    pages::routes()
        .with_state(console)
        .layer(axum::middleware::map_response(security_headers))
}

/// What `/console` answers on a listener that does not serve the console, saying why.
pub fn unavailable(reason: String) -> Router {
    let reason = Arc::new(reason);
    let answer = move || {
        let reason = reason.clone();
        async move {
            (
                StatusCode::NOT_FOUND,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                reason.to_string(),
            )
                .into_response()
        }
    };
    Router::new()
        .route(BASE, axum::routing::any(answer.clone()))
        .route("/console/{*rest}", axum::routing::any(answer))
}

/// Headers on every console response: a strict content security policy (scripts and styles
/// from the console's own files only; no inline code, no eval), no framing, no referrer to
/// other sites (`same-origin`: with `no-referrer` browsers send `Origin: null` on form posts,
/// which the origin check must refuse), and no caching unless a handler allowed it (the
/// static files).
async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// A signed-in request: the session and the caller its access key stands for.
pub(crate) struct Ctx {
    pub console: Arc<Console>,
    pub session: Session,
    pub caller: Caller,
    /// The request's source address and User-Agent, for its audit records.
    pub origin: audit::Origin,
}

/// The frame every page shares (header, Region switcher, flash message).
pub(crate) struct Layout {
    pub title: String,
    pub signed_in: bool,
    pub csrf: String,
    pub principal: String,
    pub region: String,
    /// The Region switcher's choices: (Region, its label, selected).
    pub regions: Vec<(String, String, bool)>,
    pub flash: Option<Flash>,
    pub css: String,
    pub js: String,
    pub htmx: &'static str,
}

impl Layout {
    fn new(title: &str) -> Layout {
        Layout {
            title: title.to_string(),
            signed_in: false,
            csrf: String::new(),
            principal: String::new(),
            region: String::new(),
            regions: Vec::new(),
            flash: None,
            css: assets::css_url(),
            js: assets::js_url(),
            htmx: assets::HTMX_URL,
        }
    }

    pub fn signed_out(title: &str) -> Layout {
        Layout::new(title)
    }

    pub fn list_url(&self, region: &str) -> String {
        form::url("/console/secrets", &[("region", region)])
    }

    pub fn keys_url(&self, region: &str) -> String {
        form::url("/console/keys", &[("region", region)])
    }
}

#[derive(Template)]
#[template(path = "message.html")]
pub(crate) struct MessagePage {
    pub layout: Layout,
    pub heading: String,
    pub text: String,
    pub link: Option<(String, String)>,
}

pub(crate) fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

pub(crate) fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => html(status, body),
        Err(e) => {
            tracing::error!(error = %e, "Console template failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "The page could not be shown.",
            )
                .into_response()
        }
    }
}

pub(crate) fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

pub(crate) fn is_htmx(headers: &HeaderMap) -> bool {
    headers.contains_key("hx-request")
}

/// A plain page with a heading and a sentence, for refusals and errors.
pub(crate) fn message(
    status: StatusCode,
    layout: Layout,
    heading: &str,
    text: &str,
    link: Option<(&str, &str)>,
) -> Response {
    render(
        status,
        &MessagePage {
            layout,
            heading: heading.to_string(),
            text: text.to_string(),
            link: link.map(|(a, b)| (a.to_string(), b.to_string())),
        },
    )
}

/// Whether a POST comes from a console page: a cross-site `Origin` or `Sec-Fetch-Site` is
/// refused outright (the CSRF token is checked as well).
fn same_origin(headers: &HeaderMap) -> bool {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if matches!(get("sec-fetch-site"), Some("cross-site" | "same-site")) {
        return false;
    }
    match (get("origin"), get("host")) {
        (None, _) => true,
        (Some(origin), Some(host)) => {
            let origin_host = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"));
            origin_host == Some(host)
        }
        (Some(_), None) => false,
    }
}

impl Console {
    fn region(&self, name: &str) -> Option<Arc<RegionService>> {
        self.regions.get(name).cloned()
    }

    fn default_region(&self) -> String {
        match &self.default_region {
            Some(r) if self.regions.contains_key(r) => r.clone(),
            _ => self.regions.keys().next().cloned().unwrap_or_default(),
        }
    }

    fn session_of(&self, headers: &HeaderMap, touch: bool) -> Option<Session> {
        let cookies = headers.get(header::COOKIE)?.to_str().ok()?;
        let now = Instant::now();
        session::cookie_values(cookies, session::COOKIE)
            .find_map(|value| self.sessions.resume(value, now, touch))
    }

    /// The signed-in user of a request, or the response that turns it away: a page load goes
    /// to the sign-in page; anything else gets 401.
    pub(crate) fn signed_in(self: &Arc<Self>, parts: &Parts, touch: bool) -> Result<Ctx, Response> {
        let session = self.session_of(&parts.headers, touch);
        let key = session
            .as_ref()
            .and_then(|s| self.credentials.access_key(&s.access_key_id));
        match (session, key) {
            (Some(session), Some(key)) => Ok(Ctx {
                console: self.clone(),
                session,
                caller: key.caller.clone(),
                origin: audit::Origin::of(parts),
            }),
            (session, _) => {
                if let Some(s) = session {
                    // The access key was deleted or rotated away: the session ends with it.
                    self.sessions.end(&s);
                }
                Err(turn_away(parts))
            }
        }
    }

    /// A signed-in POST and its form, after the origin and CSRF checks.
    pub(crate) async fn posted(
        self: &Arc<Self>,
        request: Request,
    ) -> Result<(Ctx, Form), Response> {
        let (parts, body) = request.into_parts();
        if !same_origin(&parts.headers) {
            return Err(message(
                StatusCode::FORBIDDEN,
                Layout::signed_out("Request refused"),
                "Request refused",
                "The console accepts forms only from its own pages.",
                Some(("/console", "Go to the console")),
            ));
        }
        let ctx = self.signed_in(&parts, true)?;
        let Ok(bytes) = axum::body::to_bytes(Body::new(body), MAX_FORM_BYTES).await else {
            return Err(message(
                StatusCode::PAYLOAD_TOO_LARGE,
                ctx.layout("Too large", ""),
                "Too large",
                "The form is larger than the console accepts.",
                None,
            ));
        };
        let form = Form::parse(&bytes);
        let presented = parts
            .headers
            .get(session::CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .or_else(|| form.get(session::CSRF_FIELD))
            .unwrap_or_default();
        if !ctx.session.csrf_matches(presented) {
            tracing::warn!(
                access_key_id = %ctx.session.access_key_id,
                path = %parts.uri.path(),
                "Console form refused: missing or wrong CSRF token"
            );
            return Err(message(
                StatusCode::FORBIDDEN,
                ctx.layout("Request refused", ""),
                "Request refused",
                "The form did not carry this session's security token, so nothing was changed. Reload the page and try again.",
                None,
            ));
        }
        Ok((ctx, form))
    }
}

fn turn_away(parts: &Parts) -> Response {
    let sign_in = "/console/sign-in";
    if parts.method == Method::GET && !is_htmx(&parts.headers) {
        let next = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or(BASE);
        return see_other(&form::url(sign_in, &[("next", next)]));
    }
    let mut response = message(
        StatusCode::UNAUTHORIZED,
        Layout::signed_out("Signed out"),
        "You are not signed in",
        "Your session has ended or was never started, so nothing was changed. Sign in again.",
        Some((sign_in, "Sign in")),
    );
    if is_htmx(&parts.headers) {
        response
            .headers_mut()
            .insert("hx-redirect", HeaderValue::from_static(sign_in));
    }
    response
}

impl Ctx {
    pub fn layout(&self, title: &str, region: &str) -> Layout {
        let console = &self.console;
        let region = if region.is_empty() {
            console.default_region()
        } else {
            region.to_string()
        };
        Layout {
            signed_in: true,
            csrf: self.session.csrf.clone(),
            principal: self.caller.principal_arn.clone(),
            regions: console
                .regions
                .keys()
                .map(|r| (r.clone(), view::region_label(r), *r == region))
                .collect(),
            region,
            flash: console.sessions.take_flash(&self.session),
            ..Layout::new(title)
        }
    }

    pub fn flash(&self, error: bool, text: impl Into<String>) {
        self.console.sessions.set_flash(
            &self.session,
            Flash {
                error,
                text: text.into(),
            },
        );
    }

    /// Flashes what a call did: `Ok(text)` as news, a refusal's message as an error.
    pub fn flash_outcome(&self, outcome: coffer_core::Result<String>) {
        match outcome {
            Ok(text) => self.flash(false, text),
            Err(e) => self.flash(true, e.message),
        }
    }

    /// Post/Redirect/Get: keeps `form` (with what was wrong with it) and answers 303 to the GET
    /// page `page` (a URL with a query), which shows it again, scrolled to `anchor`.
    pub fn redirect_with_draft(
        &self,
        page: &str,
        form: &Form,
        problem: Option<Problem>,
        anchor: &str,
    ) -> Response {
        let id = self.console.drafts.save(&self.session, form, problem);
        see_other(&format!("{page}&draft={id}{anchor}"))
    }

    /// The draft a GET page's query names (`None`: it names none); a draft that is gone (too
    /// old, or another session's) is the problem that says so.
    pub fn draft(&self, query: &Form) -> Option<Result<(Form, Option<Problem>), Problem>> {
        let id = query.get("draft")?;
        Some(self.console.drafts.load(&self.session, id).ok_or_else(|| {
            Problem::form(
                "What you typed in this form is no longer kept (it is kept for 15 minutes, for this session only). Fill it in again.",
            )
        }))
    }

    /// The Region a request names, or a page saying this node does not serve it.
    pub fn region(&self, name: &str) -> Result<Arc<RegionService>, Response> {
        self.console.region(name).ok_or_else(|| {
            message(
                StatusCode::NOT_FOUND,
                self.layout("Region not served", ""),
                "Region not served",
                &format!(
                    "This node does not serve the Region '{name}'. Choose one of its Regions in the switcher above."
                ),
                None,
            )
        })
    }

    /// Runs an operation as the signed-in user and records it in the audit log like an API
    /// call (see [`audit`]): the one place every console page runs an operation. Fails
    /// closed: refused before it runs when the log is poisoned, and an error
    /// ([`audit::not_recorded`]) instead of its result when its record cannot be written.
    pub async fn call<Op, I, O, F>(
        &self,
        region: &RegionService,
        operation: Op,
        f: F,
        input: I,
    ) -> coffer_core::Result<O>
    where
        Op: Operation,
        I: serde::Serialize,
        O: serde::Serialize,
        F: AsyncFnOnce(&RegionService, &Caller, I) -> coffer_core::Result<O>,
    {
        // Taken before the input is moved into the operation; redacted at once.
        let parameters = self
            .console
            .audit
            .as_ref()
            .map(|_| audit::request_parameters(&input));
        let run = f(region, &self.caller, input);
        self.recorded(region, operation, parameters, run).await
    }

    /// A KMS operation (the keys page); `params` is its request as the KMS API takes it
    /// (`{"KeyId": ...}`).
    pub async fn kms<I, F>(
        &self,
        region: &RegionService,
        operation: coffer_core::kms::Operation,
        f: F,
        params: serde_json::Value,
    ) -> coffer_core::Result<serde_json::Value>
    where
        I: serde::de::DeserializeOwned,
        F: AsyncFnOnce(&RegionService, &Caller, I) -> coffer_core::Result<serde_json::Value>,
    {
        let parameters = self
            .console
            .audit
            .as_ref()
            .map(|_| audit::request_parameters(&params));
        let input: I = serde_json::from_value(params)
            .map_err(|e| coffer_core::Error::validation(e.to_string()))?;
        let run = f(region, &self.caller, input);
        self.recorded(region, operation, parameters, run).await
    }

    /// Runs `run` (the operation `operation`) and records it with its request `parameters`
    /// (`None`: there is no audit log).
    async fn recorded<Op: Operation, O: serde::Serialize>(
        &self,
        region: &RegionService,
        operation: Op,
        parameters: Option<serde_json::Value>,
        run: impl std::future::Future<Output = coffer_core::Result<O>>,
    ) -> coffer_core::Result<O> {
        let started = Instant::now();
        let log = self.console.audit.as_ref();
        if log.is_some_and(|l| l.is_poisoned()) {
            return Err(audit::not_recorded(audit::NotRecorded::BeforeRunning));
        }
        let mut result = run.await;
        // A refusal for want of an audit record is logged where it happens, below.
        let mut logged = false;
        if let (Some(log), Some(parameters)) = (log, parameters) {
            let record = audit::operation_record(
                operation,
                &region.region,
                &self.caller,
                &self.session.access_key_id,
                &self.origin,
                parameters,
                &result,
            );
            if let Err(e) = log.append(&record).await {
                tracing::error!(operation = operation.name(), error = %e, "Console action refused: its audit record cannot be written");
                logged = true;
                result = Err(audit::not_recorded(if record.read_only {
                    audit::NotRecorded::Read
                } else {
                    audit::NotRecorded::Change
                }));
            }
        }
        let micros = started.elapsed().as_micros() as u64;
        let (region, operation) = (region.region.as_str(), operation.name());
        let principal = self.caller.principal_arn.as_str();
        match &result {
            // As the API logs a request (`api::log_failure`): a server failure once, at error,
            // with its cause; everything else at debug.
            Err(e) if e.is_server_error() && !logged => {
                let cause = coffer_core::error::causes(e);
                let cause = cause.as_deref().unwrap_or("none recorded");
                let code = e.code.as_str();
                tracing::error!(
                    region,
                    operation,
                    principal,
                    code,
                    cause,
                    micros,
                    "Console request failed"
                );
            }
            _ => tracing::debug!(
                region,
                operation,
                principal,
                outcome = result.as_ref().err().map_or("ok", |e| e.code.as_str()),
                micros,
                "Console request served"
            ),
        }
        result
    }
}

#[cfg(test)]
mod tests;
