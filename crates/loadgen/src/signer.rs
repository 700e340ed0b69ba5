//! SigV4 signing of the generator's requests, cached per second for a fixed request.
//!
//! A fixed request (method, URL, headers, body) has a signature that depends only on
//! `X-Amz-Date`, which has one-second resolution: each connection keeps one `Signer` and
//! re-signs at most once per second. Requests whose body changes (random secrets, new
//! `ClientRequestToken`s) are signed each time with [`Signer::sign_body`].
//!
//! The generator shares the machine's cores with the server it measures, so its own CPU per
//! request lowers the figures it reports. aws-sigv4 took about 8 µs to sign one request
//! (30% of the generator's CPU in a run of random GetSecretValue over a million secrets: it
//! canonicalises a general request and derives the signing key every time). The requests
//! here have one shape (`POST`, four signed headers, no query), so they are signed here: the
//! canonical request written into a buffer, the signing key derived once per day. The tests
//! compare every signature with aws-sigv4's and with one computed by botocore.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use http::HeaderValue;
use sha2::{Digest, Sha256};

use crate::BoxError;

pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
pub const TARGET: &str = "secretsmanager.GetSecretValue";
pub const PUT_TARGET: &str = "secretsmanager.PutSecretValue";
pub const CREATE_TARGET: &str = "secretsmanager.CreateSecret";
pub const LIST_TARGET: &str = "secretsmanager.ListSecrets";
pub const ROTATE_TARGET: &str = "secretsmanager.RotateSecret";
pub const SERVICE: &str = "secretsmanager";
const SIGNED_HEADERS: &str = "content-type;host;x-amz-date;x-amz-target";

/// Everything needed to sign; shared (cloned) by all connections.
#[derive(Clone)]
pub struct SigningConfig {
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
    /// Full URL as signed, e.g. `http://127.0.0.1:8080/`.
    pub url: String,
    /// `Host` header value (`host:port` as in the URL).
    pub host: String,
    /// `X-Amz-Target` ([`TARGET`] or [`PUT_TARGET`]).
    pub target: &'static str,
    pub body: Bytes,
}

pub struct Signer {
    cfg: SigningConfig,
    /// The request's path, as signed (checked to need no encoding).
    path: String,
    /// The day (`YYYYMMDD`) `key` was derived for, and the key.
    key_day: String,
    key: [u8; 32],
    cached_second: u64,
    date: HeaderValue,
    authorization: HeaderValue,
    signs: u64,
    /// Reused for the canonical request and the string to sign.
    scratch: String,
}

impl Signer {
    pub fn new(cfg: SigningConfig) -> Result<Self, BoxError> {
        let mut s = Signer::unsigned(cfg)?;
        s.refresh(SystemTime::now())?;
        Ok(s)
    }

    /// A signer that has signed nothing yet.
    fn unsigned(cfg: SigningConfig) -> Result<Self, BoxError> {
        Ok(Signer {
            path: signed_path(&cfg.url)?,
            cfg,
            key_day: String::new(),
            key: [0; 32],
            cached_second: u64::MAX,
            date: HeaderValue::from_static(""),
            authorization: HeaderValue::from_static(""),
            signs: 0,
            scratch: String::with_capacity(512),
        })
    }

    /// `(X-Amz-Date, Authorization)` valid for `now` (re-signs when the second changed).
    pub fn headers(&mut self, now: SystemTime) -> Result<(&HeaderValue, &HeaderValue), BoxError> {
        self.refresh(now)?;
        Ok((&self.date, &self.authorization))
    }

    /// The body this signer signs (the same for every request).
    pub fn body(&self) -> &Bytes {
        &self.cfg.body
    }

