//! Signing requests with the reference signer, and verifying them.

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use chrono::{DateTime, Utc};
use coffer_sigv4::{SigV4Error, Verifier, parse};
use http::header::HOST;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use std::borrow::Cow;
use std::time::SystemTime;

pub const ACCESS_KEY_ID: &str = "AKIDEXAMPLE";
pub const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
pub const SERVICE: &str = "secretsmanager";
pub const REGION: &str = "us-east-1";
pub const ENDPOINT: &str = "http://localhost:4566/";
pub const SESSION_TOKEN: &str = "IQoJb3JpZ2luX2VjEJ//////////wEaCXVzLWVhc3QtMSJGMEQCIBbiDVWzuTvQnRNG82h3eN8t5DzpmC4KHgfEXNDLdaW4";

/// Parses an RFC 3339 time.
pub fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .expect("valid RFC 3339 time")
        .with_timezone(&Utc)
}

/// A request as the server receives it: origin-form URI, all headers.
#[derive(Clone, Debug)]
pub struct WireRequest {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl WireRequest {
    /// Parses and verifies with a fresh verifier.
    pub fn verify(&self, secret: &str, now: DateTime<Utc>) -> Result<(), SigV4Error> {
        self.verify_with(&Verifier::new(), secret, now)
    }

    pub fn verify_with(
        &self,
        verifier: &Verifier,
        secret: &str,
        now: DateTime<Utc>,
    ) -> Result<(), SigV4Error> {
        let auth = parse(&self.headers)?;
        verifier.verify(
            &auth,
            &self.method,
            &self.uri,
            &self.headers,
            &self.body,
            secret,
            now,
        )
    }

    /// Adds a header after signing (so it is not signed).
    pub fn with_header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.append(
            HeaderName::from_static(name),
            HeaderValue::from_str(value).expect("valid header value"),
        );
        self
    }

    pub fn set_header(&mut self, name: &'static str, value: &str) {
        self.headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(value).expect("valid header value"),
        );
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("header {name} present"))
            .to_str()
            .expect("ASCII header")
    }
}

/// What a client does when it signs; defaults follow aws-sdk-rust for
/// Secrets Manager.
pub struct Signer<'a> {
    pub method: &'a str,
    /// Absolute URL as the client addresses the endpoint.
    pub url: &'a str,
    /// Headers present when the signer runs (all get signed, except those
    /// aws-sigv4 excludes by default: `user-agent`, `authorization`, ...).
    pub headers: Vec<(&'a str, String)>,
    pub body: &'a [u8],
    /// Send and sign `x-amz-content-sha256` (the JS SDK does).
    pub content_sha256_header: bool,
    /// Sign `UNSIGNED-PAYLOAD` instead of the body hash.
    pub unsigned_payload: bool,
    pub session_token: Option<&'a str>,
    /// Headers the signer must leave unsigned, beyond aws-sigv4's defaults.
    pub unsigned_headers: Vec<&'static str>,
    pub access_key_id: &'a str,
    pub secret: &'a str,
    pub region: &'a str,
    pub service: &'a str,
    pub time: DateTime<Utc>,
}

/// `{"SecretId":"MySecret"}` as aws-sdk-rust sends it for GetSecretValue.
pub fn rust_sdk(time: DateTime<Utc>, body: &[u8]) -> Signer<'_> {
    Signer {
        method: "POST",
        url: ENDPOINT,
        headers: vec![
            ("content-type", "application/x-amz-json-1.1".to_owned()),
            ("x-amz-target", "secretsmanager.GetSecretValue".to_owned()),
            ("content-length", body.len().to_string()),
            (
                "x-amz-user-agent",
                "aws-sdk-rust/1.3.9 api/secretsmanager/1.125.0 os/linux lang/rust/1.95.0"
                    .to_owned(),
            ),
            (
                "user-agent",
                "aws-sdk-rust/1.3.9 os/linux lang/rust/1.95.0".to_owned(),
            ),
        ],
        body,
        content_sha256_header: false,
        unsigned_payload: false,
        session_token: None,
        unsigned_headers: vec![],
        access_key_id: ACCESS_KEY_ID,
        secret: SECRET,
        region: REGION,
        service: SERVICE,
        time,
    }
}

impl Signer<'_> {
    /// Signs with aws-sigv4 and returns what the server sees: the signer's
    /// headers plus `Host` (hyper writes it from the URL, as the signer
    /// assumed) and an origin-form URI.
    pub fn sign(&self) -> WireRequest {
        let identity = Credentials::new(
            self.access_key_id,
            self.secret,
            self.session_token.map(str::to_owned),
            None,
            "coffer-sigv4-tests",
        )
        .into();
        let mut settings = SigningSettings::default();
        if self.content_sha256_header {
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        }
        settings
            .excluded_headers
            .get_or_insert_with(Vec::new)
            .extend(
                self.unsigned_headers
                    .iter()
                    .map(|name| Cow::Borrowed(*name)),
            );
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(self.region)
            .name(self.service)
            .time(SystemTime::from(self.time))
            .settings(settings)
            .build()
            .expect("complete signing params")
            .into();
        let body = if self.unsigned_payload {
            SignableBody::UnsignedPayload
        } else {
            SignableBody::Bytes(self.body)
        };
        let signable = SignableRequest::new(
            self.method,
            self.url,
            self.headers
                .iter()
                .map(|(name, value)| (*name, value.as_str())),
            body,
        )
        .expect("signable request");
        let (instructions, _signature) = sign(signable, &params)
            .expect("aws-sigv4 signs")
            .into_parts();

        let mut request = http::Request::builder()
            .method(self.method)
            .uri(self.url)
            .body(())
            .expect("valid request");
        for (name, value) in &self.headers {
            request.headers_mut().append(
                HeaderName::from_bytes(name.as_bytes()).expect("valid header name"),
                HeaderValue::from_str(value).expect("valid header value"),
            );
        }
        instructions.apply_to_request_http1x(&mut request);

        let (parts, ()) = request.into_parts();
        let mut headers = parts.headers;
        if !headers.contains_key(HOST) {
            let authority = parts.uri.authority().expect("absolute URL").as_str();
            headers.insert(HOST, HeaderValue::from_str(authority).expect("valid host"));
        }
        let origin_form = parts
            .uri
            .path_and_query()
            .map_or("/", |path_and_query| path_and_query.as_str())
            .parse()
            .expect("origin-form URI");
        WireRequest {
            method: parts.method,
            uri: origin_form,
            headers,
            body: self.body.to_vec(),
        }
    }
}

/// The `SignedHeaders=` list of a signed request.
pub fn signed_headers(request: &WireRequest) -> String {
    let authorization = request.header("authorization");
    let start = authorization.find("SignedHeaders=").expect("SignedHeaders") + 14;
    let rest = &authorization[start..];
    rest[..rest.find(',').unwrap_or(rest.len())].to_owned()
}

/// Unwraps the mismatch error, failing on anything else.
pub fn expect_mismatch(result: Result<(), SigV4Error>) -> SigV4Error {
    match result {
        Err(error @ SigV4Error::SignatureDoesNotMatch(_)) => error,
        other => panic!("expected a signature mismatch, got {other:?}"),
    }
}
