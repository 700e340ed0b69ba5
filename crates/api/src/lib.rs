//! The HTTP face of Coffer: one `POST /` for the AWS JSON 1.1 API (dispatch on
//! `X-Amz-Target`), SigV4 on every request, AWS-shaped errors, and `GET /health`.
//!
//! The handler takes the raw body bytes, never a parsed `Json<T>`: SigV4 hashes the exact
//! bytes the client sent (boto3's JSON has spaces), and every error must leave in AWS's shape.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use coffer_core::error::Chain;
use coffer_core::{Caller, Error, ErrorCode, RegionService};
use coffer_replication::Topology;
use coffer_sigv4::{SigV4Error, Verifier};

pub use coffer_console::Settings as ConsoleSettings;

mod audit;
pub mod edge;
mod iam;
pub mod principals;
mod query;
pub mod tls;

pub use coffer_core::principals::{Credential, Principals};

/// Largest request body accepted. A 64 KiB binary secret is ~87 KiB of base64; the rest is
/// headroom for the other members.
pub const MAX_BODY_BYTES: usize = 512 * 1024;

const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// Everything one node serves: its Regions (with their peers) and the access keys it accepts.
pub struct Deployment {
    pub regions: HashMap<String, Arc<RegionService>>,
    pub topology: Arc<Topology>,
    pub credentials: RwLock<HashMap<String, Arc<Credential>>>,
    /// How the web console at /console is served (default: on, loopback addresses only).
    pub console: coffer_console::Settings,
    /// Where every call on `POST /` is recorded (see `audit.rs`); `None` records nothing.
    pub audit: Option<Arc<coffer_audit::AuditLog>>,
    /// The connection edge's limits (`edge.rs`); `max_body_bytes` also bounds `POST /`.
    pub limits: edge::Limits,
    /// The node's supervised background workers (purge, replication), in `/metrics`.
    pub workers: Arc<coffer_replication::workers::Workers>,
    /// The IAM store behind `credentials` (see `principals.rs`); unset: a fixed set of keys.
    principals: std::sync::OnceLock<Arc<Principals>>,
    verifier: Verifier,
}

impl Deployment {
    pub fn new(
        topology: Arc<Topology>,
        credentials: HashMap<String, Arc<Credential>>,
    ) -> Deployment {
        Deployment {
            regions: topology.local.clone(),
            topology,
            credentials: RwLock::new(credentials),
            console: coffer_console::Settings::default(),
            audit: None,
            limits: edge::Limits::default(),
            workers: Arc::default(),
            principals: std::sync::OnceLock::new(),
            verifier: Verifier::new(),
        }
    }

    fn credential(&self, access_key_id: &str) -> Option<Arc<Credential>> {
        self.credentials
            .read()
            .expect("credentials lock")
            .get(access_key_id)
            .cloned()
    }
}

pub fn router(deployment: Arc<Deployment>) -> Router {
    Router::new()
        .route("/", post(handle))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route(coffer_replication::transport::PATH, post(replication))
        .fallback(not_found)
        .with_state(deployment)
}

/// The console signs in with the same access keys the API verifies.
impl coffer_console::Credentials for Deployment {
    fn access_key(&self, access_key_id: &str) -> Option<Arc<Credential>> {
        self.credential(access_key_id)
    }

    fn current_access_key<'a>(
        &'a self,
        access_key_id: &'a str,
    ) -> std::pin::Pin<Box<dyn Future<Output = Option<Arc<Credential>>> + Send + 'a>> {
        Box::pin(self.resolve_credential(access_key_id))
    }
}

/// The API's router plus the web console under /console when `console` is true (else
/// /console says why it is not served).
pub fn router_with_console(deployment: Arc<Deployment>, console: bool) -> Router {
    let web = if console {
        coffer_console::router(
            &deployment.regions,
            deployment.topology.peers.keys().cloned(),
            deployment.clone(),
            &deployment.console,
            deployment.audit.clone(),
        )
    } else if deployment.console.enabled {
        coffer_console::unavailable(
            "The web console is served only when Coffer listens on a loopback address. Set console_public = true in the config file to serve it on this address (put TLS in front of it).".into(),
        )
    } else {
        coffer_console::unavailable("The web console is turned off (console = false).".into())
    };
    router(deployment).merge(web)
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    deployment: Arc<Deployment>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, deployment, edge::plaintext(), shutdown).await
}

