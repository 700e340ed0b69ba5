//! The one error type of this crate, carrying the AWS error code and the exact
//! AWS message text for every way a SigV4 check can fail.
//!
//! Evidence tags follow `shared/docs/aws-api-spec.md` §0: **\[F\]** real AWS
//! text pasted in a public issue, **\[D\]** AWS documentation, **\[E\]** not
//! verified against AWS (memory or inference).

use chrono::{DateTime, TimeDelta, Utc};
use std::fmt;

use crate::authorization::format_amz_date;

/// How far the request time may be from the server's clock, either way.
pub(crate) const MAX_CLOCK_SKEW_MINUTES: i64 = 5;

/// Why a request failed SigV4 authentication.
///
/// [`SigV4Error::code`] and [`SigV4Error::message`] give the `__type` and
/// `Message` the HTTP layer sends back. `Display` is the same text except for
/// [`SigV4Error::SignatureDoesNotMatch`], where it leaves out the canonical
/// request (which echoes client headers such as `X-Amz-Security-Token`) so the
/// error can be logged safely. `Debug` redacts the same way. Neither ever
/// contains a secret access key or a derived key: this type never sees them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SigV4Error {
    /// No `Authorization` header at all.
    MissingAuthenticationToken,
    /// The `Authorization` header, or the date header it needs, is malformed.
    /// `message` is the complete AWS-style text.
    IncompleteSignature {
        /// The AWS-style message.
        message: String,
    },
    /// The request time is more than five minutes before the server's clock.
    SignatureExpired {
        /// Time of the request (`X-Amz-Date` or `Date`).
        request_time: DateTime<Utc>,
        /// Server time, truncated to whole seconds.
        now: DateTime<Utc>,
    },
    /// The request time is more than five minutes after the server's clock.
    SignatureNotYetCurrent {
        /// Time of the request (`X-Amz-Date` or `Date`).
        request_time: DateTime<Utc>,
        /// Server time, truncated to whole seconds.
        now: DateTime<Utc>,
    },
    /// The date in the credential scope is not the date of `X-Amz-Date`.
    ScopeDateMismatch {
        /// `yyyymmdd` from the credential scope.
        scope_date: String,
        /// The `X-Amz-Date` value (ISO 8601 basic format).
        amz_date: String,
    },
    /// The credential scope does not end in `aws4_request`.
    InvalidTerminator {
        /// The fifth element of the credential.
        terminator: String,
    },
    /// The credential scope names another service (checked by the HTTP layer).
    WrongService {
        /// The service this endpoint serves.
        expected: String,
    },
    /// The credential scope names a region this server does not serve
    /// (checked by the HTTP layer).
    InvalidRegion {
        /// The region from the credential scope.
        region: String,
    },
    /// The recomputed signature differs from the one the client sent.
    SignatureDoesNotMatch(Box<MismatchDetails>),
}

/// What the server computed when a signature did not match; AWS returns both
/// strings to the client so it can diff them against its own.
pub struct MismatchDetails {
    canonical_request: String,
    string_to_sign: String,
}

impl MismatchDetails {
    /// The canonical request the server built from the client's `SignedHeaders`.
    pub fn canonical_request(&self) -> &str {
        &self.canonical_request
    }

    /// The string to sign the server built.
    pub fn string_to_sign(&self) -> &str {
        &self.string_to_sign
    }
}

impl fmt::Debug for MismatchDetails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The canonical request can hold an X-Amz-Security-Token value: keep it
        // out of logs. The string to sign holds only a date, a scope and a hash.
        f.debug_struct("MismatchDetails")
            .field(
                "canonical_request",
                &format_args!("<{} bytes, redacted>", self.canonical_request.len()),
            )
            .field("string_to_sign", &self.string_to_sign)
            .finish()
    }
}

/// Standard AWS text \[F: many services; Secrets Manager itself in
/// aws/aws-sdk-net#3978\].
const SIGNATURE_MISMATCH: &str = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

impl SigV4Error {
    /// `InvalidSignatureException` for a credential scoped to another service.
    ///
    /// Text \[F\]: `Credential should be scoped to correct service: 'dynamodb'. `
    /// from DynamoDB (AWS JSON, `InvalidSignatureException`,
    /// arnemolland/sigv4#15); the same words from Batch and CloudFormation.
    /// Note the trailing period *and space*: AWS sends them.
    pub fn wrong_service(expected: &str) -> Self {
        Self::WrongService {
            expected: expected.to_owned(),
        }
    }

