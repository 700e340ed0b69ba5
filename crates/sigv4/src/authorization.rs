//! Parsing of the `Authorization` header and of the request time.

use chrono::{DateTime, NaiveDate, Utc};
use http::HeaderMap;
use http::header::{AUTHORIZATION, DATE};
use std::fmt;
use subtle::ConstantTimeEq;

use crate::error::SigV4Error;

/// The only algorithm a Secrets Manager endpoint accepts (SigV4a's
/// `AWS4-ECDSA-P256-SHA256` is for multi-region access points, not for us).
pub(crate) const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// Last element of every SigV4 credential scope.
pub(crate) const TERMINATOR: &str = "aws4_request";

const X_AMZ_DATE: &str = "x-amz-date";

/// A parsed `Authorization: AWS4-HMAC-SHA256 Credential=AKID/yyyymmdd/region/service/aws4_request,
/// SignedHeaders=a;b;c, Signature=hex64` header, plus the request time from
/// `X-Amz-Date` (or `Date` as a fallback).
///
/// Only [`parse`] builds one. The signature is private and can only be
/// compared in constant time, inside [`crate::Verifier::verify`].
#[derive(Clone, Debug)]
pub struct Authorization {
    /// First element of the credential: the access key id to look up.
    pub access_key_id: String,
    /// `yyyymmdd` from the credential scope, as sent.
    pub scope_date: String,
    /// Region from the credential scope. With a custom endpoint every region
    /// shares one URL, so this is *the* region of the request (spec §1.5).
    pub region: String,
    /// Service from the credential scope (`secretsmanager` for real clients).
    pub service: String,
    /// Lower-cased names from `SignedHeaders`, in the client's order.
    pub signed_headers: Vec<String>,
    signature: Signature,
    /// The request time, from `X-Amz-Date` or else `Date`.
    pub request_time: DateTime<Utc>,
    /// The raw `X-Amz-Date` value; when the time came from `Date`, the same
    /// instant in ISO 8601 basic format (what AWS puts in the string to sign).
    pub amz_date: String,
}

impl Authorization {
    /// Whether the client signed the named header (give it lower-cased).
    pub fn is_signed(&self, header: &str) -> bool {
        self.signed_headers.iter().any(|h| h == header)
    }

    pub(crate) fn signature(&self) -> &Signature {
        &self.signature
    }
}

/// The `Signature=` value as sent. No `PartialEq`: the only comparison is
/// [`Signature::matches`], which runs in constant time.
#[derive(Clone)]
pub(crate) struct Signature(String);

impl Signature {
    /// Constant-time comparison with the lower-case hex signature the server
    /// computed. A different length is not a secret, so it may return early.
    pub(crate) fn matches(&self, expected_hex: &[u8]) -> bool {
        self.0.as_bytes().ct_eq(expected_hex).into()
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A valid signature authorises a replay of the same request for a few
        // minutes: keep it out of logs.
        f.write_str("Signature(<redacted>)")
    }
}

/// Formats a time as SigV4's ISO 8601 basic format, `YYYYMMDD'T'HHMMSS'Z'`.
pub(crate) fn format_amz_date(time: DateTime<Utc>) -> String {
    time.format("%Y%m%dT%H%M%SZ").to_string()
}