/// [`serve`] with the given handshake (plain HTTP or TLS, see `edge.rs`).
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    deployment: Arc<Deployment>,
    handshake: edge::Handshake,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let console = deployment.console.serves(addr.ip());
    if console {
        let tls = deployment.topology.self_url.starts_with("https://");
        let scheme = if tls { "https" } else { "http" };
        tracing::info!(url = %format!("{scheme}://{addr}/console"), "Web console is served");
    }
    let limits = deployment.limits.clone();
    let api: edge::Api = {
        let deployment = deployment.clone();
        Arc::new(move |request| Box::pin(handle(State(deployment.clone()), request)))
    };
    let app = router_with_console(deployment, console);
    edge::serve(listener, app, api, limits, handshake, shutdown).await
}

async fn health(State(deployment): State<Arc<Deployment>>) -> Response {
    let mut regions: Vec<&str> = deployment.regions.keys().map(String::as_str).collect();
    regions.sort();
    let body = serde_json::json!({"status": "ok", "regions": regions});
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Prometheus text format: replication lag, queue depth and delivery outcomes.
async fn metrics(State(deployment): State<Arc<Deployment>>) -> Response {
    for region in deployment.regions.values() {
        if let Ok(depths) = region.store.replication_depth(&region.region).await {
            deployment
                .topology
                .metrics
                .set_depths(&region.region, &depths);
        }
        match coffer_core::failover::replication_points(region).await {
            Ok(points) => deployment.topology.metrics.set_points(&points),
            Err(e) => {
                tracing::warn!(region = %region.region, error = %coffer_core::error::Chain(&e), "Replication point could not be measured")
            }
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        deployment.topology.metrics.render() + &deployment.workers.render(),
    )
        .into_response()
}

/// Sealed replication messages from other Regions (of this node or of peers). The seal, not
/// SigV4, authenticates them: only the source Region's key can have made it.
async fn replication(State(deployment): State<Arc<Deployment>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    use coffer_replication::transport::{DEST_HEADER, KIND_HEADER, SOURCE_HEADER};
    // Refused on the headers alone, before any of the body is read: an unknown or unproven
    // sender, or a length beyond the bound, costs the node no memory.
    let length = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let refused = coffer_replication::receive::admit(
        &deployment.topology,
        &header(SOURCE_HEADER),
        &header(DEST_HEADER),
        &header(KIND_HEADER),
        length,
        &header(coffer_replication::proof::PROOF_HEADER),
        coffer_replication::proof::now_secs(),
    );
    if let Some(reply) = refused {
        return (
            StatusCode::from_u16(reply.status).unwrap_or(StatusCode::FORBIDDEN),
            [(header::CONNECTION, "close")],
            reply.body,
        )
            .into_response();
    }
    let limit = length.unwrap_or(0) as usize;
    let Ok(body) = axum::body::to_bytes(Body::new(body), limit).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "message too large").into_response();
    };
    let reply = coffer_replication::receive::receive(
        &deployment.topology,
        &header(SOURCE_HEADER),
        &header(DEST_HEADER),
        &header(KIND_HEADER),
        &body,
    )
    .await;
    (
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        reply.body,
    )
        .into_response()
}

async fn not_found() -> Response {
    let request_id = request_id();
    error_response(
        &request_id,
        StatusCode::NOT_FOUND,
        "UnknownOperationException",
        "Coffer serves the AWS API on POST / and its health on GET /health.",
    )
}

fn error_response(request_id: &str, status: StatusCode, code: &str, message: &str) -> Response {
    error_response_with(request_id, status, code, "Message", message)
}

