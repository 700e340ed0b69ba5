//! ListSecrets (spec §4.7): filters (OR within a filter, AND across filters, `!` negates),
//! IncludePlannedDeletion, SortOrder/SortBy, opaque NextToken paging.

use base64::Engine;
use coffer_store::{
    FilterKey, FilterValue, ListFilter, ListPosition, ListQuery, Secret, SortKey, whitespace_words,
    words,
};
use serde::{Deserialize, Serialize};

use super::Operation;
use crate::authorize::{Access, Target, authorize};
use crate::error::{Error, ErrorCode, Result};
use crate::operation::Operation as _;
use crate::region::{Caller, RegionService};
use crate::validate::Violations;
use crate::view::{SecretEntry, Shape, entry};

#[derive(Deserialize, Serialize, Clone)]
#[serde(rename_all = "PascalCase")]
pub struct Filter {
    pub key: Option<String>,
    pub values: Option<Vec<String>>,
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub include_planned_deletion: Option<bool>,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
    pub filters: Option<Vec<Filter>>,
    pub sort_order: Option<String>,
    pub sort_by: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    pub secret_list: Vec<SecretEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

const FILTER_KEYS: &[&str] = &[
    "description",
    "name",
    "tag-key",
    "tag-value",
    "primary-region",
    "owning-service",
    "all",
];

/// `^\!?[a-zA-Z0-9 :_@\/\+\=\.\-\!]*$`
fn valid_filter_value(s: &str) -> bool {
    let rest = s.strip_prefix('!').unwrap_or(s);
    rest.chars()
        .all(|c| c.is_ascii_alphanumeric() || " :_@/+=.-!".contains(c))
}

/// Validates a `Filters` list (0–10 filters, 1–10 values of ≤512 characters each).
pub fn check_filters(v: &mut Violations, filters: &Option<Vec<Filter>>) -> Result<()> {
    let Some(filters) = filters else {
        return Ok(());
    };
    v.count(Some(filters.len()), "filters", 0, 10);
    for (i, f) in filters.iter().enumerate() {
        let n = i + 1;
        v.one_of(
            f.key.as_deref(),
            &format!("filters.{n}.member.key"),
            FILTER_KEYS,
        );
        if let Some(values) = &f.values {
            v.count_strings(Some(values), &format!("filters.{n}.member.values"), 1, 10);
            for (j, value) in values.iter().enumerate() {
                let path = format!("filters.{n}.member.values.{}.member", j + 1);
                v.length(Some(value), &path, 0, 512);
                v.pattern(
                    Some(value),
                    &path,
                    valid_filter_value,
                    r"^\!?[a-zA-Z0-9 :_@\/\+\=\.\-\!]*$",
                );
            }
        }
    }
    Ok(())
}

/// Filters without values are refused after shape validation [E, moto's wording].
pub fn check_filter_values(filters: &Option<Vec<Filter>>) -> Result<()> {
    for f in filters.iter().flatten() {
        if f.values.as_ref().is_none_or(|v| v.is_empty()) {
            return Err(Error::invalid_parameter(format!(
                "Invalid filter values for key: {}",
                f.key.as_deref().unwrap_or_default()
            )));
        }
    }
    Ok(())
}

/// Every word of `value` is a case-insensitive prefix of some word of `text`.
fn word_prefix_match(value_words: &[String], text_words: &[String]) -> bool {
    !value_words.is_empty()
        && value_words.iter().all(|w| {
            let w = w.to_lowercase();
            text_words.iter().any(|t| t.to_lowercase().starts_with(&w))
        })
}

fn matches_one(secret: &Secret, key: &str, value: &str, primary_region: Option<&str>) -> bool {
    let r = &secret.record;
    let tags = r.tags.as_deref().unwrap_or_default();
    match key {
        "name" => r.name.starts_with(value),
        "description" => word_prefix_match(
            &whitespace_words(value),
            &whitespace_words(r.description.as_deref().unwrap_or_default()),
        ),
        "tag-key" => tags.iter().any(|t| t.key.starts_with(value)),
        "tag-value" => tags.iter().any(|t| t.value.starts_with(value)),
        // [E] prefix of PrimaryRegion; a secret that is not replicated never matches.
        "primary-region" => primary_region.is_some_and(|p| p.starts_with(value)),
        // Coffer has no AWS-managed secrets: OwningService is never set.
        "owning-service" => false,
        "all" => {
            let mut text = words(&r.name);
            text.extend(words(r.description.as_deref().unwrap_or_default()));
            for t in tags {
                text.extend(words(&t.key));
                text.extend(words(&t.value));
            }
            word_prefix_match(&words(value), &text)
        }
        _ => false,
    }
}

pub fn matches(secret: &Secret, filters: &[Filter], own_region: &str) -> bool {
    let primary = crate::view::primary_region(secret, own_region);
    let primary = primary.as_deref();
    filters.iter().all(|f| {
        let key = f.key.as_deref().unwrap_or_default();
        f.values
            .iter()
            .flatten()
            .any(|value| match value.strip_prefix('!') {
                Some(negated) => !matches_one(secret, key, negated, primary),
                None => matches_one(secret, key, value, primary),
            })
    })
}

/// Opaque offset token of the short listings that are read whole (ListSecretVersionIds: the
/// versions of one secret), base64-encoded.
pub fn page_token(token: Option<&str>) -> Result<usize> {
    let Some(token) = token else { return Ok(0) };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("coffer-page:").and_then(|n| n.parse().ok()))
        .ok_or_else(invalid_next_token)
}

