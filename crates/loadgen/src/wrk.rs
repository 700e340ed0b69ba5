//! `coffer-loadgen wrk-script`: a Lua script for [wrk](https://github.com/wg/wrk) that replays
//! one pre-signed GetSecretValue over keep-alive connections, so wrk (a C generator that needs
//! less CPU per request than this one) can measure Coffer against the trivial server and
//! moto_server (`bench/run.sh --client wrk`).
//!
//! The request is signed once, when the script is written: the signature stays valid for the
//! server's allowed clock skew (15 minutes on AWS and Coffer), far longer than a run, and
//! SigV4 allows a signed request to be sent again. The script's `done` prints one line,
//! `WRK_RESULT requests seconds rps p50_ms p90_ms p99_ms max_ms mean_ms errors`, for the
//! bench script to read.

use std::time::SystemTime;

use crate::{BoxError, WrkScriptArgs};

pub fn main(args: WrkScriptArgs) -> Result<(), BoxError> {
    let body = serde_json::to_vec(&serde_json::json!({ "SecretId": args.secret_id }))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let target = runtime.block_on(crate::run::resolve_target(
        &args.endpoint,
        crate::signer::TARGET,
        body.into(),
    ))?;
    let (date, authorization) = crate::signer::sign_at(&target.signing, SystemTime::now())?;
    let body = String::from_utf8(target.signing.body.to_vec())?;
    print!(
        r#"-- Written by coffer-loadgen wrk-script: one signed GetSecretValue, sent again and again.
wrk.method = "POST"
wrk.path = {path}
wrk.body = {body}
wrk.headers["Host"] = {host}
wrk.headers["Content-Type"] = {content_type}
wrk.headers["X-Amz-Target"] = {amz_target}
wrk.headers["X-Amz-Date"] = {date}
wrk.headers["Authorization"] = {authorization}

done = function(summary, latency, requests)
  local e = summary.errors
  local errors = e.connect + e.read + e.write + e.status + e.timeout
  local seconds = summary.duration / 1e6
  io.write(string.format("WRK_RESULT %d %.3f %.1f %.3f %.3f %.3f %.3f %.3f %d\n",
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, latency.mean / 1000, errors))
end
"#,
        path = lua(&target.path.to_string()),
        body = lua(&body),
        host = lua(&target.signing.host),
        content_type = lua(crate::signer::CONTENT_TYPE),
        amz_target = lua(crate::signer::TARGET),
        date = lua(date.to_str()?),
        authorization = lua(authorization.to_str()?),
    );
    Ok(())
}

/// A Lua string literal of `s` (long brackets would misread a `]]` in the value).
fn lua(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\{:03}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::lua;

    #[test]
    fn lua_literals_escape_quotes_backslashes_and_controls() {
        assert_eq!(lua(r#"{"SecretId":"a\b"}"#), r#""{\"SecretId\":\"a\\b\"}""#);
        assert_eq!(lua("x\ny\u{1}"), r#""x\ny\001""#);
    }
}
