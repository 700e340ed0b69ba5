//! `coffer region ...`: Region failover and failback from the command line (docs/failover.md).
//! Each command is one call of a Coffer operation (`X-Amz-Target: Coffer.<Operation>`) on the
//! node that hosts the Region, over HTTP, signed with SigV4 like any AWS call: the credentials
//! come from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`), else
//! from the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, default
//! `~/.aws/credentials`) and profile (`AWS_PROFILE`, default `default`), as the AWS CLI reads
//! them. The answer (JSON) is printed on standard output.

use std::time::{Duration, SystemTime};

use anyhow::{Context, anyhow, bail};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// Coffer's operations are signed as Secrets Manager calls (the same profile works).
const SERVICE: &str = "secretsmanager";
/// A failover of many thousands of secrets takes a while; the node finishes it even if this
/// command gives up waiting.
const TIMEOUT: Duration = Duration::from_secs(600);

/// Calls `Coffer.<operation>` in `region` at `endpoint` with the JSON `body`; returns the
/// answer's JSON, or the error as the node sent it (`Code: Message`).
pub async fn call(
    endpoint: &str,
    region: &str,
    operation: &str,
    body: &serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let credentials = credentials()?;
    let uri: http::Uri = endpoint
        .parse()
        .with_context(|| format!("--endpoint {endpoint:?} is not a URL"))?;
    if uri.scheme_str() != Some("http") {
        // hyper's plain client; put a TLS terminator's plain side, or the node itself, here.
        bail!("--endpoint {endpoint:?}: only http:// URLs are supported (the node's own address)");
    }
    let host = uri
        .authority()
        .ok_or_else(|| anyhow!("--endpoint {endpoint:?} has no host"))?
        .to_string();
    let url = format!("http://{host}/");
    let target = format!("Coffer.{operation}");
    let body = Bytes::from(serde_json::to_vec(body).expect("request serializes"));
    let identity = credentials.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SERVICE)
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .context("cannot sign the request")?
        .into();
    let headers = [
        ("content-type", CONTENT_TYPE),
        ("host", host.as_str()),
        ("x-amz-target", target.as_str()),
    ];
    let signable = SignableRequest::new(
        "POST",
        url.as_str(),
        headers.into_iter(),
        SignableBody::Bytes(&body),
    )
    .context("cannot sign the request")?;
    let (instructions, _) = sign(signable, &params)
        .context("cannot sign the request")?
        .into_parts();
    let mut request = http::Request::builder()
        .method("POST")
        .uri(&url)
        .header("content-type", CONTENT_TYPE)
        .header("host", &host)
        .header("x-amz-target", &target);
    for (name, value) in instructions.headers() {
        request = request.header(name, value);
    }
    let request = request
        .body(Full::new(body))
        .context("cannot build the request")?;
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let response = tokio::time::timeout(TIMEOUT, client.request(request))
        .await
        .map_err(|_| anyhow!("{endpoint} did not answer within {} s", TIMEOUT.as_secs()))?
        .with_context(|| format!("cannot reach {endpoint}"))?;
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .with_context(|| format!("reading the answer of {endpoint}"))?
        .to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| {
        anyhow!(
            "{endpoint} answered HTTP {status} with something that is not JSON: {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
        )
    })?;
    if !status.is_success() {
        let code = json["__type"].as_str().unwrap_or("Error");
        let message = json["Message"].as_str().unwrap_or("");
        bail!("{code}: {message}");
    }
    Ok(json)
}

/// The caller's credentials, found as the AWS CLI finds them (environment, then the shared
/// credentials file's profile).
fn credentials() -> anyhow::Result<Credentials> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let (Some(id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        return Ok(Credentials::new(
            id,
            secret,
            env("AWS_SESSION_TOKEN"),
            None,
            "environment",
        ));
    }
    let file = match env("AWS_SHARED_CREDENTIALS_FILE") {
        Some(f) => std::path::PathBuf::from(f),
        None => std::path::PathBuf::from(env("HOME").context(
            "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_SHARED_CREDENTIALS_FILE",
        )?)
        .join(".aws")
        .join("credentials"),
    };
    let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
    let text = std::fs::read_to_string(&file).map_err(|e| {
        anyhow!(
            "no credentials: AWS_ACCESS_KEY_ID is not set and {} cannot be read ({e})",
            file.display()
        )
    })?;
    let (id, secret, token) = profile_keys(&text, &profile).ok_or_else(|| {
        anyhow!(
            "no credentials: profile [{profile}] of {} has no aws_access_key_id and aws_secret_access_key",
            file.display()
        )
    })?;
    Ok(Credentials::new(id, secret, token, None, "profile"))
}

/// `(access key id, secret access key, session token)` of `[profile]` in an INI text.
fn profile_keys(text: &str, profile: &str) -> Option<(String, String, Option<String>)> {
    let mut in_profile = false;
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') && line.ends_with(']') {
            in_profile = line[1..line.len() - 1].trim() == profile;
            continue;
        }
        if !in_profile {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().to_string();
            match k.trim() {
                "aws_access_key_id" => id = Some(v),
                "aws_secret_access_key" => secret = Some(v),
                "aws_session_token" => token = Some(v),
                _ => {}
            }
        }
    }
    Some((id?, secret?, token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_named_profile_only() {
        let text = "[default]\naws_access_key_id = A\naws_secret_access_key = B\n\n[ops]\naws_access_key_id=C\naws_secret_access_key=D\naws_session_token = T\n";
        assert_eq!(
            profile_keys(text, "default"),
            Some(("A".into(), "B".into(), None))
        );
        assert_eq!(
            profile_keys(text, "ops"),
            Some(("C".into(), "D".into(), Some("T".into())))
        );
        assert_eq!(profile_keys(text, "missing"), None);
    }
}