pub fn page<T>(items: Vec<T>, start: usize, size: usize) -> (Vec<T>, Option<String>) {
    let total = items.len();
    let end = start.saturating_add(size).min(total);
    let next = (end < total).then(|| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("coffer-page:{end}"))
    });
    let items = items
        .into_iter()
        .skip(start)
        .take(end.saturating_sub(start))
        .collect();
    (items, next)
}

/// The in-memory evaluator ListSecrets used before the store evaluated listings (issue 13):
/// every secret of `secrets` that the filters keep, in the listing's order. Kept as the oracle
/// of the differential test (`tests/list_differential.rs`); no request path calls it.
pub fn select_in_memory(
    secrets: Vec<Secret>,
    filters: &[Filter],
    include_planned_deletion: bool,
    sort_by: Option<&str>,
    descending: bool,
    own_region: &str,
) -> Vec<Secret> {
    let mut secrets: Vec<Secret> = secrets
        .into_iter()
        .filter(|s| include_planned_deletion || s.record.deleted_ms.is_none())
        .filter(|s| matches(s, filters, own_region))
        .collect();
    // Oldest first by default [V-weak]; ties broken by ARN so pages are stable.
    match sort_by.unwrap_or("created-date") {
        "name" => secrets.sort_by(|a, b| a.record.name.cmp(&b.record.name)),
        "last-changed-date" => {
            secrets.sort_by_key(|s| (s.record.last_changed_ms, s.record.arn.clone()))
        }
        "last-accessed-date" => {
            secrets.sort_by_key(|s| (s.record.last_accessed_day, s.record.arn.clone()))
        }
        _ => secrets.sort_by_key(|s| (s.record.created_ms, s.record.arn.clone())),
    }
    if descending {
        secrets.reverse();
    }
    secrets
}

fn sort_key(sort_by: Option<&str>) -> SortKey {
    match sort_by.unwrap_or("created-date") {
        "name" => SortKey::Name,
        "last-changed-date" => SortKey::LastChangedDate,
        "last-accessed-date" => SortKey::LastAccessedDate,
        _ => SortKey::CreatedDate,
    }
}

/// The filters as the store evaluates them (keys and values were validated before).
pub fn store_filters(filters: &[Filter]) -> Vec<ListFilter> {
    filters
        .iter()
        .map(|f| ListFilter {
            key: match f.key.as_deref().unwrap_or_default() {
                "name" => FilterKey::Name,
                "description" => FilterKey::Description,
                "tag-key" => FilterKey::TagKey,
                "tag-value" => FilterKey::TagValue,
                "primary-region" => FilterKey::PrimaryRegion,
                "all" => FilterKey::All,
                // "owning-service", the only other key check_filters lets through.
                _ => FilterKey::OwningService,
            },
            values: f
                .values
                .iter()
                .flatten()
                .map(|v| match v.strip_prefix('!') {
                    Some(rest) => FilterValue {
                        negated: true,
                        value: rest.to_string(),
                    },
                    None => FilterValue {
                        negated: false,
                        value: v.clone(),
                    },
                })
                .collect(),
        })
        .collect()
}

/// What a listing is: the operation, the account and every input that decides which secrets
/// it shows in which order. A NextToken is only valid for the listing it came from.
pub struct Listing<'a> {
    pub operation: &'static str,
    pub account_id: &'a str,
    pub filters: &'a [Filter],
    pub include_planned_deletion: bool,
    pub sort_by: Option<&'a str>,
    pub descending: bool,
}

/// The NextToken: the position of the last secret shown (keyset pagination, never an offset)
/// and a fingerprint of the listing it belongs to.
#[derive(Serialize, Deserialize)]
struct ListToken {
    /// Token format.
    v: u32,
    /// [`Listing::fingerprint`].
    q: String,
    p: ListPosition,
}