    /// The `X-Amz-Target` this signer signs.
    pub fn target(&self) -> &'static str {
        self.cfg.target
    }

    /// Signs a request with another body (a new `ClientRequestToken` each time); no caching.
    pub fn sign_body(
        &mut self,
        body: Bytes,
        now: SystemTime,
    ) -> Result<(HeaderValue, HeaderValue), BoxError> {
        self.cfg.body = body;
        self.signs += 1;
        self.sign(now)
    }

    /// How many times this signer actually computed a signature.
    pub fn signs(&self) -> u64 {
        self.signs
    }

    fn refresh(&mut self, now: SystemTime) -> Result<(), BoxError> {
        let second = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| "system clock before 1970")?
            .as_secs();
        if second == self.cached_second {
            return Ok(());
        }
        let (date, auth) = self.sign(UNIX_EPOCH + Duration::from_secs(second))?;
        self.date = date;
        self.authorization = auth;
        self.cached_second = second;
        self.signs += 1;
        Ok(())
    }

    /// The `X-Amz-Date` and `Authorization` of the current body at `time` (whole seconds).
    fn sign(&mut self, time: SystemTime) -> Result<(HeaderValue, HeaderValue), BoxError> {
        let time: DateTime<Utc> = time.into();
        let amz_date = time.format("%Y%m%dT%H%M%SZ").to_string();
        let day = &amz_date[..8];
        if self.key_day != day {
            self.key = signing_key(&self.cfg.secret_key, day, &self.cfg.region);
            self.key_day = day.to_owned();
        }
        let c = &self.cfg;
        let s = &mut self.scratch;
        s.clear();
        let _ = write!(
            s,
            "POST\n{}\n\ncontent-type:{CONTENT_TYPE}\nhost:{}\nx-amz-date:{amz_date}\n\
             x-amz-target:{}\n\n{SIGNED_HEADERS}\n{}",
            self.path,
            c.host,
            c.target,
            hex::encode(Sha256::digest(&c.body)),
        );
        let canonical_hash = hex::encode(Sha256::digest(s.as_bytes()));
        let scope = format!("{day}/{}/{SERVICE}/aws4_request", c.region);
        s.clear();
        let _ = write!(s, "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{canonical_hash}");
        let signature = hex::encode(hmac_sha256(&self.key, s.as_bytes()));
        let mut auth = HeaderValue::from_str(&format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={SIGNED_HEADERS}, \
             Signature={signature}",
            c.access_key
        ))?;
        auth.set_sensitive(true);
        Ok((HeaderValue::from_str(&amz_date)?, auth))
    }
}

/// Signs the request of `cfg` at `time`; returns the `X-Amz-Date` and `Authorization` header
/// values.
pub fn sign_at(
    cfg: &SigningConfig,
    time: SystemTime,
) -> Result<(HeaderValue, HeaderValue), BoxError> {
    Signer::unsigned(cfg.clone())?.sign(time)
}

