//! The Condition element: operators, set qualifiers, `...IfExists`, and how a condition holds
//! for a request (IAM's "Condition operators" and "Multivalued context keys" references).
//!
//! Semantics implemented:
//! - several values for one key are ORed; several keys, and several operators, are ANDed;
//! - a negated operator (`StringNotEquals`, `NotIpAddress`, ...) holds when no request value
//!   matches any policy value;
//! - a key missing from the request: `...IfExists` holds; `Null: true` holds; `ForAllValues:`
//!   holds (vacuously); `ForAnyValue:` does not; otherwise a negated operator holds and a
//!   positive one does not (IAM: "If the policy condition requires that the key is not
//!   matched, such as StringNotLike or ArnNotLike, and the right key is not present, the
//!   condition is true");
//! - `ForAnyValue:` holds when at least one request value satisfies the operator,
//!   `ForAllValues:` when every one does; without a qualifier a multi-valued key behaves as
//!   `ForAnyValue:` for positive operators and "no value matches" for negated ones.

use std::net::IpAddr;

use serde_json::{Map, Value};

use crate::glob::{self, Tok};
use crate::policy::{Pattern, PolicyError, Version};
use crate::{Principal, Request};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Base {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    Arn,
    NumericEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    DateEquals,
    DateLessThan,
    DateLessThanEquals,
    DateGreaterThan,
    DateGreaterThanEquals,
    Bool,
    BinaryEquals,
    IpAddress,
    Null,
}

/// Operator names IAM knows, with their base and whether they are negated.
const OPERATORS: &[(&str, Base, bool)] = &[
    ("StringEquals", Base::StringEquals, false),
    ("StringNotEquals", Base::StringEquals, true),
    (
        "StringEqualsIgnoreCase",
        Base::StringEqualsIgnoreCase,
        false,
    ),
    (
        "StringNotEqualsIgnoreCase",
        Base::StringEqualsIgnoreCase,
        true,
    ),
    ("StringLike", Base::StringLike, false),
    ("StringNotLike", Base::StringLike, true),
    // IAM: ArnEquals and ArnLike behave identically (both take wildcards per ARN segment).
    ("ArnEquals", Base::Arn, false),
    ("ArnLike", Base::Arn, false),
    ("ArnNotEquals", Base::Arn, true),
    ("ArnNotLike", Base::Arn, true),
    ("NumericEquals", Base::NumericEquals, false),
    ("NumericNotEquals", Base::NumericEquals, true),
    ("NumericLessThan", Base::NumericLessThan, false),
    ("NumericLessThanEquals", Base::NumericLessThanEquals, false),
    ("NumericGreaterThan", Base::NumericGreaterThan, false),
    (
        "NumericGreaterThanEquals",
        Base::NumericGreaterThanEquals,
        false,
    ),
    ("DateEquals", Base::DateEquals, false),
    ("DateNotEquals", Base::DateEquals, true),
    ("DateLessThan", Base::DateLessThan, false),
    ("DateLessThanEquals", Base::DateLessThanEquals, false),
    ("DateGreaterThan", Base::DateGreaterThan, false),
    ("DateGreaterThanEquals", Base::DateGreaterThanEquals, false),
    ("Bool", Base::Bool, false),
    ("BinaryEquals", Base::BinaryEquals, false),
    ("IpAddress", Base::IpAddress, false),
    ("NotIpAddress", Base::IpAddress, true),
    ("Null", Base::Null, false),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SetOp {
    ForAnyValue,
    ForAllValues,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub(crate) fn parse(s: &str) -> Option<Cidr> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (
                a.trim().parse::<IpAddr>().ok()?,
                Some(p.trim().parse::<u8>().ok()?),
            ),
            None => (s.trim().parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Cidr { addr, prefix })
    }

    pub(crate) fn prefix(&self) -> u8 {
        self.prefix
    }

    pub(crate) fn is_v4(&self) -> bool {
        self.addr.is_ipv4()
    }

    fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4-mapped IPv6 address (::ffff:a.b.c.d, as dual-stack sockets report IPv4 peers)
        // is compared as the IPv4 address.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.prefix)
                };
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.prefix)
                };
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The policy's values for one key, parsed for the operator.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Values {
    /// StringEquals(IgnoreCase); may hold policy variables.
    Text(Vec<String>),
    /// BinaryEquals: the policy's base64 values, decoded.
    Bytes(Vec<Vec<u8>>),
    /// StringLike, Arn*.
    Patterns(Vec<Pattern>),
    Numbers(Vec<f64>),
    /// Seconds since the epoch.
    Dates(Vec<f64>),
    Bools(Vec<bool>),
    Cidrs(Vec<Cidr>),
    /// Null: `true` = the key must be absent.
    Null(bool),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Condition {
    /// The operator as written (`ForAnyValue:StringLikeIfExists`).
    pub operator: String,
    pub base: Base,
    pub negated: bool,
    pub set: Option<SetOp>,
    pub if_exists: bool,
    /// The key as written; looked up case-insensitively.
    pub key: String,
    pub values: Values,
    /// The values as written, for findings.
    pub raw: Vec<String>,
    version: Version,
}

fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Splits `ForAnyValue:StringLikeIfExists` into its parts; `None` for an unknown operator.
pub(crate) fn parse_operator(op: &str) -> Option<(Option<SetOp>, Base, bool, bool)> {
    let (set, rest) = if let Some(rest) = op.strip_prefix("ForAnyValue:") {
        (Some(SetOp::ForAnyValue), rest)
    } else if let Some(rest) = op.strip_prefix("ForAllValues:") {
        (Some(SetOp::ForAllValues), rest)
    } else {
        (None, op)
    };
    let (name, if_exists) = match rest.strip_suffix("IfExists") {
        Some(name) => (name, true),
        None => (rest, false),
    };
    let &(_, base, negated) = OPERATORS.iter().find(|(n, _, _)| *n == name)?;
    if base == Base::Null && (if_exists || set.is_some()) {
        return None;
    }
    Some((set, base, negated, if_exists))
}

pub(crate) fn parse(
    map: &Map<String, Value>,
    at: &str,
    version: Version,
) -> Result<Vec<Condition>, PolicyError> {
    let mut out = Vec::new();
    for (operator, keys) in map {
        let Some((set, base, negated, if_exists)) = parse_operator(operator) else {
            return Err(PolicyError(format!(
                "{at}: unknown condition operator \"{operator}\"."
            )));
        };
        let Value::Object(keys) = keys else {
            return Err(PolicyError(format!(
                "{at}: Condition operator \"{operator}\" must map condition keys to values."
            )));
        };
        if keys.is_empty() {
            return Err(PolicyError(format!(
                "{at}: Condition operator \"{operator}\" has no condition keys."
            )));
        }
        for (key, values) in keys {
            match key.split_once(':') {
                Some((vendor, name)) if !vendor.is_empty() && !name.is_empty() => {}
                _ => {
                    return Err(PolicyError(format!(
                        "{at}: condition key \"{key}\" must be prefaced by a service, as in \"aws:SourceIp\"."
                    )));
                }
            }
            let items: Vec<&Value> = match values {
                Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            if items.is_empty() {
                return Err(PolicyError(format!(
                    "{at}: condition {operator} {key} has no values."
                )));
            }
            let raw = items
                .into_iter()
                .map(|v| {
                    value_text(v).ok_or_else(|| {
                        PolicyError(format!(
                            "{at}: condition {operator} {key}: values must be strings, numbers or booleans."
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let values = typed(base, &raw, version).map_err(|bad| {
                PolicyError(format!(
                    "{at}: condition {operator} {key}: \"{bad}\" is not {}.",
                    expected(base)
                ))
            })?;
            out.push(Condition {
                operator: operator.clone(),
                base,
                negated,
                set,
                if_exists,
                key: key.clone(),
                values,
                raw,
                version,
            });
        }
    }
    Ok(out)
}

fn expected(base: Base) -> &'static str {
    match base {
        Base::NumericEquals
        | Base::NumericLessThan
        | Base::NumericLessThanEquals
        | Base::NumericGreaterThan
        | Base::NumericGreaterThanEquals => "a number",
        Base::DateEquals
        | Base::DateLessThan
        | Base::DateLessThanEquals
        | Base::DateGreaterThan
        | Base::DateGreaterThanEquals => {
            "a date (ISO 8601, such as 2026-01-31T12:00:00Z, or seconds since the epoch)"
        }
        Base::Bool | Base::Null => "\"true\" or \"false\"",
        Base::IpAddress => "an IP address or CIDR block",
        Base::BinaryEquals => "base64-encoded (such as \"Ymx1ZQ==\" for blue)",
        _ => "a valid value",
    }
}

fn typed(base: Base, raw: &[String], version: Version) -> Result<Values, String> {
    fn all<T>(raw: &[String], f: impl Fn(&str) -> Option<T>) -> Result<Vec<T>, String> {
        raw.iter().map(|r| f(r).ok_or_else(|| r.clone())).collect()
    }
    let boolean = |s: &str| match s.to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    };
    Ok(match base {
        Base::StringEquals | Base::StringEqualsIgnoreCase => Values::Text(raw.to_vec()),
        Base::BinaryEquals => Values::Bytes(all(raw, decode_base64)?),
        Base::StringLike | Base::Arn => {
            Values::Patterns(raw.iter().map(|r| Pattern::new(r, version)).collect())
        }
        Base::NumericEquals
        | Base::NumericLessThan
        | Base::NumericLessThanEquals
        | Base::NumericGreaterThan
        | Base::NumericGreaterThanEquals => Values::Numbers(all(raw, parse_number)?),
        Base::DateEquals
        | Base::DateLessThan
        | Base::DateLessThanEquals
        | Base::DateGreaterThan
        | Base::DateGreaterThanEquals => Values::Dates(all(raw, parse_date)?),
        Base::Bool => Values::Bools(all(raw, boolean)?),
        Base::IpAddress => Values::Cidrs(all(raw, Cidr::parse)?),
        Base::Null => {
            let b = all(raw, boolean)?;
            // Several Null values: AWS ORs values; "true" OR "false" always holds, and the
            // first value decides otherwise. Keep the first and document nothing cleverer.
            Values::Null(b[0])
        }
    })
}

/// Standard base64 (RFC 4648, `+/`, padded, canonical), as IAM's BinaryEquals takes its
/// values; anything else is refused.
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let text = s.trim();
    if text.is_empty() {
        return None;
    }
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

fn parse_number(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

/// ISO 8601 (`2026-01-31`, `2026-01-31T12:00:00Z`, `...T12:00:00.250+02:00`, `...T12:00Z`) or
/// seconds since the epoch, as IAM's date operators accept. Returns seconds since the epoch.
pub(crate) fn parse_date(s: &str) -> Option<f64> {
    let s = s.trim();
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
        && !s[1..].contains('-')
    {
        return parse_number(s);
    }
    let (date, time) = match s.split_once(['T', 't']) {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut parts = date.split('-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: u32 = parts.next()?.parse().ok()?;
    let day: u32 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !(1..=12).contains(&month) || day < 1 || day > days_in(year, month)
    {
        return None;
    }
    let mut seconds = days_from_civil(year, month, day) as f64 * 86_400.0;
    if let Some(time) = time {
        let (clock, offset) = if let Some(clock) = time.strip_suffix(['Z', 'z']) {
            (clock, 0.0)
        } else if let Some(i) = time.rfind(['+', '-']) {
            let (clock, off) = time.split_at(i);
            let sign = if off.starts_with('-') { -1.0 } else { 1.0 };
            let off = &off[1..];
            let (h, m) = match off.split_once(':') {
                Some((h, m)) => (h, m),
                None if off.len() == 4 => off.split_at(2),
                None => (off, "0"),
            };
            let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
            if h > 23 || m > 59 {
                return None;
            }
            (clock, sign * f64::from(h * 3600 + m * 60))
        } else {
            // No zone: UTC, the least surprising reading for a server.
            (time, 0.0)
        };
        let mut fields = clock.split(':');
        let h: u32 = fields.next()?.parse().ok()?;
        let m: u32 = fields.next()?.parse().ok()?;
        let sec: f64 = match fields.next() {
            Some(sec) => sec.parse().ok().filter(|x: &f64| x.is_finite())?,
            None => 0.0,
        };
        if fields.next().is_some() || h > 23 || m > 59 || !(0.0..61.0).contains(&sec) {
            return None;
        }
        seconds += f64::from(h * 3600 + m * 60) + sec - offset;
    }
    Some(seconds)
}

fn days_in(year: i64, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// What evaluation knows about the request: the context, with the principal's own keys
/// (`aws:PrincipalArn`, `aws:PrincipalAccount`, `aws:username`) filled in when the caller of
/// [`crate::evaluate`] did not set them.
pub(crate) struct Facts<'a> {
    pub request: &'a Request<'a>,
}

impl<'a> Facts<'a> {
    pub(crate) fn get(&self, key: &str) -> Option<&'a [String]> {
        if let Some(values) = self.request.context.get(key) {
            return Some(values);
        }
        let p: &'a Principal = self.request.principal;
        if key.eq_ignore_ascii_case("aws:PrincipalArn") {
            Some(std::slice::from_ref(&p.arn))
        } else if key.eq_ignore_ascii_case("aws:PrincipalAccount") {
            Some(std::slice::from_ref(&p.account_id))
        } else if key.eq_ignore_ascii_case("aws:username") {
            p.user_name.as_ref().map(std::slice::from_ref)
        } else {
            None
        }
    }

    /// The single value of a policy variable's key (`None` when absent or multi-valued).
    fn variable(&self, key: &str) -> Option<&'a str> {
        match self.get(key)? {
            [one] => Some(one.as_str()),
            _ => None,
        }
    }

    /// Substitutes `${key}`, `${key, 'default'}`, `${*}`, `${?}`, `${$}` into tokens; text from
    /// variables matches literally. `None` when a variable has no value and no default: the
    /// element then matches nothing (IAM).
    pub(crate) fn expand(&self, text: &str) -> Option<Vec<Tok>> {
        let mut out = Vec::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            glob::push_pattern(&mut out, &rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                glob::push_pattern(&mut out, &rest[start..]);
                return Some(out);
            };
            let inner = after[..end].trim();
            match inner {
                "*" | "?" | "$" => glob::push_literal(&mut out, inner),
                _ => {
                    let (key, default) = match inner.split_once(',') {
                        Some((k, d)) => {
                            let d = d.trim();
                            let d = d
                                .strip_prefix('\'')
                                .and_then(|d| d.strip_suffix('\''))
                                .unwrap_or(d);
                            (k.trim(), Some(d))
                        }
                        None => (inner, None),
                    };
                    glob::push_literal(&mut out, self.variable(key).or(default)?);
                }
            }
            rest = &after[end + 1..];
        }
        glob::push_pattern(&mut out, rest);
        Some(out)
    }

    pub(crate) fn pattern_matches(&self, pattern: &Pattern, text: &str, arn: bool) -> bool {
        let expanded;
        let tokens: &[Tok] = match pattern {
            Pattern::Static(tokens) => tokens,
            Pattern::Variables(raw) => match self.expand(raw) {
                Some(tokens) => {
                    expanded = tokens;
                    &expanded
                }
                None => return false,
            },
        };
        if arn {
            arn_matches(tokens, text)
        } else {
            glob::matches(tokens, text, false)
        }
    }

    fn text(&self, raw: &str, version: Version) -> Option<String> {
        if version == Version::V2012 && raw.contains("${") {
            let tokens = self.expand(raw)?;
            Some(
                tokens
                    .into_iter()
                    .map(|t| match t {
                        Tok::Lit(c) => c,
                        Tok::Star => '*',
                        Tok::One => '?',
                    })
                    .collect(),
            )
        } else {
            Some(raw.to_string())
        }
    }
}

/// ARN matching per colon-separated segment (the sixth, the resource, takes the rest).
pub(crate) fn arn_matches(pattern: &[Tok], arn: &str) -> bool {
    let mut segments: Vec<&[Tok]> = Vec::with_capacity(6);
    let mut start = 0;
    for (i, t) in pattern.iter().enumerate() {
        if segments.len() == 5 {
            break;
        }
        if *t == Tok::Lit(':') {
            segments.push(&pattern[start..i]);
            start = i + 1;
        }
    }
    segments.push(&pattern[start..]);
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if segments.len() == 6 && parts.len() == 6 {
        segments
            .iter()
            .zip(&parts)
            .all(|(p, t)| glob::matches(p, t, false))
    } else {
        // Not ARN-shaped on one side: only "*" (or an exact match) matches.
        glob::matches(pattern, arn, false) && !parts.is_empty()
    }
}

impl Condition {
    /// Whether one request value matches any of the policy's values (the positive operator).
    fn one_matches(&self, facts: &Facts, value: &str) -> bool {
        match &self.values {
            Values::Text(items) => items.iter().any(|raw| {
                let Some(expected) = facts.text(raw, self.version) else {
                    return false;
                };
                match self.base {
                    Base::StringEqualsIgnoreCase => expected.to_lowercase() == value.to_lowercase(),
                    _ => expected == value,
                }
            }),
            // A request value is its UTF-8 bytes: Coffer's keys are all text, so BinaryEquals
            // compares a key's text with the decoded policy value byte for byte.
            Values::Bytes(items) => items.iter().any(|b| b.as_slice() == value.as_bytes()),
            Values::Patterns(items) => items
                .iter()
                .any(|p| facts.pattern_matches(p, value, self.base == Base::Arn)),
            Values::Numbers(items) => {
                parse_number(value).is_some_and(|v| items.iter().any(|n| compare(self.base, v, *n)))
            }
            Values::Dates(items) => {
                parse_date(value).is_some_and(|v| items.iter().any(|n| compare(self.base, v, *n)))
            }
            Values::Bools(items) => {
                let v = value.to_ascii_lowercase();
                items.iter().any(|b| v == if *b { "true" } else { "false" })
            }
            Values::Cidrs(items) => value
                .trim()
                .parse::<IpAddr>()
                .is_ok_and(|ip| items.iter().any(|c| c.contains(ip))),
            Values::Null(_) => false,
        }
    }

    /// The operator (negation included) for one request value.
    fn satisfied_by(&self, facts: &Facts, value: &str) -> bool {
        self.one_matches(facts, value) != self.negated
    }

    pub(crate) fn holds(&self, facts: &Facts) -> bool {
        let values = facts.get(&self.key).filter(|v| !v.is_empty());
        if let Values::Null(must_be_absent) = self.values {
            return values.is_none() == must_be_absent;
        }
        let Some(values) = values else {
            if self.if_exists {
                return true;
            }
            return match self.set {
                Some(SetOp::ForAllValues) => true,
                Some(SetOp::ForAnyValue) => false,
                None => self.negated,
            };
        };
        match self.set {
            Some(SetOp::ForAnyValue) => values.iter().any(|v| self.satisfied_by(facts, v)),
            Some(SetOp::ForAllValues) => values.iter().all(|v| self.satisfied_by(facts, v)),
            None if self.negated => values.iter().all(|v| self.satisfied_by(facts, v)),
            None => values.iter().any(|v| self.satisfied_by(facts, v)),
        }
    }
}

fn compare(base: Base, value: f64, policy: f64) -> bool {
    match base {
        Base::NumericEquals | Base::DateEquals => value == policy,
        Base::NumericLessThan | Base::DateLessThan => value < policy,
        Base::NumericLessThanEquals | Base::DateLessThanEquals => value <= policy,
        Base::NumericGreaterThan | Base::DateGreaterThan => value > policy,
        Base::NumericGreaterThanEquals | Base::DateGreaterThanEquals => value >= policy,
        _ => false,
    }
}