    /// `InvalidSignatureException` for a credential scoped to a region this
    /// server does not serve.
    ///
    /// Text \[F\]: `Credential should be scoped to a valid region, not ''. ` from
    /// MediaStore (AWS JSON 1.1, `InvalidSignatureException`,
    /// fsouza/s3-upload-proxy#241), identical from SQS, SES, IAM and STS.
    /// Newer REST services say `The credential must be scoped to a valid
    /// region.` instead; Secrets Manager belongs to the older family.
    pub fn invalid_region(region: &str) -> Self {
        Self::InvalidRegion {
            region: region.to_owned(),
        }
    }

    pub(crate) fn incomplete(message: impl Into<String>) -> Self {
        Self::IncompleteSignature {
            message: message.into(),
        }
    }

    pub(crate) fn signature_mismatch(canonical_request: String, string_to_sign: String) -> Self {
        Self::SignatureDoesNotMatch(Box::new(MismatchDetails {
            canonical_request,
            string_to_sign,
        }))
    }

    /// The AWS error code, for `__type` and `x-amzn-ErrorType`.
    ///
    /// AWS JSON services use the `…Exception` spellings
    /// (`IncompleteSignatureException` \[F: SSM aws/aws-sdk-js#4285, DynamoDB,
    /// Cloud9, Resource Groups Tagging\]); only Query-protocol services say
    /// `IncompleteSignature` / `SignatureDoesNotMatch`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            Self::IncompleteSignature { .. } => "IncompleteSignatureException",
            Self::SignatureExpired { .. }
            | Self::SignatureNotYetCurrent { .. }
            | Self::ScopeDateMismatch { .. }
            | Self::InvalidTerminator { .. }
            | Self::WrongService { .. }
            | Self::InvalidRegion { .. }
            | Self::SignatureDoesNotMatch(_) => "InvalidSignatureException",
        }
    }

    /// The message AWS would send to the client, for `Message`.
    ///
    /// For [`SigV4Error::SignatureDoesNotMatch`] this includes the canonical
    /// request and string to sign, exactly as AWS does; use `Display` for logs.
    pub fn message(&self) -> String {
        match self {
            Self::SignatureDoesNotMatch(details) => format!(
                "{SIGNATURE_MISMATCH}\n\nThe Canonical String for this request should have been\n'{}'\n\nThe String-to-Sign should have been\n'{}'\n",
                details.canonical_request, details.string_to_sign
            ),
            other => other.to_string(),
        }
    }
}

impl fmt::Display for SigV4Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let skew = TimeDelta::minutes(MAX_CLOCK_SKEW_MINUTES);
        match self {
            // [E] per spec §1.6; AWS's docs call it "Missing Authentication Token".
            Self::MissingAuthenticationToken => f.write_str("Missing Authentication Token"),
            Self::IncompleteSignature { message } => f.write_str(message),
            // [F] Secrets Manager: `Signature expired: 20251105T220858Z is now
            // earlier than 20251106T132108Z (20251106T132608Z - 5 min.)`
            Self::SignatureExpired { request_time, now } => write!(
                f,
                "Signature expired: {} is now earlier than {} ({} - {MAX_CLOCK_SKEW_MINUTES} min.)",
                format_amz_date(*request_time),
                format_amz_date(*now - skew),
                format_amz_date(*now),
            ),
            // [D] IAM troubleshooting page names the sentence; the bracket
            // mirrors the expired text [E].
            Self::SignatureNotYetCurrent { request_time, now } => write!(
                f,
                "Signature not yet current: {} is still later than {} ({} + {MAX_CLOCK_SKEW_MINUTES} min.)",
                format_amz_date(*request_time),
                format_amz_date(*now + skew),
                format_amz_date(*now),
            ),
            // [D] first sentence from the IAM troubleshooting page; the
            // `: 'a' != 'b', from 'c'.` tail is [E, from memory].
            Self::ScopeDateMismatch {
                scope_date,
                amz_date,
            } => write!(
                f,
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{scope_date}' != '{}', from '{amz_date}'.",
                amz_date.get(..8).unwrap_or(amz_date),
            ),
            // [E, from memory] same family as the region/service texts.
            Self::InvalidTerminator { terminator } => write!(
                f,
                "Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'. "
            ),
            Self::WrongService { expected } => write!(
                f,
                "Credential should be scoped to correct service: '{expected}'. "
            ),
            Self::InvalidRegion { region } => write!(
                f,
                "Credential should be scoped to a valid region, not '{region}'. "
            ),
            Self::SignatureDoesNotMatch(_) => f.write_str(SIGNATURE_MISMATCH),
        }
    }
}
