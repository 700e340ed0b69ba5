//! Domain vocabulary: Regions and partitions, ARNs, timestamps, secret values.

use serde::{Serialize, Serializer};
use zeroize::Zeroizing;

/// Every public AWS Region and its partition, so ARNs carry the right partition and replication
/// never crosses one.
const REGIONS: &[(&str, &str)] = &[
    ("us-east-1", "aws"),
    ("us-east-2", "aws"),
    ("us-west-1", "aws"),
    ("us-west-2", "aws"),
    ("af-south-1", "aws"),
    ("ap-east-1", "aws"),
    ("ap-east-2", "aws"),
    ("ap-south-1", "aws"),
    ("ap-south-2", "aws"),
    ("ap-southeast-1", "aws"),
    ("ap-southeast-2", "aws"),
    ("ap-southeast-3", "aws"),
    ("ap-southeast-4", "aws"),
    ("ap-southeast-5", "aws"),
    ("ap-southeast-6", "aws"),
    ("ap-southeast-7", "aws"),
    ("ap-northeast-1", "aws"),
    ("ap-northeast-2", "aws"),
    ("ap-northeast-3", "aws"),
    ("ca-central-1", "aws"),
    ("ca-west-1", "aws"),
    ("eu-central-1", "aws"),
    ("eu-central-2", "aws"),
    ("eu-west-1", "aws"),
    ("eu-west-2", "aws"),
    ("eu-west-3", "aws"),
    ("eu-south-1", "aws"),
    ("eu-south-2", "aws"),
    ("eu-north-1", "aws"),
    ("il-central-1", "aws"),
    ("me-south-1", "aws"),
    ("me-central-1", "aws"),
    ("mx-central-1", "aws"),
    ("sa-east-1", "aws"),
    ("cn-north-1", "aws-cn"),
    ("cn-northwest-1", "aws-cn"),
    ("us-gov-west-1", "aws-us-gov"),
    ("us-gov-east-1", "aws-us-gov"),
    ("us-iso-east-1", "aws-iso"),
    ("us-iso-west-1", "aws-iso"),
    ("us-isob-east-1", "aws-iso-b"),
    ("eusc-de-east-1", "aws-eusc"),
];

/// Every AWS Region Coffer knows, with its partition, in a stable order.
pub fn regions() -> impl Iterator<Item = (&'static str, &'static str)> {
    REGIONS.iter().copied()
}

/// The partition of a known AWS Region, `None` for a name AWS does not have.
pub fn partition_of(region: &str) -> Option<&'static str> {
    REGIONS.iter().find(|(r, _)| *r == region).map(|(_, p)| *p)
}

pub fn secret_arn(
    partition: &str,
    region: &str,
    account: &str,
    name: &str,
    suffix: &str,
) -> String {
    format!("arn:{partition}:secretsmanager:{region}:{account}:secret:{name}-{suffix}")
}

/// The six random characters AWS appends to a secret's name in its ARN.
pub fn arn_suffix() -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..6)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

/// A parsed `arn:partition:service:region:account:resource`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub resource: &'a str,
}

impl<'a> Arn<'a> {
    pub fn parse(s: &'a str) -> Option<Arn<'a>> {
        let mut parts = s.splitn(6, ':');
        if parts.next()? != "arn" {
            return None;
        }
        Some(Arn {
            partition: parts.next()?,
            service: parts.next()?,
            region: parts.next()?,
            account: parts.next()?,
            resource: parts.next()?,
        })
    }
}

pub const MS_PER_DAY: i64 = 86_400_000;

/// Midnight UTC of the day containing `ms`, in epoch seconds (LastAccessedDate's resolution).
pub fn day_of(ms: i64) -> i64 {
    ms.div_euclid(MS_PER_DAY) * 86_400
}

/// Epoch milliseconds, written as AWS writes timestamps: a JSON number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn from_day(day_secs: i64) -> Timestamp {
        Timestamp(day_secs * 1000)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 % 1000 == 0 {
            s.serialize_i64(self.0 / 1000)
        } else {
            s.serialize_f64(self.0 as f64 / 1000.0)
        }
    }
}

/// A secret's plaintext. `Debug` never shows it; memory is zeroized on drop.
pub enum SecretValue {
    String(Zeroizing<String>),
    Binary(Zeroizing<Vec<u8>>),
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretValue::String(_) => f.write_str("SecretValue::String(<redacted>)"),
            SecretValue::Binary(_) => f.write_str("SecretValue::Binary(<redacted>)"),
        }
    }
}

impl PartialEq for SecretValue {
    fn eq(&self, other: &SecretValue) -> bool {
        use subtle_eq::ct_eq;
        match (self, other) {
            (SecretValue::String(a), SecretValue::String(b)) => ct_eq(a.as_bytes(), b.as_bytes()),
            (SecretValue::Binary(a), SecretValue::Binary(b)) => ct_eq(a, b),
            _ => false,
        }
    }
}

impl SecretValue {
    pub fn kind(&self) -> coffer_store::ValueKind {
        match self {
            SecretValue::String(_) => coffer_store::ValueKind::String,
            SecretValue::Binary(_) => coffer_store::ValueKind::Binary,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        match self {
            SecretValue::String(s) => s.as_bytes(),
            SecretValue::Binary(b) => b,
        }
    }
}

mod subtle_eq {
    /// Length-revealing but otherwise constant-time comparison of two values.
    pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_json_numbers_of_seconds() {
        assert_eq!(
            serde_json::to_string(&Timestamp(1523477145713)).unwrap(),
            "1523477145.713"
        );
        assert_eq!(
            serde_json::to_string(&Timestamp(1523923200000)).unwrap(),
            "1523923200"
        );
    }

    #[test]
    fn last_accessed_day_is_midnight_utc() {
        // 2018-04-17T13:45:00Z -> 2018-04-17T00:00:00Z
        assert_eq!(day_of(1523972700000), 1523923200);
    }

    #[test]
    fn partitions_are_known_for_every_region() {
        assert_eq!(partition_of("us-east-1"), Some("aws"));
        assert_eq!(partition_of("us-gov-west-1"), Some("aws-us-gov"));
        assert_eq!(partition_of("cn-north-1"), Some("aws-cn"));
        assert_eq!(partition_of("moon-east-1"), None);
    }

    #[test]
    fn secret_values_never_show_in_debug() {
        let v = SecretValue::String(Zeroizing::new("hunter2".into()));
        assert!(!format!("{v:?}").contains("hunter2"));
    }
}
