//! The console's sign-in, session and CSRF rules, through its router (no Region needed).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt;
use zeroize::Zeroizing;

use super::*;

const KEY_ID: &str = "AKIACONSOLETEST00001";
const SECRET: &str = "console-test-secret-access-key-0123456789";

struct Keys;

impl Credentials for Keys {
    fn access_key(&self, access_key_id: &str) -> Option<Arc<Credential>> {
        (access_key_id == KEY_ID).then(|| {
            Arc::new(Credential {
                secret_access_key: Zeroizing::new(SECRET.to_string()),
                caller: Caller::administrator(
                    "123456789012",
                    "arn:aws:iam::123456789012:user/admin",
                ),
            })
        })
    }
}

fn app() -> Router {
    app_with(None)
}

fn app_with(audit: Option<Arc<coffer_audit::AuditLog>>) -> Router {
    router(
        &HashMap::new(),
        Vec::new(),
        Arc::new(Keys),
        &Settings::default(),
        audit,
    )
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn get(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut b = Request::get(path).header(header::HOST, "127.0.0.1:7780");
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    b.body(Body::empty()).unwrap()
}

fn post(path: &str, cookie: Option<&str>, body: &str) -> Request<Body> {
    let mut b = Request::post(path)
        .header(header::HOST, "127.0.0.1:7780")
        .header(header::ORIGIN, "http://127.0.0.1:7780")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    b.body(Body::from(body.to_string())).unwrap()
}

fn set_cookies(headers: &axum::http::HeaderMap) -> Vec<String> {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

fn cookie_value(set_cookies: &[String], name: &str) -> Option<String> {
    set_cookies.iter().find_map(|c| {
        let first = c.split(';').next()?;
        let (k, v) = first.split_once('=')?;
        (k == name && !v.is_empty()).then(|| v.to_string())
    })
}

/// The value of hidden input `name` in a page.
fn hidden(body: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = body.find(&marker).expect("hidden field") + marker.len();
    body[start..].split('"').next().unwrap().to_string()
}

/// Signs in and returns (session cookie header, CSRF token).
async fn sign_in(app: &Router) -> (String, String) {
    let (status, headers, body) = send(app, get("/console/sign-in", None)).await;
    assert_eq!(status, StatusCode::OK);
    let token = cookie_value(&set_cookies(&headers), session::SIGN_IN_COOKIE).unwrap();
    assert_eq!(hidden(&body, "token"), token);
    let form = format!(
        "token={token}&next=%2Fconsole%2Fsecrets&access_key_id={KEY_ID}&secret_access_key={SECRET}"
    );
    let cookie = format!("{}={token}", session::SIGN_IN_COOKIE);
    let (status, headers, _) = send(app, post("/console/sign-in", Some(&cookie), &form)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/console/secrets");
    let cookies = set_cookies(&headers);
    let session_header = cookies
        .iter()
        .find(|c| c.starts_with(&format!("{}=", session::COOKIE)))
        .unwrap();
    assert!(session_header.contains("HttpOnly"));
    assert!(session_header.contains("SameSite=Strict"));
    assert!(session_header.contains("Path=/console"));
    let value = cookie_value(&cookies, session::COOKIE).unwrap();
    let cookie = format!("{}={value}", session::COOKIE);
    // The CSRF token is on every page of the session.
    let (_, _, body) = send(app, get("/console/secret?region=x&name=y", Some(&cookie))).await;
    let csrf = hidden(&body, "csrf");
    assert_eq!(csrf.len(), 64);
    (cookie, csrf)
}

#[tokio::test]
async fn pages_without_a_session_send_the_browser_to_sign_in() {
    let app = app();
    let (status, headers, _) = send(&app, get("/console/secrets?region=us-east-1", None)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        headers[header::LOCATION],
        "/console/sign-in?next=%2Fconsole%2Fsecrets%3Fregion%3Dus-east-1"
    );
}

#[tokio::test]
async fn posts_without_a_session_are_refused() {
    let app = app();
    let (status, _, body) = send(
        &app,
        post(
            "/console/secrets/new",
            None,
            "region=us-east-1&name=x&csrf=abc",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("nothing was changed"));
    let (status, _, _) = send(
        &app,
        post(
            "/console/secrets/new",
            Some("coffer_console=forged"),
            "name=x",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn sign_in_checks_the_secret_access_key() {
    let app = app();
    let (_, headers, _) = send(&app, get("/console/sign-in", None)).await;
    let token = cookie_value(&set_cookies(&headers), session::SIGN_IN_COOKIE).unwrap();
    let cookie = format!("{}={token}", session::SIGN_IN_COOKIE);
    for (id, secret) in [(KEY_ID, "wrong"), ("AKIAUNKNOWN", SECRET), (KEY_ID, "")] {
        let form = format!("token={token}&access_key_id={id}&secret_access_key={secret}");
        let (status, headers, _) = send(&app, post("/console/sign-in", Some(&cookie), &form)).await;
        // Post/Redirect/Get: back to the form, which says why.
        assert_eq!(status, StatusCode::SEE_OTHER, "{id}");
        assert!(cookie_value(&set_cookies(&headers), session::COOKIE).is_none());
        let location = headers[header::LOCATION].to_str().unwrap();
        assert!(location.contains("refused=key"), "{location}");
        assert!(!location.contains(SECRET));
        let (_, _, body) = send(&app, get(location, Some(&cookie))).await;
        assert!(body.contains("not correct"));
        assert!(!body.contains(SECRET));
    }
}

#[tokio::test]
async fn sign_in_needs_the_token_of_its_own_form() {
    let app = app();
    let form = format!("token=abc&access_key_id={KEY_ID}&secret_access_key={SECRET}");
    let (status, headers, _) = send(&app, post("/console/sign-in", None, &form)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        headers[header::LOCATION]
            .to_str()
            .unwrap()
            .contains("refused=expired")
    );
    assert!(cookie_value(&set_cookies(&headers), session::COOKIE).is_none());
    let cookie = format!("{}=other", session::SIGN_IN_COOKIE);
    let (status, headers, _) = send(&app, post("/console/sign-in", Some(&cookie), &form)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(cookie_value(&set_cookies(&headers), session::COOKIE).is_none());
}

#[tokio::test]
async fn posts_need_this_sessions_csrf_token() {
    let app = app();
    let (cookie, csrf) = sign_in(&app).await;
    let body = "region=nowhere-1&name=x";
    let (status, _, page) = send(&app, post("/console/secrets/new", Some(&cookie), body)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("security token"));
    let wrong = format!("{body}&csrf={}", "0".repeat(64));
    let (status, _, _) = send(&app, post("/console/secrets/new", Some(&cookie), &wrong)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // The right token, as a field or as htmx's header, gets through to the page's own checks
    // (here: this node serves no Region called nowhere-1).
    let right = format!("{body}&csrf={csrf}");
    let (status, _, _) = send(&app, post("/console/secrets/new", Some(&cookie), &right)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let mut request = post("/console/secrets/new", Some(&cookie), body);
    request
        .headers_mut()
        .insert(session::CSRF_HEADER, csrf.parse().unwrap());
    let (status, _, _) = send(&app, request).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn cross_site_posts_are_refused_even_with_a_token() {
    let app = app();
    let (cookie, csrf) = sign_in(&app).await;
    let body = format!("region=nowhere-1&csrf={csrf}");
    let mut request = post("/console/secrets/new", Some(&cookie), &body);
    request
        .headers_mut()
        .insert(header::ORIGIN, "http://evil.example".parse().unwrap());
    let (status, _, _) = send(&app, request).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let mut request = post("/console/secrets/new", Some(&cookie), &body);
    request
        .headers_mut()
        .insert("sec-fetch-site", "cross-site".parse().unwrap());
    let (status, _, _) = send(&app, request).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn sign_out_ends_the_session() {
    let app = app();
    let (cookie, csrf) = sign_in(&app).await;
    let (status, headers, _) = send(
        &app,
        post("/console/sign-out", Some(&cookie), &format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        set_cookies(&headers)
            .iter()
            .any(|c| c.starts_with("coffer_console=;") && c.contains("Max-Age=0"))
    );
    let (status, _, _) = send(&app, get("/console/secrets", Some(&cookie))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _, _) = send(
        &app,
        post("/console/sign-out", Some(&cookie), &format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn pages_are_never_cached_or_framed_and_htmx_is_cached_for_long() {
    let app = app();
    let (_, headers, body) = send(&app, get("/console/sign-in", None)).await;
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe"));
    assert!(body.contains(assets::HTMX_URL));
    let (status, headers, body) = send(&app, get(assets::HTMX_URL, None)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    assert!(body.contains("2.0.11"));
}

#[tokio::test]
async fn a_listener_that_does_not_serve_the_console_says_why() {
    let app = unavailable("Set console_public = true.".into());
    let (status, _, body) = send(&app, get("/console/secrets", None)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("console_public"));
}

#[test]
fn the_console_is_served_on_loopback_only_unless_public() {
    let default = Settings::default();
    assert!(default.serves(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    assert!(default.serves(IpAddr::V6(Ipv6Addr::LOCALHOST)));
    assert!(!default.serves(IpAddr::V4(Ipv4Addr::UNSPECIFIED)));
    assert!(!default.serves("192.0.2.10".parse().unwrap()));
    let public = Settings {
        public: true,
        ..Settings::default()
    };
    assert!(public.serves("192.0.2.10".parse().unwrap()));
    let off = Settings {
        enabled: false,
        ..Settings::default()
    };
    assert!(!off.serves(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    assert_eq!(default.idle_timeout, DEFAULT_IDLE_TIMEOUT);
}

fn audit_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn every_sign_in_attempt_is_recorded_without_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let log =
        Arc::new(coffer_audit::AuditLog::open(&path, coffer_audit::Options::default()).unwrap());
    let app = app_with(Some(log));
    let (_, headers, _) = send(&app, get("/console/sign-in", None)).await;
    let token = cookie_value(&set_cookies(&headers), session::SIGN_IN_COOKIE).unwrap();
    let cookie = format!("{}={token}", session::SIGN_IN_COOKIE);
    // A wrong secret for a known key, and the secret pasted into the id field.
    for (id, secret) in [(KEY_ID, "wrong-typed-secret"), (SECRET, SECRET)] {
        let form = format!("token={token}&access_key_id={id}&secret_access_key={secret}");
        let (status, headers, _) = send(&app, post("/console/sign-in", Some(&cookie), &form)).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let location = headers[header::LOCATION].to_str().unwrap();
        assert!(!location.contains(SECRET), "the secret never goes in a URL");
    }
    sign_in(&app).await;
    let records = audit_lines(&path);
    assert_eq!(records.len(), 3, "{records:?}");
    for r in &records {
        assert_eq!(r["eventSource"], "signin.amazonaws.com");
        assert_eq!(r["eventName"], "ConsoleLogin");
        assert_eq!(r["eventType"], "AwsConsoleSignIn");
        assert_eq!(r["sessionCredentialFromConsole"], "true");
    }
    assert_eq!(records[0]["responseElements"]["ConsoleLogin"], "Failure");
    assert_eq!(records[0]["errorMessage"], "Failed authentication");
    assert_eq!(records[0]["userIdentity"]["accessKeyId"], KEY_ID);
    assert_eq!(records[1]["responseElements"]["ConsoleLogin"], "Failure");
    assert_eq!(
        records[1]["userIdentity"],
        serde_json::json!({"type": "Unknown", "accessKeyId": coffer_audit::REDACTED})
    );
    assert_eq!(records[2]["responseElements"]["ConsoleLogin"], "Success");
    assert!(records[2].get("errorMessage").is_none());
    assert_eq!(
        records[2]["userIdentity"]["arn"],
        "arn:aws:iam::123456789012:user/admin"
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(SECRET));
    assert!(!text.contains("wrong-typed-secret"));
    let summary =
        coffer_audit::verify(std::io::BufReader::new(std::fs::File::open(&path).unwrap()))
            .unwrap()
            .unwrap();
    assert_eq!(summary.records, 3);
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_sign_in_that_cannot_be_recorded_starts_no_session() {
    let log = Arc::new(
        coffer_audit::AuditLog::open(
            std::path::Path::new("/dev/full"),
            coffer_audit::Options::default(),
        )
        .unwrap(),
    );
    let app = app_with(Some(log));
    let (_, headers, _) = send(&app, get("/console/sign-in", None)).await;
    let token = cookie_value(&set_cookies(&headers), session::SIGN_IN_COOKIE).unwrap();
    let cookie = format!("{}={token}", session::SIGN_IN_COOKIE);
    let form = format!("token={token}&access_key_id={KEY_ID}&secret_access_key={SECRET}");
    for _ in 0..2 {
        // The first attempt fails to write (and poisons the log); the second is refused
        // before its credentials are checked.
        let (status, headers, body) =
            send(&app, post("/console/sign-in", Some(&cookie), &form)).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            body.contains("could not be recorded in the audit log"),
            "{body}"
        );
        assert!(cookie_value(&set_cookies(&headers), session::COOKIE).is_none());
    }
}

#[test]
fn operation_records_have_the_api_shape_without_values() {
    use coffer_core::ops::create_secret;
    let input = create_secret::Input {
        name: Some("prod/db".into()),
        client_request_token: Some("tok".into()),
        description: None,
        kms_key_id: None,
        secret_string: Some(Zeroizing::new("hunter2-value".into())),
        secret_binary: None,
        tags: None,
        add_replica_regions: None,
        force_overwrite_replica_secret: None,
        secret_type: None,
    };
    let params = audit::request_parameters(&input);
    assert_eq!(
        params,
        serde_json::json!({"Name": "prod/db", "ClientRequestToken": "tok",
                           "SecretString": coffer_audit::REDACTED})
    );
    let caller = Caller::administrator("123456789012", "arn:aws:iam::123456789012:user/admin");
    let origin = audit::Origin {
        source_ip: "127.0.0.1".into(),
        user_agent: "Mozilla/5.0".into(),
    };
    let ok: coffer_core::Result<serde_json::Value> =
        Ok(serde_json::json!({"ARN": "arn", "Name": "prod/db"}));
    let r = audit::operation_record(
        coffer_core::ops::Operation::CreateSecret,
        "eu-west-1",
        &caller,
        KEY_ID,
        &origin,
        params.clone(),
        &ok,
    );
    let v: serde_json::Value = serde_json::from_slice(&r.to_canonical_json()).unwrap();
    assert_eq!(v["eventSource"], "secretsmanager.amazonaws.com");
    assert_eq!(v["eventName"], "CreateSecret");
    assert_eq!(v["awsRegion"], "eu-west-1");
    assert_eq!(v["sourceIPAddress"], "127.0.0.1");
    assert_eq!(v["userAgent"], "Mozilla/5.0");
    assert_eq!(v["userIdentity"]["accessKeyId"], KEY_ID);
    assert_eq!(v["responseElements"]["Name"], "prod/db");
    assert_eq!(v["sessionCredentialFromConsole"], "true");
    assert!(v.get("errorCode").is_none());
    let err: coffer_core::Result<serde_json::Value> = Err(coffer_core::Error::not_found());
    let r = audit::operation_record(
        coffer_core::ops::Operation::GetSecretValue,
        "eu-west-1",
        &caller,
        KEY_ID,
        &origin,
        params,
        &err,
    );
    assert_eq!(r.error_code.as_deref(), Some("ResourceNotFoundException"));
    assert!(r.response_elements.is_null());
    assert!(r.read_only);
}