/// The member the message goes in: `Message` for Secrets Manager; `message` for KMS, whose
/// error shapes name it so (clients read it from there: boto3's `response["message"]`).
fn error_response_with(
    request_id: &str,
    status: StatusCode,
    code: &str,
    member: &str,
    message: &str,
) -> Response {
    let body = serde_json::json!({"__type": code, member: message}).to_string();
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(JSON_CONTENT_TYPE),
    );
    if let Ok(v) = HeaderValue::from_str(code) {
        headers.insert("x-amzn-ErrorType", v);
    }
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-RequestId", v);
    }
    response
}

fn api_error(request_id: &str, err: &Error, member: &str) -> Response {
    let status = StatusCode::from_u16(err.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    error_response_with(request_id, status, err.code.as_str(), member, &err.message)
}

fn auth_error(request_id: &str, err: &SigV4Error) -> Response {
    error_response(
        request_id,
        StatusCode::BAD_REQUEST,
        err.code(),
        &err.message(),
    )
}

/// `POST /`: every call, whatever its service and outcome, is recorded in the audit log
/// before its response leaves (see `audit.rs`).
async fn handle(State(deployment): State<Arc<Deployment>>, request: Request) -> Response {
    let request_id = request_id();
    let mut facts = audit::Facts::new(&request);
    if let Some(refused) = audit::refuse(&deployment, &request_id, &facts) {
        return refused;
    }
    let response = serve_api(&deployment, &request_id, request, &mut facts).await;
    audit::finish(&deployment, &request_id, facts, response).await
}

async fn serve_api(
    deployment: &Arc<Deployment>,
    request_id: &str,
    request: Request,
    facts: &mut audit::Facts,
) -> Response {
    let started = std::time::Instant::now();
    let (parts, body) = request.into_parts();
    let limit = deployment.limits.max_body_bytes;
    let too_large = || {
        error_response(
            request_id,
            StatusCode::PAYLOAD_TOO_LARGE,
            "SerializationException",
            &format!("The request body is larger than {limit} bytes."),
        )
    };
    // Refused on its Content-Length before any of it is read.
    if parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > limit as u64)
    {
        let mut response = too_large();
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    let body = match axum::body::to_bytes(Body::new(body), limit).await {
        Ok(b) => b,
        Err(e) if edge::is_body_timeout(&e) => {
            return edge::request_timeout_response(&format!(
                "The request body was not received within {} seconds.",
                deployment.limits.body_read_timeout.as_secs()
            ));
        }
        Err(_) => return too_large(),
    };
    facts.body = body.clone();
    if iam::is_query(&parts.headers) {
        return Box::pin(iam::handle(deployment, request_id, &parts, &body, facts)).await;
    }
    let (service, operation) = target(&parts.headers).unwrap_or_default();
    let auth = match facts.take_auth(&parts.headers) {
        Ok(a) => a,
        Err(e) => return auth_error(request_id, &e),
    };
    let expected_service = match service.as_str() {
        "secretsmanager" => "secretsmanager",
        "TrentService" => "kms",
        // Coffer's own operations are signed as Secrets Manager calls (the same profile).
        "Coffer" => "secretsmanager",
        _ => auth.service.as_str(),
    };
    if auth.service != expected_service {
        return auth_error(request_id, &SigV4Error::wrong_service(expected_service));
    }
    let Some(region) = deployment.regions.get(&auth.region).cloned() else {
        return auth_error(request_id, &SigV4Error::invalid_region(&auth.region));
    };
    let Some(credential) = deployment.resolve_credential(&auth.access_key_id).await else {
        return error_response(
            request_id,
            StatusCode::BAD_REQUEST,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        );
    };
    if let Err(e) = deployment.verifier.verify(
        &auth,
        &parts.method,
        &parts.uri,
        &parts.headers,
        &body,
        &credential.secret_access_key,
        chrono::Utc::now(),
    ) {
        return auth_error(request_id, &e);
    }
    facts.authenticated(&credential.caller);
    // The request facts policies test (aws:SourceIp, aws:SecureTransport), on a per-request
    // copy of the caller: the client as the edge established it (edge::client_of: a trusted
    // proxy's forwarding headers, else the TCP peer and whether it spoke TLS).
    let mut caller = credential.caller.clone();
    request_facts(&mut caller, &parts);
    // The branches other than Secrets Manager's are boxed: a future holds the state of every
    // branch it may take, and this one is moved at every layer above it (into the handler's
    // box, through the request timeout), so it is kept small. Secrets Manager's operations
    // box themselves (`coffer_core::ops::call`).
    let result = if service == "secretsmanager" {
        coffer_core::ops::dispatch(&region, &caller, &operation, &body).await
    } else if service == "Coffer" {
        Box::pin(async {
            // Failback talks to the old primary Region's node: it needs the replication
            // transport.
            let failback =
                coffer_replication::failback::run(&deployment.topology, &region, &caller, &body);
            coffer_core::failover::dispatch(&region, &caller, &operation, &body, failback).await
        })
        .await
    } else if service == "TrentService" {
        // This node's Regions and its peers' (ReplicateKey).
        let regions = &*deployment.topology;
        Box::pin(coffer_core::kms::dispatch(
            &region, &caller, &operation, &body, regions,
        ))
        .await
    } else {
        Err(Error::new(
            ErrorCode::UnknownOperation,
            format!(
                "The X-Amz-Target header must name a Secrets Manager operation, as in 'secretsmanager.GetSecretValue'; got '{service}{}{operation}'.",
                if service.is_empty() { "" } else { "." }
            ),
        ))
    };
    let served = Served {
        request_id,
        service: &service,
        region: Some(&region.region),
        operation: &operation,
        micros: started.elapsed().as_micros() as u64,
    };
    answer(&served, result)
}

/// The response to a call of the JSON protocol, and its log line: where a `core::Error`
/// becomes the AWS shape, once.
fn answer(served: &Served, result: coffer_core::Result<Vec<u8>>) -> Response {
    let request_id = served.request_id;
    let member = if served.service == "TrentService" {
        "message"
    } else {
        "Message"
    };
    match result {
        Ok(bytes) => {
            served.log(StatusCode::OK, "", None);
            let mut response = (StatusCode::OK, bytes).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(JSON_CONTENT_TYPE),
            );
            if let Ok(v) = HeaderValue::from_str(request_id) {
                headers.insert("x-amzn-RequestId", v);
            }
            response
        }
        Err(e) => {
            let response = api_error(request_id, &e, member);
            served.log(
                response.status(),
                e.code.as_str(),
                std::error::Error::source(&e),
            );
            response
        }
    }
}

