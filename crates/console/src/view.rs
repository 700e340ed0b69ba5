//! How values are written on the pages: dates, badges, links.

use coffer_core::model::Timestamp;

use crate::form::url;

/// `2026-05-01 14:03 UTC`; "—" when absent.
pub fn time(ts: Option<Timestamp>) -> String {
    ts.and_then(|t| chrono::DateTime::from_timestamp_millis(t.0))
        .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "—".to_string())
}

/// LastAccessedDate has day resolution: `2026-05-01`.
pub fn day(ts: Option<Timestamp>) -> String {
    ts.and_then(|t| chrono::DateTime::from_timestamp_millis(t.0))
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "—".to_string())
}

/// A secret name as HTML that a narrow column wraps after a "/" (`<wbr>`), never in the middle
/// of a path segment: `prod/<wbr>orders/<wbr>db`. Everything else is escaped.
pub fn breakable_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 8);
    for c in name.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '/' => out.push_str("/<wbr>"),
            c => out.push(c),
        }
    }
    out
}

/// AWS's name of a Region, as its console shows it; `None` for a Region it has no name for.
pub fn region_name(region: &str) -> Option<&'static str> {
    Some(match region {
        "us-east-1" => "US East (N. Virginia)",
        "us-east-2" => "US East (Ohio)",
        "us-west-1" => "US West (N. California)",
        "us-west-2" => "US West (Oregon)",
        "af-south-1" => "Africa (Cape Town)",
        "ap-east-1" => "Asia Pacific (Hong Kong)",
        "ap-east-2" => "Asia Pacific (Taipei)",
        "ap-south-1" => "Asia Pacific (Mumbai)",
        "ap-south-2" => "Asia Pacific (Hyderabad)",
        "ap-southeast-1" => "Asia Pacific (Singapore)",
        "ap-southeast-2" => "Asia Pacific (Sydney)",
        "ap-southeast-3" => "Asia Pacific (Jakarta)",
        "ap-southeast-4" => "Asia Pacific (Melbourne)",
        "ap-southeast-5" => "Asia Pacific (Malaysia)",
        "ap-southeast-6" => "Asia Pacific (New Zealand)",
        "ap-southeast-7" => "Asia Pacific (Thailand)",
        "ap-northeast-1" => "Asia Pacific (Tokyo)",
        "ap-northeast-2" => "Asia Pacific (Seoul)",
        "ap-northeast-3" => "Asia Pacific (Osaka)",
        "ca-central-1" => "Canada (Central)",
        "ca-west-1" => "Canada West (Calgary)",
        "eu-central-1" => "Europe (Frankfurt)",
        "eu-central-2" => "Europe (Zurich)",
        "eu-west-1" => "Europe (Ireland)",
        "eu-west-2" => "Europe (London)",
        "eu-west-3" => "Europe (Paris)",
        "eu-south-1" => "Europe (Milan)",
        "eu-south-2" => "Europe (Spain)",
        "eu-north-1" => "Europe (Stockholm)",
        "il-central-1" => "Israel (Tel Aviv)",
        "me-south-1" => "Middle East (Bahrain)",
        "me-central-1" => "Middle East (UAE)",
        "mx-central-1" => "Mexico (Central)",
        "sa-east-1" => "South America (São Paulo)",
        "cn-north-1" => "China (Beijing)",
        "cn-northwest-1" => "China (Ningxia)",
        "us-gov-west-1" => "AWS GovCloud (US-West)",
        "us-gov-east-1" => "AWS GovCloud (US-East)",
        _ => return None,
    })
}

/// A Region as a choice shows it: `US West (Oregon) · us-west-2`, or the code alone.
pub fn region_label(region: &str) -> String {
    match region_name(region) {
        Some(n) => format!("{n} · {region}"),
        None => region.to_string(),
    }
}

pub fn or_dash(s: Option<&str>) -> String {
    match s {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => "—".to_string(),
    }
}

/// How a secret takes part in replication, as a badge.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Role {
    Primary,
    Replica,
    Standalone,
}

impl Role {
    /// From `PrimaryRegion` as DescribeSecret/ListSecrets show it.
    pub fn of(primary_region: Option<&str>, own_region: &str) -> Role {
        match primary_region {
            Some(p) if p == own_region => Role::Primary,
            Some(_) => Role::Replica,
            None => Role::Standalone,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Role::Primary => "Primary",
            Role::Replica => "Replica",
            Role::Standalone => "Not replicated",
        }
    }

    pub fn class(self) -> &'static str {
        match self {
            Role::Primary => "badge badge-primary",
            Role::Replica => "badge badge-replica",
            Role::Standalone => "badge badge-plain",
        }
    }
}

/// The badge class of a replication status.
pub fn status_class(status: coffer_core::replication::ReplicaState) -> &'static str {
    use coffer_core::replication::ReplicaState;
    match status {
        ReplicaState::InSync => "badge badge-ok",
        ReplicaState::Failed => "badge badge-failed",
        ReplicaState::InProgress => "badge badge-progress",
    }
}

pub fn secret_url(region: &str, name: &str) -> String {
    url("/console/secret", &[("region", region), ("name", name)])
}

pub fn secret_page_url(page: &str, region: &str, name: &str) -> String {
    url(
        &format!("/console/secret/{page}"),
        &[("region", region), ("name", name)],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_have_their_aws_names() {
        assert_eq!(region_label("us-west-2"), "US West (Oregon) · us-west-2");
        assert_eq!(region_label("xx-nowhere-9"), "xx-nowhere-9");
        for (r, _) in coffer_core::model::regions() {
            if !r.contains("iso") && !r.starts_with("eusc") {
                assert!(region_name(r).is_some(), "{r}");
            }
        }
    }

    #[test]
    fn names_break_after_slashes_and_are_escaped() {
        assert_eq!(
            breakable_name("prod/a<b>&\"'"),
            "prod/<wbr>a&lt;b&gt;&amp;&quot;&#39;"
        );
    }

    #[test]
    fn dates_are_utc_and_days_have_no_time() {
        assert_eq!(
            time(Some(Timestamp(1_523_477_145_713))),
            "2018-04-11 20:05 UTC"
        );
        assert_eq!(day(Some(Timestamp(1_523_923_200_000))), "2018-04-17");
        assert_eq!(time(None), "—");
    }

    #[test]
    fn roles_follow_primary_region() {
        assert_eq!(Role::of(Some("us-west-2"), "us-west-2"), Role::Primary);
        assert_eq!(Role::of(Some("us-west-2"), "eu-west-1"), Role::Replica);
        assert_eq!(Role::of(None, "eu-west-1"), Role::Standalone);
    }
}
