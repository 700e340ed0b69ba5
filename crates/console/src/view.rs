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