/// The path of `url` as SigV4 signs it. Signed as is, so only paths that need no encoding
/// (unreserved characters and `/`) are accepted: the endpoints this tool is pointed at.
fn signed_path(url: &str) -> Result<String, BoxError> {
    let uri: http::Uri = url.parse()?;
    if uri.query().is_some() {
        return Err(format!(
            "the endpoint {url} has a query, which this tool does not sign: give --endpoint \
             without one (e.g. http://127.0.0.1:8080)"
        )
        .into());
    }
    let path = match uri.path() {
        "" => "/",
        p => p,
    };
    if !path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~/".contains(&b))
    {
        return Err(format!(
            "the endpoint path {path} needs percent-encoding, which this tool does not \
                 sign: give --endpoint with a plain path (e.g. http://127.0.0.1:8080/)"
        )
        .into());
    }
    Ok(path.to_owned())
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// SigV4's key for `day` (`YYYYMMDD`), `region` and Secrets Manager.
fn signing_key(secret_key: &str, day: &str, region: &str) -> [u8; 32] {
    let k = hmac_sha256(format!("AWS4{secret_key}").as_bytes(), day.as_bytes());
    let k = hmac_sha256(&k, region.as_bytes());
    let k = hmac_sha256(&k, SERVICE.as_bytes());
    hmac_sha256(&k, b"aws4_request")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SigningConfig {
        SigningConfig {
            access_key: "AKIDEXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            region: "us-east-1".into(),
            url: "http://127.0.0.1:8080/".into(),
            host: "127.0.0.1:8080".into(),
            target: TARGET,
            body: Bytes::from_static(br#"{"SecretId":"bench-secret"}"#),
        }
    }

    #[test]
    fn signs_expected_headers() {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let (date, auth) = sign_at(&cfg(), t).unwrap();
        assert_eq!(date.to_str().unwrap(), "20231114T221320Z");
        let auth = auth.to_str().unwrap();
        // Expected value computed independently with botocore's SigV4Auth (boto3's signer)
        // for the same request and time.
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/us-east-1/secretsmanager/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date;x-amz-target, \
             Signature=74ab16e36010e78e953f80302076a60b1c1bacf12e75f0f24bc81a80dba6ef08"
        );
        // Deterministic for the same second.
        let (_, auth2) = sign_at(&cfg(), t).unwrap();
        assert_eq!(auth, auth2.to_str().unwrap());
    }

    #[test]
    fn caches_per_second() {
        let mut s = Signer::new(cfg()).unwrap();
        let base = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let before = s.signs();
        s.headers(base).unwrap();
        s.headers(base + Duration::from_millis(999)).unwrap();
        assert_eq!(s.signs(), before + 1);
        s.headers(base + Duration::from_secs(1)).unwrap();
        assert_eq!(s.signs(), before + 2);
    }

    /// What aws-sigv4 signs for the same request: the generator signed with it before.
    fn aws_sigv4_headers(cfg: &SigningConfig, time: SystemTime) -> (String, String) {
        use aws_credential_types::Credentials;
        use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
        use aws_sigv4::sign::v4;
        let credentials = Credentials::new(&cfg.access_key, &cfg.secret_key, None, None, "test");
        let identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&cfg.region)
            .name(SERVICE)
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let headers = [
            ("content-type", CONTENT_TYPE),
            ("host", cfg.host.as_str()),
            ("x-amz-target", cfg.target),
        ];
        let request = SignableRequest::new(
            "POST",
            cfg.url.as_str(),
            headers.into_iter(),
            SignableBody::Bytes(&cfg.body),
        )
        .unwrap();
        let (instructions, _) = sign(request, &params).unwrap().into_parts();
        let find = |name: &str| {
            instructions
                .headers()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.to_owned())
                .unwrap()
        };
        (find("x-amz-date"), find("authorization"))
    }

    #[test]
    fn signs_as_aws_sigv4_does() {
        let mut signer = Signer::new(cfg()).unwrap();
        let hosts = ["127.0.0.1:8080", "localhost:39177", "coffer.example:443"];
        let urls = [
            "http://127.0.0.1:8080/",
            "http://localhost:39177/",
            "https://coffer.example:443/api/v1",
        ];
        let mut seed = 0x5eed_u64;
        for i in 0..200u64 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let mut c = cfg();
            c.host = hosts[(i % 3) as usize].into();
            c.url = urls[(i % 3) as usize].into();
            c.region = ["us-east-1", "eu-west-1"][(i % 2) as usize].into();
            c.target = [TARGET, PUT_TARGET, LIST_TARGET][(seed % 3) as usize];
            c.body = Bytes::from(format!(r#"{{"SecretId":"scale-{}"}}"#, seed % 1_000_000));
            // Times across several days, so the per-day key is derived again.
            let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000 + (seed >> 20) % 400_000);
            let want = aws_sigv4_headers(&c, t);
            if c.url != signer.cfg.url {
                signer = Signer::new(c.clone()).unwrap();
            }
            signer.cfg.region = c.region.clone();
            signer.key_day.clear();
            signer.cfg.target = c.target;
            let (date, auth) = signer.sign_body(c.body.clone(), t).unwrap();
            assert_eq!(date.to_str().unwrap(), want.0, "case {i}");
            assert_eq!(auth.to_str().unwrap(), want.1, "case {i}");
        }
    }

    #[test]
    fn refuses_an_endpoint_path_it_would_sign_wrongly() {
        let mut c = cfg();
        c.url = "http://127.0.0.1:8080/a%20b".into();
        assert!(Signer::new(c.clone()).is_err());
        c.url = "http://127.0.0.1:8080/?x=1".into();
        assert!(Signer::new(c).is_err());
    }
}