const LIST_TOKEN_FORMAT: u32 = 1;

impl Listing<'_> {
    /// FNV-1a (64 bits) of the listing's inputs: stable across processes and versions, so a
    /// token stays valid on another node of the Region or after a restart.
    fn fingerprint(&self) -> String {
        let canonical = serde_json::to_string(&(
            self.operation,
            self.account_id,
            self.filters,
            self.include_planned_deletion,
            self.sort_by.unwrap_or("created-date"),
            self.descending,
        ))
        .expect("listing serializes");
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in canonical.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("{hash:016x}")
    }

    /// The position a NextToken names. Anything but a token this listing handed out is
    /// `InvalidNextTokenException` [D: "The NextToken value is invalid."]: garbage, a token of
    /// another operation, account, filter or sort order (AWS's behaviour there is not
    /// recorded; a position in one listing means nothing in another, so it is refused), and
    /// the offset tokens of Coffer before issue 13.
    fn position(&self, token: Option<&str>) -> Result<Option<ListPosition>> {
        let Some(token) = token else { return Ok(None) };
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .ok()
            .and_then(|b| serde_json::from_slice::<ListToken>(&b).ok())
            .filter(|t| t.v == LIST_TOKEN_FORMAT && t.q == self.fingerprint())
            .map(|t| Some(t.p))
            .ok_or_else(invalid_next_token)
    }

    fn token(&self, position: ListPosition) -> String {
        let token = ListToken {
            v: LIST_TOKEN_FORMAT,
            q: self.fingerprint(),
            p: position,
        };
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&token).expect("token serializes"))
    }

    /// One page: at most `limit` secrets after the token's position, and the token of the
    /// next page when more follow. The store evaluates filters and order with its indexes.
    pub async fn page(
        &self,
        region: &RegionService,
        next_token: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Secret>, Option<String>)> {
        let after = self.position(next_token)?;
        let filters = store_filters(self.filters);
        let page = region
            .store
            .list_page(&ListQuery {
                account_id: self.account_id,
                filters: &filters,
                include_planned_deletion: self.include_planned_deletion,
                sort: sort_key(self.sort_by),
                descending: self.descending,
                after: after.as_ref(),
                limit,
            })
            .await?;
        Ok((page.secrets, page.next.map(|p| self.token(p))))
    }
}

fn invalid_next_token() -> Error {
    Error::new(
        ErrorCode::InvalidNextToken,
        "The NextToken value is invalid.",
    )
}

pub async fn run(region: &RegionService, caller: &Caller, input: Input) -> Result<Output> {
    let mut v = Violations::new();
    v.range(input.max_results, "maxResults", 1, 100);
    v.length(input.next_token.as_deref(), "nextToken", 1, 4096);
    v.one_of(input.sort_order.as_deref(), "sortOrder", &["asc", "desc"]);
    v.one_of(
        input.sort_by.as_deref(),
        "sortBy",
        &[
            "created-date",
            "last-accessed-date",
            "last-changed-date",
            "name",
        ],
    );
    check_filters(&mut v, &input.filters)?;
    v.finish()?;
    authorize(
        region,
        caller,
        &Access::new(Operation::ListSecrets.action()),
        Target::Everything,
    )?;
    check_filter_values(&input.filters)?;
    let listing = Listing {
        operation: "ListSecrets",
        account_id: &caller.account_id,
        filters: input.filters.as_deref().unwrap_or_default(),
        include_planned_deletion: input.include_planned_deletion.unwrap_or(false),
        sort_by: input.sort_by.as_deref(),
        descending: input.sort_order.as_deref() == Some("desc"),
    };
    let (page, next_token) = listing
        .page(
            region,
            input.next_token.as_deref(),
            input.max_results.unwrap_or(100) as usize,
        )
        .await?;
    Ok(Output {
        secret_list: page
            .iter()
            .map(|s| entry(s, Shape::List, &region.region))
            .collect(),
        next_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn description_filter_is_word_prefix() {
        let m = |v: &str, d: &str| word_prefix_match(&whitespace_words(v), &whitespace_words(d));
        assert!(m("a", "a secret"));
        assert!(m("a", "an secret"));
        assert!(m("a", "asecret"));
        assert!(!m("a", "thesecret"));
        assert!(m("a secret", "an secret"));
        assert!(!m("a secret", "asecret"));
        assert!(m("o t", "one and two"));
    }

    #[test]
    fn page_tokens_round_trip_and_reject_garbage() {
        let (items, next) = page(vec![1, 2, 3], 0, 2);
        assert_eq!(items, [1, 2]);
        assert_eq!(page_token(next.as_deref()).unwrap(), 2);
        assert!(page_token(Some("garbage")).is_err());
    }
}