/// What the log line of a request names.
pub(crate) struct Served<'a> {
    pub request_id: &'a str,
    pub service: &'a str,
    /// `None` for IAM and STS, which are global.
    pub region: Option<&'a str>,
    pub operation: &'a str,
    pub micros: u64,
}

impl Served<'_> {
    /// The one log line of a request, at debug; for a server failure (5xx), at error with its
    /// cause chain, which the client never sees. A refusal (4xx) stays at debug: it is the
    /// client's mistake, already told to the client, and a busy node refuses many (a probe for
    /// a name that does not exist, a denied caller) that would flood the log at a higher level.
    /// The request itself is never logged: its body may hold a secret value.
    pub(crate) fn log(
        &self,
        status: StatusCode,
        code: &str,
        cause: Option<&(dyn std::error::Error + 'static)>,
    ) {
        macro_rules! line {
            ($level:ident, $($rest:tt)*) => {
                tracing::$level!(
                    request_id = self.request_id,
                    service = self.service,
                    region = self.region,
                    operation = self.operation,
                    status = status.as_u16(),
                    code,
                    micros = self.micros,
                    $($rest)*
                )
            };
        }
        if status.is_server_error() {
            let cause = cause.map(|c| Chain(c).to_string());
            let cause = cause.as_deref().unwrap_or("none recorded");
            line!(error, cause, "Request failed");
        } else if status.is_success() {
            line!(debug, "Request served");
        } else {
            line!(debug, "Request refused");
        }
    }
}