/// Parses `YYYYMMDD'T'HHMMSS'Z'` strictly: exactly 16 characters, digits
/// where digits belong, a real calendar date and time.
fn parse_amz_date(value: &str) -> Option<DateTime<Utc>> {
    let bytes = value.as_bytes();
    if bytes.len() != 16 || bytes[8] != b'T' || bytes[15] != b'Z' {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = &value[range];
        if part.bytes().all(|b| b.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let year = i32::try_from(digits(0..4)?).ok()?;
    let date = NaiveDate::from_ymd_opt(year, digits(4..6)?, digits(6..8)?)?;
    let time = date.and_hms_opt(digits(9..11)?, digits(11..13)?, digits(13..15)?)?;
    Some(time.and_utc())
}

/// Where the request time came from.
enum RequestDate {
    Parsed {
        time: DateTime<Utc>,
        amz_date: String,
    },
    Malformed(String),
    Missing,
}

/// AWS looks at `X-Amz-Date` first and at `Date` only when it is absent
/// \[D: "Handling dates in Signature Version 4"\].
fn request_date(headers: &HeaderMap) -> RequestDate {
    if let Some(value) = headers.get(X_AMZ_DATE) {
        let text = text(value.as_bytes()).into_owned();
        return match parse_amz_date(&text) {
            Some(time) => RequestDate::Parsed {
                time,
                amz_date: text,
            },
            None => RequestDate::Malformed(text),
        };
    }
    if let Some(value) = headers.get(DATE) {
        let text = text(value.as_bytes()).into_owned();
        // IMF-fixdate (`Sun, 30 Aug 2015 12:36:00 GMT`); the obsolete RFC 850
        // and asctime forms are not accepted.
        return match DateTime::parse_from_rfc2822(&text) {
            Ok(time) => {
                let time = time.with_timezone(&Utc);
                RequestDate::Parsed {
                    time,
                    amz_date: format_amz_date(time),
                }
            }
            Err(_) => RequestDate::Malformed(text),
        };
    }
    RequestDate::Missing
}

/// A header value as text: borrowed when it is UTF-8 (the usual case, checked quickly),
/// else a lossy copy.
fn text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// Parses the `Authorization` header and the request time.
///
/// Checks only the *shape* of the header; time, scope date and signature are
/// checked by [`crate::Verifier::verify`], service and region by the caller
/// ([`SigV4Error::wrong_service`], [`SigV4Error::invalid_region`]).
///
/// Order of checks, first failure wins:
/// 1. no (or blank) `Authorization` → `MissingAuthenticationTokenException`;
/// 2. algorithm other than `AWS4-HMAC-SHA256` → `IncompleteSignatureException`
///    listing every parameter as missing (what AWS answers to SigV2 headers);
/// 3. a parameter without `=` → `IncompleteSignatureException`;
/// 4. missing `Credential` / `Signature` / `SignedHeaders`, or neither
///    `X-Amz-Date` nor `Date` → one `IncompleteSignatureException` naming all;
/// 5. credential without exactly five `/`-separated elements →
///    `IncompleteSignatureException`;
/// 6. terminator other than `aws4_request` → `InvalidSignatureException`;
/// 7. `host` not in `SignedHeaders` → `IncompleteSignatureException`;
/// 8. unparseable `X-Amz-Date` (or `Date`) → `IncompleteSignatureException`.
pub fn parse(headers: &HeaderMap) -> Result<Authorization, SigV4Error> {
    let Some(raw) = headers.get(AUTHORIZATION) else {
        return Err(SigV4Error::MissingAuthenticationToken);
    };
    // Header values may hold obs-text; the lossy copy is only for matching
    // ASCII syntax and for echoing in messages.
    let raw = text(raw.as_bytes());
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(SigV4Error::MissingAuthenticationToken);
    }

    let date = request_date(headers);
    let date_missing = matches!(date, RequestDate::Missing);

    let (algorithm, parameters) = raw
        .split_once(|c: char| c.is_ascii_whitespace())
        .unwrap_or((raw, ""));
    if algorithm != ALGORITHM {
        // [F] SSM (AWS JSON 1.1) answers `Authorization=AWS xxxxx:yyyyyyy` with
        // all three "requires" sentences: the parameters are not even parsed.
        return Err(requires_message(
            &[CREDENTIAL, SIGNATURE, SIGNED_HEADERS],
            date_missing,
            raw,
        ));
    }

    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    // AWS splits on commas *and* whitespace: `Credential= AKID/...` yields a
    // lone `AKID/...` token and the missing-equal-sign error [F: Cloud9,
    // DynamoDB, STS, CloudFormation].
    for token in parameters
        .split(|c: char| c == ',' || c.is_ascii_whitespace())
        .filter(|token| !token.is_empty())
    {
        let Some((key, value)) = token.split_once('=') else {
            return Err(SigV4Error::incomplete(format!(
                "'{token}' not a valid key=value pair (missing equal-sign) in Authorization header: '{raw}'."
            )));
        };
        let slot = match key {
            CREDENTIAL => &mut credential,
            SIGNED_HEADERS => &mut signed_headers,
            SIGNATURE => &mut signature,
            _ => continue,
        };
        slot.get_or_insert(value);
    }

    let mut missing = Vec::new();
    if credential.is_none() {
        missing.push(CREDENTIAL);
    }
    if signature.is_none() {
        missing.push(SIGNATURE);
    }
    if signed_headers.is_none() {
        missing.push(SIGNED_HEADERS);
    }
    let (Some(credential), Some(signed_headers), Some(signature)) =
        (credential, signed_headers, signature)
    else {
        return Err(requires_message(&missing, date_missing, raw));
    };
    if date_missing {
        return Err(requires_message(&[], true, raw));
    }

    let mut scope = credential.split('/');
    let (
        Some(access_key_id),
        Some(scope_date),
        Some(region),
        Some(service),
        Some(terminator),
        None,
    ) = (
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
    )
    else {
        // [F] Resource Groups Tagging API (AWS JSON 1.1), IncompleteSignatureException.
        return Err(SigV4Error::incomplete(format!(
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '{credential}'"
        )));
    };
    if terminator != TERMINATOR {
        return Err(SigV4Error::InvalidTerminator {
            terminator: terminator.to_owned(),
        });
    }

    let signed_headers: Vec<String> = signed_headers
        .split(';')
        .filter(|name| !name.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    // Without `host` a captured signature could be replayed against another
    // virtual host. Text [F]: API Gateway / Location Service; code [E].
    if !signed_headers.iter().any(|name| name == "host") {
        return Err(SigV4Error::incomplete(
            "'Host' must be a 'SignedHeader' in the AWS Authorization.",
        ));
    }

    let (request_time, amz_date) = match date {
        RequestDate::Parsed { time, amz_date } => (time, amz_date),
        // [E, from memory of AWS JSON services].
        RequestDate::Malformed(value) => {
            return Err(SigV4Error::incomplete(format!(
                "Date must be in ISO-8601 'basic format'. Got '{value}'. See http://en.wikipedia.org/wiki/ISO_8601"
            )));
        }
        RequestDate::Missing => unreachable!("a missing date was reported above"),
    };

    Ok(Authorization {
        access_key_id: access_key_id.to_owned(),
        scope_date: scope_date.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
        signed_headers,
        signature: Signature(signature.to_owned()),
        request_time,
        amz_date,
    })
}

const CREDENTIAL: &str = "Credential";
const SIGNATURE: &str = "Signature";
const SIGNED_HEADERS: &str = "SignedHeaders";

/// \[F\] e.g. SES, SSM, API Gateway: `Authorization header requires 'Credential'
/// parameter. Authorization header requires 'Signature' parameter.
/// Authorization header requires 'SignedHeaders' parameter. Authorization
/// header requires existence of either a 'X-Amz-Date' or a 'Date' header.
/// Authorization=<the header as sent>`; always in that order.
fn requires_message(missing: &[&str], date_missing: bool, raw: &str) -> SigV4Error {
    let mut message = String::new();
    for parameter in missing {
        message.push_str(&format!(
            "Authorization header requires '{parameter}' parameter. "
        ));
    }
    if date_missing {
        message.push_str(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. ",
        );
    }
    message.push_str("Authorization=");
    message.push_str(raw);
    SigV4Error::incomplete(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amz_date_parses_only_the_basic_format() {
        let time = parse_amz_date("20150830T123600Z").unwrap();
        assert_eq!(format_amz_date(time), "20150830T123600Z");
        for bad in [
            "",
            "20150830",
            "2015-08-30T12:36:00Z",
            "20150830T123600",
            "20150830 123600Z",
            "20151330T123600Z",
            "20150830T256000Z",
            "2015083OT123600Z",
            "+0150830T123600Z",
            "20150830T123600z",
        ] {
            assert!(parse_amz_date(bad).is_none(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn signature_compares_whole_strings_only() {
        let signature = Signature("abc".to_owned());
        assert!(signature.matches(b"abc"));
        assert!(!signature.matches(b"abd"));
        assert!(!signature.matches(b"ab"));
        assert!(!signature.matches(b"ABC"));
        assert_eq!(format!("{signature:?}"), "Signature(<redacted>)");
    }
}
