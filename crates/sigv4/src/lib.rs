//! A hand-written AWS Signature Version 4 **verifier** for Coffer's AWS JSON
//! 1.1 endpoint (`POST /`), so that AWS CLI, boto3, aws-sdk-rust and the
//! JavaScript SDK v3 authenticate against Coffer exactly as against
//! `secretsmanager.<region>.amazonaws.com`.
//!
//! # Design
//!
//! Verification takes two calls, so the HTTP layer can do its own checks in
//! between:
//!
//! 1. [`parse`] reads the `Authorization` header and the request time
//!    (`X-Amz-Date`, else `Date`) and validates their *shape* only.
//! 2. The HTTP layer checks the service ([`SigV4Error::wrong_service`]) and the
//!    region ([`SigV4Error::invalid_region`]) from the credential scope, and
//!    looks up the secret access key for [`Authorization::access_key_id`].
//! 3. [`Verifier::verify`] checks the clock skew (±5 minutes), the scope date,
//!    and the signature. It rebuilds the canonical request from the **client's
//!    own `SignedHeaders`** (SDKs sign different header sets) and the **raw
//!    body bytes**, derives the signing key (cached), and compares signatures in
//!    constant time.
//! 4. The HTTP layer then checks `X-Amz-Security-Token` against a temporary
//!    credential if it has one (spec §1.6 step 4); the verifier treats that
//!    header like any other, and ignores it when unsigned.
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use coffer_sigv4::{SigV4Error, Verifier, parse};
//! use http::{HeaderMap, HeaderValue, Method, Uri};
//!
//! // `post-vanilla` from the AWS SigV4 test suite.
//! let mut headers = HeaderMap::new();
//! headers.insert("host", HeaderValue::from_static("example.amazonaws.com"));
//! headers.insert("x-amz-date", HeaderValue::from_static("20150830T123600Z"));
//! headers.insert("authorization", HeaderValue::from_static(
//!     "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
//!      SignedHeaders=host;x-amz-date, \
//!      Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
//! ));
//!
//! let verifier = Verifier::new(); // one per server
//! let auth = parse(&headers)?;
//! if auth.service != "service" {
//!     return Err(SigV4Error::wrong_service("service"));
//! }
//! // ... check auth.region, look up the secret for auth.access_key_id ...
//! let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
//! let now = Utc.with_ymd_and_hms(2015, 8, 30, 12, 36, 0).unwrap();
//! verifier.verify(&auth, &Method::POST, &Uri::from_static("/"), &headers, b"", secret, now)?;
//! # Ok::<(), SigV4Error>(())
//! ```
//!
//! Every failure is a [`SigV4Error`] whose [`code`](SigV4Error::code) and
//! [`message`](SigV4Error::message) are what AWS sends, each with its evidence
//! noted at its definition. The codes are the AWS JSON spellings:
//! `MissingAuthenticationTokenException`, `IncompleteSignatureException`,
//! `InvalidSignatureException`.
//!
//! The signature is a private type without `PartialEq`: the only comparison
//! that compiles is the constant-time one. Derived keys are zeroized on drop,
//! never appear in `Debug`, and the cache keys them on a fingerprint of the
//! secret, so a secret rotated under the same access key id never meets a stale
//! key. The correct signature, once computed, is zeroized too: it would
//! authenticate the request it belongs to.
//!
//! # AWS quirks handled here
//!
//! * **Header sets differ by client.** boto3 signs
//!   `content-type;host;x-amz-date;x-amz-target`; aws-sdk-rust adds
//!   `content-length;x-amz-user-agent`; the JS SDK also signs
//!   `x-amz-content-sha256` and `amz-sdk-*`. Whatever is listed is used; unsigned
//!   headers (`User-Agent`, an unsigned `X-Amz-Security-Token`) are ignored.
//! * **`host` must be signed**, or a captured signature could be replayed on
//!   another virtual host: [`parse`] rejects it (`IncompleteSignatureException`,
//!   AWS's text). Over HTTP/2 the host is the `:authority`, taken from the URI.
//!   Behind a reverse proxy the `Host` header must reach us unchanged, port
//!   included.
//! * **Canonical header values**: all values of a header joined with `,` in
//!   arrival order, each trimmed, runs of spaces collapsed to one (spaces only,
//!   like aws-sdk-rust). A signed header absent from the request contributes an
//!   empty value and so fails as a signature mismatch.
//! * **Payload hash**: always SHA-256 of the raw body computed here. The
//!   `x-amz-content-sha256` header is never trusted as the body's hash (a
//!   header that lies about the body fails as a mismatch rather than letting a
//!   body be swapped); its literal `UNSIGNED-PAYLOAD` is honoured for `s3`
//!   only, as AWS does. For Secrets Manager, KMS, IAM and STS a signature over
//!   `UNSIGNED-PAYLOAD` is a mismatch (`InvalidSignatureException`): over
//!   plain HTTP it would let a body be swapped.
//! * **boto3's JSON has spaces** (`{"SecretId": "x"}`): the body is hashed as
//!   received; re-serialising would break every boto3 request.
//! * **Canonical URI**: for services other than S3 the path is normalised (dot
//!   segments and empty segments removed) and URI-encoded a second time, as
//!   every SDK signs it; for `s3` it is used as sent. Secrets Manager only sees
//!   `/`.
//! * **Canonical query**: pairs decoded, re-encoded strictly and sorted (JSON
//!   APIs send none; supported for completeness).
//! * **Dates**: `X-Amz-Date` wins over `Date`; with `Date` (IMF-fixdate) the
//!   string to sign carries the same instant in ISO 8601 basic format. The scope
//!   date must equal the request date even across midnight.
//! * **Clock skew**: ±5 minutes inclusive; the messages print the bounds the
//!   way Secrets Manager does.
//! * **Signature mismatch**: like AWS, [`SigV4Error::message`] returns the
//!   canonical request and string to sign the server computed, which makes
//!   client bugs easy to diagnose; `Display` and `Debug` leave the canonical
//!   request out so logging the error never records a session token.
//! * **Not supported**: presigned URLs (query-string auth: `X-Amz-Signature`
//!   in the query) — a request without an `Authorization` header is
//!   `MissingAuthenticationTokenException`; SigV4a; S3 chunked payload
//!   signing.
//!
//! The AWS SigV4 test suite (as shipped in the `aws-sigv4` crate) runs against
//! this verifier in `tests/`, next to round trips signed by `aws-sigv4` itself.

mod authorization;
mod canonical;
mod error;
mod signing_key;
mod verifier;

pub use authorization::{Authorization, parse};
pub use canonical::RESERVED;
pub use error::{MismatchDetails, SigV4Error};
pub use verifier::Verifier;