/// Sets `aws:SourceIp` and `aws:SecureTransport` from what the edge put on the request.
fn request_facts(caller: &mut Caller, parts: &http::request::Parts) {
    caller.source_ip = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    caller.secure_transport = parts
        .extensions
        .get::<edge::Transport>()
        .is_some_and(|t| t.tls);
}

/// `X-Amz-Target: secretsmanager.GetSecretValue` -> ("secretsmanager", "GetSecretValue").
fn target(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get("x-amz-target")?.to_str().ok()?;
    let (service, operation) = value.split_once('.')?;
    Some((service.to_string(), operation.to_string()))
}

/// A UUID-shaped request id from the thread-local CSPRNG (no system call per request, unlike
/// `Uuid::new_v4`).
fn request_id() -> String {
    uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .to_string()
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Mutex;

    use coffer_core::SystemClock;
    use coffer_store::{SqliteStore, Store};

    use super::*;

    /// Everything the log writes while a test runs.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        /// Captures every event of this thread, debug and up, until the guard drops.
        fn install() -> (Captured, tracing::subscriber::DefaultGuard) {
            let log = Captured::default();
            let writer = log.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::DEBUG)
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .finish();
            (log, tracing::subscriber::set_default(subscriber))
        }

        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    async fn body_of(response: Response) -> String {
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(body.to_vec()).unwrap()
    }

    /// A store that fails under a request (here: closed) is answered with AWS's generic
    /// InternalServiceError, and logged once, at error, with the store's error as the cause;
    /// the secret value the request carried is nowhere in the log.
    #[tokio::test]
    async fn a_server_failure_is_logged_once_with_its_cause_and_without_the_request() {
        let (log, _guard) = Captured::install();

        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("us-east-1.db"))
            .await
            .unwrap();
        store.close().await;
        let root_key = coffer_kms::RootKey::from_hex(&"ab".repeat(32)).unwrap();
        let region = RegionService::new(
            "us-east-1".into(),
            "aws",
            Arc::new(store),
            root_key,
            Arc::new(SystemClock),
        );
        let caller = Caller::administrator("111122223333", "arn:aws:iam::111122223333:root");
        let secret = "hunter2-the-secret-value";
        let body = serde_json::json!({
            "Name": "prod/db",
            "SecretString": secret,
            "ClientRequestToken": "00000000-0000-4000-8000-000000000001",
        })
        .to_string();
        let result =
            coffer_core::ops::dispatch(&region, &caller, "CreateSecret", body.as_bytes()).await;
        let error = result.as_ref().expect_err("the store is closed");
        let cause = std::error::Error::source(error)
            .expect("a store failure keeps its cause")
            .to_string();

        let served = Served {
            request_id: "req-1",
            service: "secretsmanager",
            region: Some("us-east-1"),
            operation: "CreateSecret",
            micros: 1,
        };
        let response = answer(&served, result);
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            body_of(response).await,
            r#"{"Message":"An error occurred on the server side.","__type":"InternalServiceError"}"#
        );

        let text = log.text();
        assert_eq!(text.matches("Request failed").count(), 1, "{text}");
        assert_eq!(text.matches(cause.as_str()).count(), 1, "{text}");
        let line = text.lines().find(|l| l.contains("Request failed")).unwrap();
        assert!(line.contains("ERROR") && line.contains(&cause), "{line}");
        assert!(
            line.contains("req-1") && line.contains("CreateSecret"),
            "{line}"
        );
        assert!(!text.contains(secret), "{text}");
    }

    /// A refusal is the client's mistake: one line at debug, no cause, nothing at error.
    #[tokio::test]
    async fn a_refusal_is_logged_at_debug_only() {
        let (log, _guard) = Captured::install();
        let served = Served {
            request_id: "req-2",
            service: "secretsmanager",
            region: Some("us-east-1"),
            operation: "GetSecretValue",
            micros: 1,
        };
        let response = answer(&served, Err(Error::not_found()));
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let text = log.text();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.contains("DEBUG") && text.contains("Request refused"),
            "{text}"
        );
        assert!(text.contains("ResourceNotFoundException"), "{text}");
    }
}
