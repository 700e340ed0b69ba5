//! One behavioural suite for every storage backend: each case in [`cases`] is written once
//! against `Arc<dyn Store>` / `Arc<dyn IamStore>` and runs as `sqlite::<case>` (a temporary
//! file) and `postgres::<case>` (a fresh schema in the database named by
//! `COFFER_TEST_POSTGRES_URL`; start one with `eval "$(scripts/postgres.sh start)"`). Without
//! that variable the PostgreSQL tests fail: they are never skipped.
//!
//! [`postgres_only`] adds what only a shared database has: several nodes opening, migrating and
//! writing one Region at once, and schemas that are not Coffer's.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;

use coffer_store::{
    AccessKeyRecord, KmsAliasRecord, KmsChange, KmsKeyRecord, OutboxEntry, OutboxRow, Secret,
    SecretChange, SecretRecord, Store, StoreError, Tag, UserPolicyRecord, UserRecord, ValueKind,
    VersionRecord, Versions,
};

use support::Backend;

const ACCOUNT: &str = "111122223333";
const OTHER_ACCOUNT: &str = "444455556666";

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The Region store format this Coffer writes (the number of its migrations).
fn current_format() -> String {
    coffer_store::RegionSnapshot::current_format_version().to_string()
}

fn arn(account: &str, name: &str) -> String {
    format!("arn:aws:secretsmanager:us-east-1:{account}:secret:{name}-AbCdEf")
}

fn secret(account: &str, name: &str, created_ms: i64) -> SecretRecord {
    SecretRecord {
        arn: arn(account, name),
        account_id: account.to_string(),
        name: name.to_string(),
        description: Some(format!("the {name} secret")),
        kms_key_id: None,
        tags: None,
        resource_policy: None,
        created_ms,
        last_changed_ms: created_ms,
        last_accessed_day: None,
        deleted_ms: None,
        purge_at_ms: None,
        rotation: None,
        replication: None,
        row_version: 1,
    }
}

fn version(secret_arn: &str, id: &str, created_ms: i64, stages: &[&str]) -> VersionRecord {
    VersionRecord {
        secret_arn: secret_arn.to_string(),
        version_id: id.to_string(),
        stages: stages.iter().map(|s| s.to_string()).collect(),
        created_ms,
        last_accessed_day: None,
        kms_key_arn: Some("arn:aws:kms:us-east-1:111122223333:key/k1".to_string()),
        value_kind: ValueKind::String,
        wrapped_data_key: Some(vec![0, 1, 2, 255, 254]),
        ciphertext: Some(format!("ciphertext of {id}").into_bytes()),
    }
}

async fn insert(store: &Arc<dyn Store>, secret: SecretRecord, versions: Vec<VersionRecord>) {
    store
        .commit(SecretChange::Insert { secret, versions })
        .await
        .expect("insert");
}

async fn load(store: &Arc<dyn Store>, arn: &str) -> Secret {
    store
        .load_secret_by_arn(arn)
        .await
        .expect("load")
        .unwrap_or_else(|| panic!("{arn} is missing"))
}

/// The versions of `secret` that carry a staging label, in the stores' order.
fn labelled_of(secret: &Secret) -> Vec<VersionRecord> {
    secret
        .versions
        .iter()
        .filter(|v| !v.stages.is_empty())
        .cloned()
        .collect()
}

fn update(secret: &SecretRecord) -> SecretChange {
    let mut next = secret.clone();
    next.row_version += 1;
    SecretChange::Update {
        secret: next,
        expected_row_version: secret.row_version,
        upsert_versions: Vec::new(),
        delete_versions: Vec::new(),
    }
}

fn entry(secret_arn: &str, dest: &str, kind: &str, payload: &str) -> OutboxEntry {
    OutboxEntry {
        secret_arn: secret_arn.to_string(),
        dest_region: dest.to_string(),
        kind: kind.to_string(),
        payload: payload.to_string(),
    }
}

fn assert_conflict<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::Conflict) => {}
        other => panic!("{what}: expected Conflict, got {other:?}"),
    }
}

fn ids(rows: &[OutboxRow]) -> Vec<i64> {
    rows.iter().map(|r| r.id).collect()
}

/// Generates `sqlite::<case>` and `postgres::<case>` for every case.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let backend = crate::support::Backend::sqlite();
                    crate::cases::$case(&backend).await;
                    backend.cleanup().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let backend = crate::support::Backend::postgres();
                    crate::cases::$case(&backend).await;
                    backend.cleanup().await;
                }
            )*
        }
    };
}

conformance!(
    access_key_quota_holds_under_concurrent_creations,
    the_first_account_is_bootstrapped_once,
    insert_and_load_by_name_and_arn,
    list_is_oldest_first_per_account,
    names_and_arns_are_unique,
    stale_row_version_is_a_conflict,
    versions_are_upserted_and_deleted,
    labelled_loads_carry_the_labelled_versions,
    labelled_copies_are_written_when_the_store_is_migrated,
    delete_removes_the_secret_and_its_versions,
    record_access_is_not_a_change,
    many_reads_record_their_days_at_once,
    secrets_due_for_purge,
    kms_keys_and_aliases,
    kms_keys_are_listed_updated_and_deleted,
    outbox_rows_commit_with_the_change_or_not_at_all,
    outbox_rows_commit_with_a_kms_change_or_not_at_all,
    claims_hold_a_lease_until_it_expires,
    an_owner_takes_back_its_own_leases,
    concurrent_claimers_split_the_rows,
    finish_retry_and_depth,
    each_destination_is_claimed_on_its_own_and_a_retry_holds_back_older_rows,
    a_promotion_is_remembered_after_the_secret_is_deleted,
    replica_heads_only_move_forward_and_replicas_are_listed,
    a_row_waits_behind_an_older_row_of_its_secret_in_backoff,
    a_claim_never_takes_a_row_ahead_of_an_older_row_of_its_secret,
    commit_and_finish_is_all_or_nothing,
    reopening_keeps_everything,
    a_newer_format_is_refused_and_left_untouched,
    a_store_of_another_kind_is_refused,
    regions_are_independent,
    iam_accounts_users_and_keys,
    iam_keys_and_policies_change,
    iam_user_tags_are_swapped_only_from_what_was_read,
    concurrent_load_modify_commit_loses_no_update,
    existing_secrets_get_search_terms_when_the_store_is_migrated,
    search_terms_keyed_by_arn_are_rekeyed_when_the_store_is_migrated,
    search_terms_follow_updates_and_deletions,
);

mod cases {
    use coffer_store::{FilterKey, FilterValue, ListFilter, ListQuery, SortKey};

    /// The names of every secret of ACCOUNT that one filter value matches (one big page).
    async fn names_matching(store: &Arc<dyn Store>, key: FilterKey, value: &str) -> Vec<String> {
        let filters = [ListFilter {
            key,
            values: vec![FilterValue {
                negated: false,
                value: value.to_string(),
            }],
        }];
        let page = store
            .list_page(&ListQuery {
                account_id: ACCOUNT,
                filters: &filters,
                include_planned_deletion: true,
                sort: SortKey::Name,
                descending: false,
                after: None,
                limit: 100,
            })
            .await
            .expect("list page");
        page.secrets.into_iter().map(|s| s.record.name).collect()
    }

    fn tagged(
        name: &str,
        created_ms: i64,
        description: &str,
        tags: &[(&str, &str)],
    ) -> SecretRecord {
        let mut rec = secret(ACCOUNT, name, created_ms);
        rec.description = Some(description.to_string());
        rec.tags = Some(
            tags.iter()
                .map(|(k, v)| Tag {
                    key: k.to_string(),
                    value: v.to_string(),
                })
                .collect(),
        );
        rec
    }

    /// A store written before the listing moved into the store (format 4) has no
    /// `secret_terms`; opening it with this version migrates it and writes the terms of the
    /// secrets it already holds, so filters find them.
    pub async fn existing_secrets_get_search_terms_when_the_store_is_migrated(b: &Backend) {
        let store = b.region().await;
        insert(
            &store,
            tagged("old/one", 1_000, "Hello World", &[("team", "Payments")]),
            Vec::new(),
        )
        .await;
        insert(
            &store,
            tagged("old/two", 2_000, "other words", &[("env", "prod")]),
            Vec::new(),
        )
        .await;
        store.close().await;
        // Back to format 5 (before 0006_list_in_store.sql): no terms table, no listing indexes.
        back_to_format_6(b).await;
        b.execute_in(
            "region",
            "DROP TABLE secret_terms; DROP INDEX secrets_by_created; DROP INDEX secrets_by_changed; \
             DROP INDEX secrets_by_accessed; DROP INDEX secrets_by_name;",
        )
        .await;
        b.set_meta("region", "format_version", "5").await;

        let store = b.region().await;
        assert_current_format(b).await;
        assert_eq!(
            names_matching(&store, FilterKey::TagKey, "te").await,
            ["old/one"]
        );
        assert_eq!(
            names_matching(&store, FilterKey::TagValue, "prod").await,
            ["old/two"]
        );
        assert_eq!(
            names_matching(&store, FilterKey::Description, "wor").await,
            ["old/one", "old/two"]
        );
        assert_eq!(
            names_matching(&store, FilterKey::All, "PAY").await,
            ["old/one"]
        );
        store.close().await;
    }

    async fn assert_current_format(b: &Backend) {
        assert!(
            b.meta("region")
                .await
                .contains(&("format_version".to_string(), current_format()))
        );
    }

    /// Undoes 0009_labelled_inline.sql (SQLite's copy of each secret's labelled versions in
    /// its row; nothing on PostgreSQL).
    async fn back_to_format_8(b: &Backend) {
        if let Backend::Sqlite { .. } = b {
            b.execute_in(
                "region",
                "DROP TRIGGER secrets_labelled; DROP TRIGGER secret_versions_labelled_insert; \
                 DROP TRIGGER secret_versions_labelled_update; \
                 DROP TRIGGER secret_versions_labelled_delete; \
                 DROP VIEW secret_labelled_versions; ALTER TABLE secrets DROP COLUMN labelled;",
            )
            .await;
        }
        b.set_meta("region", "format_version", "8").await;
    }

    /// A store from before 0009 gets every secret's copy of its labelled versions: reads by
    /// label (which on SQLite read only the copy) find the versions they found before.
    pub async fn labelled_copies_are_written_when_the_store_is_migrated(b: &Backend) {
        let store = b.region_uncached().await;
        let one = secret(ACCOUNT, "copied/one", 1_000);
        insert(
            &store,
            one.clone(),
            vec![
                version(&one.arn, "old", 1_000, &[]),
                version(&one.arn, "prev", 1_001, &["AWSPREVIOUS"]),
                version(&one.arn, "cur", 1_002, &["AWSCURRENT", "MINE"]),
            ],
        )
        .await;
        let bare = secret(ACCOUNT, "copied/bare", 2_000);
        insert(&store, bare.clone(), Vec::new()).await;
        store.close().await;
        back_to_format_8(b).await;

        let store = b.region_uncached().await;
        assert_current_format(b).await;
        for rec in [&one, &bare] {
            let full = load(&store, &rec.arn).await;
            let labelled = store
                .load_by_name(ACCOUNT, &rec.name, Versions::Labelled)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(labelled.record, full.record);
            assert_eq!(labelled.versions, labelled_of(&full), "{}", rec.name);
        }
        assert_eq!(
            labelled_of(&load(&store, &one.arn).await).len(),
            2,
            "two labelled versions"
        );
        store.close().await;
    }

    /// Undoes 0009_labelled_inline.sql, 0008_labelled_versions.sql and 0007_term_keys.sql: the
    /// terms name their secrets by ARN again, and secrets have no `term_key`.
    async fn back_to_format_6(b: &Backend) {
        back_to_format_8(b).await;
        b.execute_in("region", "DROP INDEX secret_versions_labelled;")
            .await;
        let (trigger, collate) = match b {
            Backend::Sqlite { .. } => ("DROP TRIGGER secrets_term_key;", ""),
            Backend::Postgres { .. } => ("", " COLLATE \"C\""),
        };
        b.execute_in(
            "region",
            &format!(
                "{trigger} CREATE TABLE old_terms (secret_arn TEXT NOT NULL, kind TEXT NOT NULL, \
                 term TEXT{collate} NOT NULL, PRIMARY KEY (secret_arn, kind, term)); \
                 INSERT INTO old_terms SELECT s.arn, t.kind, t.term FROM secret_terms t \
                 JOIN secrets s ON s.term_key = t.secret_key; \
                 DROP TABLE secret_terms; ALTER TABLE old_terms RENAME TO secret_terms; \
                 CREATE INDEX secret_terms_by_term ON secret_terms (kind, term); \
                 DROP INDEX secrets_by_term_key; ALTER TABLE secrets DROP COLUMN term_key;"
            ),
        )
        .await;
        b.set_meta("region", "format_version", "6").await;
    }

    /// A store whose terms name their secrets by ARN (format 6) gets them keyed by each
    /// secret's `term_key`: filters find the same secrets, a new secret takes a key of its
    /// own, and a deletion removes only its own secret's terms.
    pub async fn search_terms_keyed_by_arn_are_rekeyed_when_the_store_is_migrated(b: &Backend) {
        let store = b.region().await;
        for (i, (name, description, tag)) in [
            ("keyed/one", "alpha words", ("team", "payments")),
            ("keyed/two", "beta words", ("env", "prod")),
            ("keyed/three", "gamma words", ("team", "search")),
        ]
        .into_iter()
        .enumerate()
        {
            let rec = tagged(name, 1_000 + i as i64, description, &[tag]);
            insert(&store, rec, Vec::new()).await;
        }
        store
            .commit(SecretChange::Delete {
                arn: tagged("keyed/two", 0, "", &[]).arn,
                expected_row_version: 1,
            })
            .await
            .expect("delete");
        store.close().await;
        back_to_format_6(b).await;

        let store = b.region().await;
        assert_current_format(b).await;
        assert_eq!(
            names_matching(&store, FilterKey::Description, "words").await,
            ["keyed/one", "keyed/three"]
        );
        assert_eq!(
            names_matching(&store, FilterKey::TagValue, "search").await,
            ["keyed/three"]
        );
        let four = tagged("keyed/four", 5_000, "delta words", &[("team", "payments")]);
        insert(&store, four.clone(), Vec::new()).await;
        assert_eq!(
            names_matching(&store, FilterKey::All, "pay").await,
            ["keyed/four", "keyed/one"]
        );
        store
            .commit(SecretChange::Delete {
                arn: tagged("keyed/one", 0, "", &[]).arn,
                expected_row_version: 1,
            })
            .await
            .expect("delete");
        assert_eq!(
            names_matching(&store, FilterKey::Description, "words").await,
            ["keyed/four", "keyed/three"]
        );
        assert_eq!(
            names_matching(&store, FilterKey::TagValue, "payments").await,
            ["keyed/four"]
        );
        store.close().await;
    }

    /// Terms are written with the secret: an update replaces them, a deletion removes them.
    pub async fn search_terms_follow_updates_and_deletions(b: &Backend) {
        let store = b.region().await;
        let rec = tagged("terms", 1_000, "first text", &[("alpha", "one")]);
        insert(&store, rec.clone(), Vec::new()).await;
        assert_eq!(
            names_matching(&store, FilterKey::Description, "fir").await,
            ["terms"]
        );
        let mut changed = rec.clone();
        changed.description = Some("second text".to_string());
        changed.tags = Some(vec![Tag {
            key: "beta".into(),
            value: "two".into(),
        }]);
        changed.row_version = 2;
        store
            .commit(SecretChange::Update {
                secret: changed,
                expected_row_version: 1,
                upsert_versions: Vec::new(),
                delete_versions: Vec::new(),
            })
            .await
            .expect("update");
        assert!(
            names_matching(&store, FilterKey::Description, "fir")
                .await
                .is_empty()
        );
        assert!(
            names_matching(&store, FilterKey::TagKey, "alpha")
                .await
                .is_empty()
        );
        assert_eq!(
            names_matching(&store, FilterKey::Description, "sec").await,
            ["terms"]
        );
        assert_eq!(
            names_matching(&store, FilterKey::TagValue, "tw").await,
            ["terms"]
        );
        store
            .commit(SecretChange::Delete {
                arn: rec.arn.clone(),
                expected_row_version: 2,
            })
            .await
            .expect("delete");
        assert!(
            names_matching(&store, FilterKey::All, "sec")
                .await
                .is_empty()
        );
        store.close().await;
    }

    use super::*;

    pub async fn insert_and_load_by_name_and_arn(b: &Backend) {
        let store = b.region().await;
        let mut rec = secret(ACCOUNT, "prod/db", 1_000);
        rec.kms_key_id = Some("alias/mine".into());
        rec.tags = Some(vec![Tag {
            key: "team".into(),
            value: "ünïcødé ✓".into(),
        }]);
        rec.resource_policy = Some(r#"{"Version":"2012-10-17"}"#.into());
        rec.rotation = Some(r#"{"days":30}"#.into());
        rec.replication = Some(r#"{"Primary":{"replicas":[]}}"#.into());
        rec.last_accessed_day = Some(19_000);
        let mut empty = version(&rec.arn, "v-none", 1_001, &[]);
        empty.value_kind = ValueKind::None;
        empty.wrapped_data_key = None;
        empty.ciphertext = None;
        empty.kms_key_arn = None;
        let mut binary = version(&rec.arn, "v-bin", 1_002, &["AWSCURRENT", "custom"]);
        binary.value_kind = ValueKind::Binary;
        binary.ciphertext = Some((0..=255u8).collect());
        binary.last_accessed_day = Some(19_001);
        let versions = vec![version(&rec.arn, "v-old", 1_000, &[]), empty, binary];
        insert(&store, rec.clone(), versions.clone()).await;

        let by_arn = load(&store, &rec.arn).await;
        assert_eq!(by_arn.record, rec);
        assert_eq!(
            by_arn.versions, versions,
            "versions oldest first, all fields"
        );
        let by_name = store
            .load_secret_by_name(ACCOUNT, "prod/db")
            .await
            .unwrap()
            .expect("by name");
        assert_eq!(by_name, by_arn);

        // Tags: `Some(vec![])` stays distinct from `None`.
        let mut untagged = secret(ACCOUNT, "untagged", 1_000);
        untagged.tags = Some(Vec::new());
        insert(&store, untagged.clone(), Vec::new()).await;
        let loaded = load(&store, &untagged.arn).await;
        assert_eq!(loaded.record.tags, Some(Vec::new()));
        assert!(loaded.versions.is_empty());

        assert!(
            store
                .load_secret_by_name(OTHER_ACCOUNT, "prod/db")
                .await
                .unwrap()
                .is_none(),
            "names are per account"
        );
        assert!(
            store
                .load_secret_by_name(ACCOUNT, "prod/DB")
                .await
                .unwrap()
                .is_none(),
            "names are case-sensitive"
        );
        assert!(
            store
                .load_secret_by_arn(&arn(ACCOUNT, "missing"))
                .await
                .unwrap()
                .is_none()
        );
        store.close().await;
    }

    pub async fn list_is_oldest_first_per_account(b: &Backend) {
        let store = b.region().await;
        // Ties on created_ms are ordered by ARN, byte by byte ("B" < "a"), on every backend.
        let third = secret(ACCOUNT, "c-third", 3_000);
        let first_b = secret(ACCOUNT, "B-first", 1_000);
        let first_a = secret(ACCOUNT, "a-first", 1_000);
        let second = secret(ACCOUNT, "second", 2_000);
        for rec in [&third, &first_a, &second, &first_b] {
            let versions = vec![
                version(&rec.arn, "v2", rec.created_ms + 1, &["AWSCURRENT"]),
                version(&rec.arn, "v1", rec.created_ms, &["AWSPREVIOUS"]),
                version(&rec.arn, "V3", rec.created_ms + 1, &[]),
            ];
            insert(&store, rec.clone(), versions).await;
        }
        insert(&store, secret(OTHER_ACCOUNT, "elsewhere", 500), Vec::new()).await;

        let listed = store.list_secrets(ACCOUNT).await.unwrap();
        let names: Vec<&str> = listed.iter().map(|s| s.record.name.as_str()).collect();
        assert_eq!(names, ["B-first", "a-first", "second", "c-third"]);
        for s in &listed {
            let vids: Vec<&str> = s.versions.iter().map(|v| v.version_id.as_str()).collect();
            assert_eq!(vids, ["v1", "V3", "v2"], "versions of {}", s.record.name);
            assert!(s.versions.iter().all(|v| v.secret_arn == s.record.arn));
            assert_eq!(s, &load(&store, &s.record.arn).await);
        }
        let other = store.list_secrets(OTHER_ACCOUNT).await.unwrap();
        assert_eq!(other.len(), 1);
        assert!(store.list_secrets("999999999999").await.unwrap().is_empty());
        store.close().await;
    }

    pub async fn names_and_arns_are_unique(b: &Backend) {
        let store = b.region().await;
        let rec = secret(ACCOUNT, "unique", 1_000);
        insert(
            &store,
            rec.clone(),
            vec![version(&rec.arn, "v1", 1_000, &[])],
        )
        .await;

        // Same name, another ARN suffix.
        let mut same_name = rec.clone();
        same_name.arn = rec.arn.replace("AbCdEf", "ZyXwVu");
        let result = store
            .commit(SecretChange::Insert {
                secret: same_name.clone(),
                versions: vec![version(&same_name.arn, "v9", 2_000, &[])],
            })
            .await;
        assert_conflict(result, "a taken name");
        assert!(
            store
                .load_secret_by_arn(&same_name.arn)
                .await
                .unwrap()
                .is_none()
        );

        // Same ARN, another name.
        let mut same_arn = secret(ACCOUNT, "other-name", 1_000);
        same_arn.arn = rec.arn.clone();
        let result = store
            .commit(SecretChange::Insert {
                secret: same_arn,
                versions: Vec::new(),
            })
            .await;
        assert_conflict(result, "a taken ARN");

        // The failed inserts left nothing behind, not even their versions.
        let kept = load(&store, &rec.arn).await;
        assert_eq!(kept.record, rec);
        assert_eq!(kept.versions.len(), 1);

        // The same name in another account is another secret.
        insert(&store, secret(OTHER_ACCOUNT, "unique", 1_000), Vec::new()).await;
        assert_eq!(store.list_secrets(OTHER_ACCOUNT).await.unwrap().len(), 1);

        // After a conflict the store keeps working.
        insert(&store, secret(ACCOUNT, "next", 1_000), Vec::new()).await;
        store.close().await;
    }

    pub async fn stale_row_version_is_a_conflict(b: &Backend) {
        let store = b.region().await;
        let rec = secret(ACCOUNT, "occ", 1_000);
        insert(&store, rec.clone(), Vec::new()).await;

        let mut changed = rec.clone();
        changed.description = Some("first writer".into());
        changed.last_changed_ms = 2_000;
        store.commit(update(&changed)).await.expect("first update");

        let mut stale = rec.clone();
        stale.description = Some("second writer".into());
        assert_conflict(store.commit(update(&stale)).await, "stale row_version");

        let now = load(&store, &rec.arn).await.record;
        assert_eq!(now.description.as_deref(), Some("first writer"));
        assert_eq!(now.row_version, 2);
        assert_eq!(now.last_changed_ms, 2_000);

        // Updating a secret that is not there.
        let ghost = secret(ACCOUNT, "ghost", 1_000);
        assert_conflict(store.commit(update(&ghost)).await, "missing secret");
        assert!(
            store
                .load_secret_by_arn(&ghost.arn)
                .await
                .unwrap()
                .is_none()
        );

        // Every mutable column goes through an update.
        let mut all = now.clone();
        all.description = None;
        all.kms_key_id = Some("arn:aws:kms:us-east-1:111122223333:key/k2".into());
        all.tags = Some(vec![Tag {
            key: "k".into(),
            value: String::new(),
        }]);
        all.resource_policy = Some("{}".into());
        all.last_changed_ms = 3_000;
        all.last_accessed_day = Some(20_000);
        all.deleted_ms = Some(3_000);
        all.purge_at_ms = Some(9_000);
        all.rotation = Some("{}".into());
        all.replication = Some("{\"Replica\":{}}".into());
        store.commit(update(&all)).await.unwrap();
        let mut expected = all.clone();
        expected.row_version += 1;
        assert_eq!(load(&store, &rec.arn).await.record, expected);
        store.close().await;
    }

    pub async fn versions_are_upserted_and_deleted(b: &Backend) {
        let store = b.region().await;
        let rec = secret(ACCOUNT, "versions", 1_000);
        let v1 = version(&rec.arn, "v1", 1_000, &["AWSCURRENT"]);
        let v2 = version(&rec.arn, "v2", 1_100, &["AWSPENDING"]);
        insert(&store, rec.clone(), vec![v1.clone(), v2.clone()]).await;

        // Promote v3, move v1 to AWSPREVIOUS, drop v2.
        let mut v1_prev = v1.clone();
        v1_prev.stages = vec!["AWSPREVIOUS".into()];
        v1_prev.last_accessed_day = Some(19_500);
        let v3 = version(&rec.arn, "v3", 1_200, &["AWSCURRENT"]);
        let mut next = rec.clone();
        next.row_version = 2;
        store
            .commit(SecretChange::Update {
                secret: next,
                expected_row_version: 1,
                upsert_versions: vec![v1_prev.clone(), v3.clone()],
                delete_versions: vec!["v2".into(), "never-existed".into()],
            })
            .await
            .unwrap();
        let loaded = load(&store, &rec.arn).await;
        assert_eq!(loaded.versions, vec![v1_prev, v3]);
        assert_eq!(loaded.record.row_version, 2);

        // A conflicting update changes no version either.
        let result = store
            .commit(SecretChange::Update {
                secret: rec.clone(),
                expected_row_version: 1,
                upsert_versions: vec![version(&rec.arn, "v4", 1_300, &[])],
                delete_versions: vec!["v1".into()],
            })
            .await;
        assert_conflict(result, "stale update with versions");
        assert_eq!(load(&store, &rec.arn).await.versions, loaded.versions);
        store.close().await;
    }

    /// A load for a read by label (`Store::load_by_*` with `Versions::Labelled`) of a store without a cache
    /// carries every version with a label, as stored, and only those (the partial index of
    /// migration 0008).
    pub async fn labelled_loads_carry_the_labelled_versions(b: &Backend) {
        let store = b.region_uncached().await;
        let rec = secret(ACCOUNT, "labelled", 1_000);
        let mut versions: Vec<VersionRecord> = (0..30)
            .map(|i| version(&rec.arn, &format!("old{i:02}"), 1_000 + i, &[]))
            .collect();
        versions.push(version(&rec.arn, "prev", 2_000, &["AWSPREVIOUS"]));
        versions.push(version(&rec.arn, "cur", 2_100, &["AWSCURRENT", "MINE"]));
        let mut pending = version(&rec.arn, "pending", 2_200, &["AWSPENDING"]);
        pending.ciphertext = None;
        pending.wrapped_data_key = None;
        versions.push(pending);
        insert(&store, rec.clone(), versions).await;
        let bare = secret(ACCOUNT, "no-versions", 3_000);
        insert(&store, bare.clone(), Vec::new()).await;

        // Both labelled loads of `rec` against its full load; the full load's version count.
        let check = |rec: SecretRecord, what: &'static str| {
            let store = store.clone();
            async move {
                let full = load(&store, &rec.arn).await;
                let by_arn = store
                    .load_by_arn(&rec.arn, Versions::Labelled)
                    .await
                    .unwrap();
                let by_name = store
                    .load_by_name(ACCOUNT, &rec.name, Versions::Labelled)
                    .await
                    .unwrap();
                for labelled in [by_arn.unwrap(), by_name.unwrap()] {
                    assert_eq!(labelled.record, full.record, "{what}");
                    assert_eq!(labelled.versions, labelled_of(&full), "{what}");
                }
                full
            }
        };
        let full = check(rec.clone(), "as inserted").await;
        assert_eq!(full.versions.len(), 33);

        // A version that loses its labels leaves the labelled ones; one that gains one joins.
        let mut next = rec.clone();
        next.row_version = 2;
        let mut prev = full
            .versions
            .iter()
            .find(|v| v.version_id == "prev")
            .cloned()
            .unwrap();
        prev.stages = Vec::new();
        let mut old = full.versions[4].clone();
        old.stages = vec!["AWSPREVIOUS".into()];
        store
            .commit(SecretChange::Update {
                secret: next,
                expected_row_version: 1,
                upsert_versions: vec![prev, old],
                delete_versions: vec!["old07".into()],
            })
            .await
            .unwrap();
        assert_eq!(
            check(rec.clone(), "after an update").await.versions.len(),
            32
        );

        // A read's day reaches the labelled version (GetSecretValue decides by it whether to
        // record the day).
        store.record_access(&rec.arn, "cur", 20_100).await.unwrap();
        let full = check(rec.clone(), "after a read's day").await;
        let cur = full.versions.iter().find(|v| v.version_id == "cur");
        assert_eq!(cur.unwrap().last_accessed_day, Some(20_100));

        // A labelled version deleted leaves the other labelled ones.
        let mut next = rec.clone();
        next.row_version = 3;
        store
            .commit(SecretChange::Update {
                secret: next,
                expected_row_version: 2,
                upsert_versions: Vec::new(),
                delete_versions: vec!["cur".into()],
            })
            .await
            .unwrap();
        let full = check(rec.clone(), "after a labelled version is deleted").await;
        assert_eq!(full.versions.len(), 31);

        // Deleted, then created again under the same name: only the new versions.
        store
            .commit(SecretChange::Delete {
                arn: rec.arn.clone(),
                expected_row_version: 3,
            })
            .await
            .unwrap();
        let gone = store
            .load_by_arn(&rec.arn, Versions::Labelled)
            .await
            .unwrap();
        assert!(gone.is_none());
        let again = version(&rec.arn, "again", 5_000, &["AWSCURRENT"]);
        insert(&store, rec.clone(), vec![again]).await;
        assert_eq!(check(rec.clone(), "created again").await.versions.len(), 1);

        check(bare, "without versions").await;
        assert!(
            store
                .load_by_name(ACCOUNT, "missing", Versions::Labelled)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .load_by_arn(&format!("{}x", rec.arn), Versions::Labelled)
                .await
                .unwrap()
                .is_none()
        );
        store.close().await;
    }

    pub async fn delete_removes_the_secret_and_its_versions(b: &Backend) {
        let store = b.region().await;
        let rec = secret(ACCOUNT, "doomed", 1_000);
        insert(
            &store,
            rec.clone(),
            vec![version(&rec.arn, "v1", 1_000, &[])],
        )
        .await;
        let keep = secret(ACCOUNT, "kept", 1_000);
        insert(
            &store,
            keep.clone(),
            vec![version(&keep.arn, "v1", 1_000, &[])],
        )
        .await;

        let stale = store
            .commit(SecretChange::Delete {
                arn: rec.arn.clone(),
                expected_row_version: 7,
            })
            .await;
        assert_conflict(stale, "delete with a stale row_version");
        assert!(store.load_secret_by_arn(&rec.arn).await.unwrap().is_some());

        store
            .commit(SecretChange::Delete {
                arn: rec.arn.clone(),
                expected_row_version: 1,
            })
            .await
            .unwrap();
        assert!(store.load_secret_by_arn(&rec.arn).await.unwrap().is_none());
        assert!(
            store
                .load_secret_by_name(ACCOUNT, "doomed")
                .await
                .unwrap()
                .is_none()
        );
        let again = store
            .commit(SecretChange::Delete {
                arn: rec.arn.clone(),
                expected_row_version: 1,
            })
            .await;
        assert_conflict(again, "deleting twice");

        // The name and ARN are free again, and no old version comes back.
        insert(&store, rec.clone(), Vec::new()).await;
        assert!(load(&store, &rec.arn).await.versions.is_empty());
        assert_eq!(load(&store, &keep.arn).await.versions.len(), 1);
        store.close().await;
    }

    pub async fn record_access_is_not_a_change(b: &Backend) {
        let store = b.region().await;
        let rec = secret(ACCOUNT, "read-me", 1_000);
        insert(
            &store,
            rec.clone(),
            vec![
                version(&rec.arn, "v1", 1_000, &["AWSPREVIOUS"]),
                version(&rec.arn, "v2", 1_001, &["AWSCURRENT"]),
            ],
        )
        .await;
        store.record_access(&rec.arn, "v2", 20_100).await.unwrap();
        let loaded = load(&store, &rec.arn).await;
        assert_eq!(loaded.record.last_accessed_day, Some(20_100));
        assert_eq!(loaded.record.row_version, 1, "row_version unchanged");
        assert_eq!(loaded.record.last_changed_ms, 1_000);
        assert_eq!(loaded.versions[0].last_accessed_day, None);
        assert_eq!(loaded.versions[1].last_accessed_day, Some(20_100));
        // The secret's row_version still admits the update that was read before.
        store.commit(update(&rec)).await.expect("not a conflict");
        // Unknown secret or version: nothing happens, nothing fails.
        store
            .record_access(&arn(ACCOUNT, "nope"), "v1", 1)
            .await
            .unwrap();
        store.close().await;
    }

    pub async fn many_reads_record_their_days_at_once(b: &Backend) {
        let store = b.region().await;
        let a = secret(ACCOUNT, "read-a", 1_000);
        let c = secret(ACCOUNT, "read-c", 1_000);
        for rec in [&a, &c] {
            insert(
                &store,
                rec.clone(),
                vec![
                    version(&rec.arn, "v1", 1_000, &["AWSPREVIOUS"]),
                    version(&rec.arn, "v2", 1_001, &["AWSCURRENT"]),
                ],
            )
            .await;
        }
        let read = |arn: &str, version: &str, day: i64| (arn.to_string(), version.to_string(), day);
        store
            .record_accesses(
                &[
                    read(&a.arn, "v1", 20_100),
                    read(&c.arn, "v2", 20_100),
                    read(&arn(ACCOUNT, "nope"), "v1", 20_100),
                    read(&a.arn, "gone", 20_100),
                    // A secret's day is the latest of its reads, whatever their order.
                    read(&a.arn, "v2", 20_101),
                ],
                vec![],
            )
            .await
            .unwrap();
        let days = |s: &Secret| {
            let versions: Vec<_> = s.versions.iter().map(|v| v.last_accessed_day).collect();
            (s.record.last_accessed_day, versions, s.record.row_version)
        };
        let a = load(&store, &a.arn).await;
        assert_eq!(
            days(&a),
            (Some(20_101), vec![Some(20_100), Some(20_101)], 1)
        );
        let c = load(&store, &c.arn).await;
        assert_eq!(days(&c), (Some(20_100), vec![None, Some(20_100)], 1));
        // With the outbox row that tells another Region, in the same write.
        let tell = OutboxEntry {
            secret_arn: c.record.arn.clone(),
            dest_region: "eu-west-1".into(),
            kind: "access".into(),
            payload: "{}".into(),
        };
        store
            .record_accesses(&[read(&c.record.arn, "v1", 20_102)], vec![tell])
            .await
            .unwrap();
        assert_eq!(
            load(&store, &c.record.arn).await.record.last_accessed_day,
            Some(20_102)
        );
        assert_eq!(
            store.outbox_depth().await.unwrap(),
            vec![("eu-west-1".to_string(), 1)]
        );
        store.record_accesses(&[], vec![]).await.unwrap();
        store.close().await;
    }

    pub async fn secrets_due_for_purge(b: &Backend) {
        let store = b.region().await;
        let live = secret(ACCOUNT, "live", 1_000);
        let mut due = secret(ACCOUNT, "due", 1_000);
        due.deleted_ms = Some(2_000);
        due.purge_at_ms = Some(5_000);
        let mut exactly = secret(OTHER_ACCOUNT, "exactly", 1_000);
        exactly.deleted_ms = Some(2_000);
        exactly.purge_at_ms = Some(6_000);
        let mut later = secret(ACCOUNT, "later", 1_000);
        later.deleted_ms = Some(2_000);
        later.purge_at_ms = Some(6_001);
        for rec in [&live, &due, &exactly, &later] {
            insert(&store, rec.clone(), Vec::new()).await;
        }
        let found: BTreeSet<String> = store
            .secrets_due_for_purge(6_000, 100)
            .await
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(
            found,
            BTreeSet::from([due.arn.clone(), exactly.arn.clone()])
        );
        assert!(
            store
                .secrets_due_for_purge(4_999, 100)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store
                .secrets_due_for_purge(i64::MAX, 100)
                .await
                .unwrap()
                .len(),
            3
        );
        // A batch: the longest due first.
        assert_eq!(
            store.secrets_due_for_purge(i64::MAX, 2).await.unwrap(),
            [due.arn.clone(), exactly.arn.clone()]
        );
        store.close().await;
    }

    pub async fn kms_keys_are_listed_updated_and_deleted(b: &Backend) {
        let store = b.region().await;
        let key = |account: &str, id: &str, created_ms: i64| KmsKeyRecord {
            key_arn: format!("arn:aws:kms:us-east-1:{account}:key/{id}"),
            account_id: account.into(),
            key_id: id.into(),
            wrapped_material: vec![1, 2, 3],
            metadata: r#"{"KeyState":"Enabled"}"#.into(),
            created_ms,
        };
        let alias = |name: &str, target: &KmsKeyRecord| KmsAliasRecord {
            account_id: target.account_id.clone(),
            alias_name: name.into(),
            target_key_arn: target.key_arn.clone(),
            created_ms: 7,
        };
        let (k2, k1, other) = (
            key(ACCOUNT, "k2", 20),
            key(ACCOUNT, "k1", 10),
            key(OTHER_ACCOUNT, "o", 5),
        );
        for k in [&k2, &k1, &other] {
            store.create_kms_key(k.clone(), None).await.unwrap();
        }
        let ids = |keys: Vec<KmsKeyRecord>| keys.into_iter().map(|k| k.key_id).collect::<Vec<_>>();
        assert_eq!(
            ids(store.list_kms_keys(Some(ACCOUNT)).await.unwrap()),
            ["k1", "k2"]
        );
        assert_eq!(
            ids(store.list_kms_keys(None).await.unwrap()),
            ["o", "k1", "k2"]
        );

        // UpdateKey replaces metadata and material; a missing key is a Conflict.
        let mut changed = k1.clone();
        changed.metadata = r#"{"KeyState":"Disabled"}"#.into();
        changed.wrapped_material = vec![9; 61];
        store
            .commit_kms(KmsChange::UpdateKey(changed.clone()))
            .await
            .unwrap();
        assert_eq!(
            store.load_kms_key(&k1.key_arn).await.unwrap(),
            Some(changed.clone())
        );
        assert_conflict(
            store
                .commit_kms(KmsChange::UpdateKey(key(ACCOUNT, "ghost", 1)))
                .await,
            "update of a missing key",
        );
        // UpdateKeyIf writes only over the metadata the writer read.
        let mut rotated = changed.clone();
        rotated.metadata = r#"{"KeyState":"Disabled","Rotations":[1]}"#.into();
        rotated.wrapped_material = vec![8; 61];
        let stale = KmsChange::UpdateKeyIf {
            key: rotated.clone(),
            expected: k1.clone(),
        };
        assert_conflict(store.commit_kms(stale).await, "update over a newer write");
        let mut rewrapped = changed.clone();
        rewrapped.wrapped_material = vec![7; 61];
        let stale = KmsChange::UpdateKeyIf {
            key: rotated.clone(),
            expected: rewrapped,
        };
        assert_conflict(store.commit_kms(stale).await, "update over other material");
        store
            .commit_kms(KmsChange::UpdateKeyIf {
                key: rotated.clone(),
                expected: changed.clone(),
            })
            .await
            .unwrap();
        assert_eq!(
            store.load_kms_key(&k1.key_arn).await.unwrap(),
            Some(rotated)
        );

        // Aliases: create (unique per account), list by name, repoint, delete.
        store
            .commit_kms(KmsChange::CreateAlias(alias("alias/b", &k1)))
            .await
            .unwrap();
        store
            .commit_kms(KmsChange::CreateAlias(alias("alias/a", &k2)))
            .await
            .unwrap();
        store
            .commit_kms(KmsChange::CreateAlias(alias("alias/a", &other)))
            .await
            .unwrap();
        assert_conflict(
            store
                .commit_kms(KmsChange::CreateAlias(alias("alias/a", &k1)))
                .await,
            "alias name taken",
        );
        let names = |aliases: Vec<KmsAliasRecord>| {
            aliases
                .into_iter()
                .map(|a| (a.alias_name, a.target_key_arn))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(store.list_kms_aliases(ACCOUNT).await.unwrap()),
            [
                ("alias/a".to_string(), k2.key_arn.clone()),
                ("alias/b".to_string(), k1.key_arn.clone())
            ]
        );
        store
            .commit_kms(KmsChange::UpdateAlias(alias("alias/a", &k1)))
            .await
            .unwrap();
        assert_eq!(
            store
                .load_kms_alias(ACCOUNT, "alias/a")
                .await
                .unwrap()
                .unwrap()
                .target_key_arn,
            k1.key_arn
        );
        assert_conflict(
            store
                .commit_kms(KmsChange::UpdateAlias(alias("alias/none", &k1)))
                .await,
            "repointing a missing alias",
        );
        store
            .commit_kms(KmsChange::DeleteAlias {
                account_id: ACCOUNT.into(),
                alias_name: "alias/b".into(),
            })
            .await
            .unwrap();
        assert_conflict(
            store
                .commit_kms(KmsChange::DeleteAlias {
                    account_id: ACCOUNT.into(),
                    alias_name: "alias/b".into(),
                })
                .await,
            "deleting a missing alias",
        );

        // DeleteKey takes the key's aliases with it, and nothing else.
        store
            .commit_kms(KmsChange::DeleteKey {
                key_arn: k1.key_arn.clone(),
            })
            .await
            .unwrap();
        assert!(store.load_kms_key(&k1.key_arn).await.unwrap().is_none());
        assert!(store.list_kms_aliases(ACCOUNT).await.unwrap().is_empty());
        assert_eq!(
            store.list_kms_aliases(OTHER_ACCOUNT).await.unwrap().len(),
            1
        );
        assert_eq!(ids(store.list_kms_keys(None).await.unwrap()), ["o", "k2"]);
        assert_conflict(
            store
                .commit_kms(KmsChange::DeleteKey {
                    key_arn: k1.key_arn.clone(),
                })
                .await,
            "deleting a missing key",
        );
        store.close().await;
    }

    pub async fn kms_keys_and_aliases(b: &Backend) {
        let store = b.region().await;
        let key = |id: &str| KmsKeyRecord {
            key_arn: format!("arn:aws:kms:us-east-1:{ACCOUNT}:key/{id}"),
            account_id: ACCOUNT.into(),
            key_id: id.into(),
            wrapped_material: vec![9, 0, 8, 255],
            metadata: format!(r#"{{"KeyId":"{id}","KeyState":"Enabled"}}"#),
            created_ms: 1_000,
        };
        let alias = |name: &str, target: &KmsKeyRecord| KmsAliasRecord {
            account_id: ACCOUNT.into(),
            alias_name: name.into(),
            target_key_arn: target.key_arn.clone(),
            created_ms: 1_000,
        };
        let plain = key("plain");
        store.create_kms_key(plain.clone(), None).await.unwrap();
        assert_eq!(
            store.load_kms_key(&plain.key_arn).await.unwrap(),
            Some(plain.clone())
        );

        let managed = key("managed");
        let managed_alias = alias("alias/aws/secretsmanager", &managed);
        store
            .create_kms_key(managed.clone(), Some(managed_alias.clone()))
            .await
            .unwrap();
        assert_eq!(
            store
                .load_kms_alias(ACCOUNT, "alias/aws/secretsmanager")
                .await
                .unwrap(),
            Some(managed_alias.clone())
        );
        assert!(
            store
                .load_kms_alias(OTHER_ACCOUNT, "alias/aws/secretsmanager")
                .await
                .unwrap()
                .is_none()
        );

        // A second key racing for the same alias: Conflict, and the key is not kept either.
        let racer = key("racer");
        let result = store
            .create_kms_key(
                racer.clone(),
                Some(alias("alias/aws/secretsmanager", &racer)),
            )
            .await;
        assert_conflict(result, "alias taken");
        assert!(store.load_kms_key(&racer.key_arn).await.unwrap().is_none());
        assert_eq!(
            store
                .load_kms_alias(ACCOUNT, "alias/aws/secretsmanager")
                .await
                .unwrap(),
            Some(managed_alias)
        );
        assert_conflict(
            store.create_kms_key(plain.clone(), None).await,
            "key ARN taken",
        );
        assert!(
            store
                .load_kms_key("arn:aws:kms:us-east-1:1:key/none")
                .await
                .unwrap()
                .is_none()
        );
        store.close().await;
    }

    pub async fn outbox_rows_commit_with_a_kms_change_or_not_at_all(b: &Backend) {
        let store = b.region().await;
        let mut key = KmsKeyRecord {
            key_arn: format!("arn:aws:kms:us-east-1:{ACCOUNT}:key/mrk-1"),
            account_id: ACCOUNT.into(),
            key_id: "mrk-1".into(),
            wrapped_material: vec![1, 2, 3],
            metadata: r#"{"ReplicaRegions":[]}"#.into(),
            created_ms: 5,
        };
        store.create_kms_key(key.clone(), None).await.unwrap();
        key.metadata = r#"{"ReplicaRegions":["eu-west-1"]}"#.into();
        store
            .commit_kms_with(
                KmsChange::UpdateKey(key.clone()),
                vec![entry(
                    &key.key_arn,
                    "eu-west-1",
                    "key",
                    r#"{"Description":"d"}"#,
                )],
            )
            .await
            .unwrap();
        assert_eq!(store.load_kms_key(&key.key_arn).await.unwrap(), Some(key));
        let rows = store
            .claim_outbox(now_ms(), "node", 30_000, 10)
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            rows[0].entry,
            entry(
                &format!("arn:aws:kms:us-east-1:{ACCOUNT}:key/mrk-1"),
                "eu-west-1",
                "key",
                r#"{"Description":"d"}"#
            )
        );

        // A change that fails (no such key) writes no outbox row.
        let ghost = KmsKeyRecord {
            key_arn: format!("arn:aws:kms:us-east-1:{ACCOUNT}:key/mrk-ghost"),
            account_id: ACCOUNT.into(),
            key_id: "mrk-ghost".into(),
            wrapped_material: vec![4, 5, 6],
            metadata: "{}".into(),
            created_ms: 6,
        };
        assert_conflict(
            store
                .commit_kms_with(
                    KmsChange::UpdateKey(ghost.clone()),
                    vec![entry(&ghost.key_arn, "ap-south-1", "key", "{}")],
                )
                .await,
            "update of a missing key",
        );
        assert_eq!(
            store.outbox_depth().await.unwrap(),
            vec![("eu-west-1".to_string(), 1)]
        );
        store.close().await;
    }

    pub async fn outbox_rows_commit_with_the_change_or_not_at_all(b: &Backend) {
        let store = b.region().await;
        let rec = secret(ACCOUNT, "replicated", 1_000);
        let before = now_ms();
        store
            .commit_with(
                vec![SecretChange::Insert {
                    secret: rec.clone(),
                    versions: Vec::new(),
                }],
                vec![
                    entry(&rec.arn, "eu-west-1", "sync", r#"{"force":true}"#),
                    entry(&rec.arn, "ap-south-1", "sync", "{}"),
                ],
            )
            .await
            .unwrap();
        assert_eq!(
            store.outbox_depth().await.unwrap(),
            vec![("ap-south-1".to_string(), 1), ("eu-west-1".to_string(), 1)]
        );

        // A failed change (taken name) writes no outbox row.
        let result = store
            .commit_with(
                vec![SecretChange::Insert {
                    secret: rec.clone(),
                    versions: Vec::new(),
                }],
                vec![entry(&rec.arn, "eu-west-1", "sync", "{}")],
            )
            .await;
        assert_conflict(result, "insert of a taken name");
        // A failed change (stale row_version) among good ones: nothing at all.
        let good = secret(ACCOUNT, "good", 1_000);
        let result = store
            .commit_with(
                vec![
                    SecretChange::Insert {
                        secret: good.clone(),
                        versions: Vec::new(),
                    },
                    SecretChange::Update {
                        secret: rec.clone(),
                        expected_row_version: 41,
                        upsert_versions: Vec::new(),
                        delete_versions: Vec::new(),
                    },
                ],
                vec![entry(&rec.arn, "us-west-2", "sync", "{}")],
            )
            .await;
        assert_conflict(result, "stale update");
        assert!(store.load_secret_by_arn(&good.arn).await.unwrap().is_none());
        assert_eq!(store.outbox_depth().await.unwrap().len(), 2);

        // An outbox row alone (`enqueue`).
        store
            .enqueue(vec![entry(&rec.arn, "eu-west-1", "access", r#"{"day":1}"#)])
            .await
            .unwrap();
        let rows = store
            .claim_outbox(now_ms() + 1_000, "node-a", 30_000, 100)
            .await
            .unwrap();
        assert_eq!(rows.len(), 3);
        assert!(rows.windows(2).all(|w| w[0].id < w[1].id), "oldest first");
        let first = &rows[0];
        assert_eq!(
            first.entry,
            entry(&rec.arn, "eu-west-1", "sync", r#"{"force":true}"#)
        );
        assert_eq!(first.attempts, 0);
        assert_eq!(first.first_failure_ms, None);
        assert!(first.enqueued_ms >= before && first.enqueued_ms <= now_ms());
        assert_eq!(first.next_attempt_ms, first.enqueued_ms);
        assert_eq!(rows[2].entry.kind, "access");

        // A row addressed to the store's own Region is a rotation schedule, not replication:
        // every destination but the source counts, on both sides of it in byte order.
        store
            .enqueue(vec![entry(&rec.arn, "us-east-1", "rotate", "{}")])
            .await
            .unwrap();
        assert_eq!(store.outbox_depth().await.unwrap().len(), 3);
        assert_eq!(
            store.replication_depth("us-east-1").await.unwrap(),
            vec![("ap-south-1".to_string(), 1), ("eu-west-1".to_string(), 2)]
        );
        assert_eq!(
            store.replication_depth("eu-west-1").await.unwrap(),
            vec![("ap-south-1".to_string(), 1), ("us-east-1".to_string(), 1)]
        );
        store.close().await;
    }

    pub async fn claims_hold_a_lease_until_it_expires(b: &Backend) {
        let store = b.region().await;
        let a = arn(ACCOUNT, "a");
        store
            .enqueue(
                (0..5)
                    .map(|i| entry(&a, "eu-west-1", "sync", &format!("{{\"n\":{i}}}")))
                    .collect(),
            )
            .await
            .unwrap();
        let t = now_ms() + 1_000;
        // Not yet due.
        assert!(
            store
                .claim_outbox(t - 60_000, "node-a", 1_000, 10)
                .await
                .unwrap()
                .is_empty()
        );
        let first = store.claim_outbox(t, "node-a", 1_000, 3).await.unwrap();
        assert_eq!(first.len(), 3, "limit");
        let rest = store.claim_outbox(t, "node-b", 1_000, 10).await.unwrap();
        assert_eq!(rest.len(), 2, "the rows node-a does not hold");
        assert!(ids(&first).iter().all(|id| !ids(&rest).contains(id)));
        assert!(ids(&first).iter().max() < ids(&rest).iter().min());
        // While the leases are valid nobody else gets a row.
        assert!(
            store
                .claim_outbox(t + 1_000, "node-c", 1_000, 10)
                .await
                .unwrap()
                .is_empty(),
            "a lease is valid up to and including its end"
        );
        // Expired: claimable again, oldest first.
        let again = store
            .claim_outbox(t + 1_001, "node-c", 1_000, 10)
            .await
            .unwrap();
        let mut all = ids(&first);
        all.extend(ids(&rest));
        assert_eq!(ids(&again), all);
        // Claiming does not count as an attempt.
        assert!(again.iter().all(|r| r.attempts == 0));
        store.close().await;
    }

    pub async fn an_owner_takes_back_its_own_leases(b: &Backend) {
        let store = b.region().await;
        let a = arn(ACCOUNT, "a");
        store
            .enqueue(vec![
                entry(&a, "eu-west-1", "sync", "{}"),
                entry(&a, "eu-west-1", "remove", "{}"),
            ])
            .await
            .unwrap();
        let t = now_ms() + 1_000;
        let held = store.claim_outbox(t, "node-a", 60_000, 10).await.unwrap();
        assert_eq!(held.len(), 2);
        assert!(
            store
                .claim_outbox(t + 1, "node-b", 60_000, 10)
                .await
                .unwrap()
                .is_empty()
        );
        // node-a restarted: it resumes its own rows without waiting for the lease.
        let resumed = store
            .claim_outbox(t + 1, "node-a", 60_000, 10)
            .await
            .unwrap();
        assert_eq!(ids(&resumed), ids(&held));
        store.close().await;
    }

    pub async fn concurrent_claimers_split_the_rows(b: &Backend) {
        let store = b.region().await;
        let total = 60;
        store
            .enqueue(
                (0..total)
                    .map(|i| entry(&arn(ACCOUNT, &format!("s{i}")), "eu-west-1", "sync", "{}"))
                    .collect(),
            )
            .await
            .unwrap();
        let t = now_ms() + 1_000;
        let mut tasks = Vec::new();
        for n in 0..4 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                for k in 0.. {
                    // A fresh owner per claim: an owner may take back its own leases, so only
                    // other owners show that a valid lease keeps a row out of reach.
                    let owner = format!("node-{n}-{k}");
                    let rows = store.claim_outbox(t, &owner, 60_000, 4).await.unwrap();
                    if rows.is_empty() {
                        return mine;
                    }
                    mine.extend(ids(&rows));
                    tokio::task::yield_now().await;
                }
                unreachable!()
            }));
        }
        let mut seen = BTreeSet::new();
        let mut claimed = 0;
        for task in tasks {
            for id in task.await.unwrap() {
                claimed += 1;
                assert!(seen.insert(id), "row {id} was claimed twice");
            }
        }
        assert_eq!(claimed, total, "every row claimed exactly once");
        store.close().await;
    }

    pub async fn each_destination_is_claimed_on_its_own_and_a_retry_holds_back_older_rows(
        b: &Backend,
    ) {
        let store = b.region().await;
        let a = arn(ACCOUNT, "a");
        store
            .enqueue(vec![
                entry(&a, "us-east-1", "sync", "1"),
                entry(&a, "eu-west-1", "sync", "2"),
                entry(&a, "us-east-1", "sync", "3"),
                entry(&a, "eu-west-1", "sync", "4"),
                entry(&a, "eu-west-1", "remove", "5"),
            ])
            .await
            .unwrap();
        let t = now_ms() + 1_000;
        let payloads = |rows: &[OutboxRow]| -> Vec<String> {
            rows.iter().map(|r| r.entry.payload.clone()).collect()
        };
        let eu = store
            .claim_outbox_to(t, "node-a", 60_000, 10, Some("eu-west-1"))
            .await
            .unwrap();
        assert_eq!(payloads(&eu), ["2", "4", "5"]);
        // Another node claims only what is left, of the other destination.
        let rest = store.claim_outbox(t, "node-b", 60_000, 10).await.unwrap();
        assert_eq!(payloads(&rest), ["1", "3"]);

        // Retrying the newest sync to eu-west-1 reschedules the older one it stands for, but
        // not the removal (another kind) nor the other destination's rows.
        let newest = eu.iter().find(|r| r.entry.payload == "4").unwrap().id;
        store
            .retry_outbox(newest, 2, t + 5_000, Some(t - 1))
            .await
            .unwrap();
        let later = store
            .claim_outbox_to(t + 4_999, "node-c", 60_000, 10, Some("eu-west-1"))
            .await
            .unwrap();
        assert!(later.is_empty(), "{later:?}");
        let due = store
            .claim_outbox_to(t + 5_000, "node-c", 60_000, 10, Some("eu-west-1"))
            .await
            .unwrap();
        assert_eq!(payloads(&due), ["2", "4"]);
        assert!(
            due.iter()
                .all(|r| r.attempts == 2 && r.first_failure_ms == Some(t - 1))
        );
    }

    pub async fn a_row_waits_behind_an_older_row_of_its_secret_in_backoff(b: &Backend) {
        let store = b.region().await;
        let (a, other) = (arn(ACCOUNT, "a"), arn(ACCOUNT, "other"));
        store
            .enqueue(vec![entry(&a, "eu-west-1", "remove", "1")])
            .await
            .unwrap();
        let t = now_ms() + 1_000;
        let first = store.claim_outbox(t, "node-a", 60_000, 10).await.unwrap();
        // The removal fails and backs off; a sync of the same secret comes after it.
        store
            .retry_outbox(first[0].id, 1, t + 5_000, Some(t))
            .await
            .unwrap();
        store
            .enqueue(vec![
                entry(&a, "eu-west-1", "sync", "2"),
                entry(&a, "us-east-1", "sync", "3"),
                entry(&other, "eu-west-1", "sync", "4"),
            ])
            .await
            .unwrap();
        let payloads = |rows: &[OutboxRow]| -> Vec<String> {
            rows.iter().map(|r| r.entry.payload.clone()).collect()
        };
        // The sync may not overtake the removal; other destinations and secrets go on.
        let now = store
            .claim_outbox(t + 1, "node-a", 60_000, 10)
            .await
            .unwrap();
        assert_eq!(payloads(&now), ["3", "4"]);
        // When the removal is due again it is taken first; the sync follows it, in the same
        // claim or in the next one once the removal is delivered (SQLite takes rows in the
        // order they are due, and the sync was due before the removal's retry: it waits for
        // the removal rather than risk being taken without it).
        let later = store
            .claim_outbox(t + 5_000, "node-b", 60_000, 10)
            .await
            .unwrap();
        let mut taken = payloads(&later);
        assert_eq!(taken.first().map(String::as_str), Some("1"));
        if taken.len() == 1 {
            store
                .finish_outbox(&a, "eu-west-1", "remove", later[0].id)
                .await
                .unwrap();
            let next = store
                .claim_outbox(t + 5_000, "node-b", 60_000, 10)
                .await
                .unwrap();
            taken.extend(payloads(&next));
        }
        assert_eq!(taken, ["1", "2"]);

        // A rotation scheduled for later is a schedule, not a message: a rotation asked for now
        // (RotateSecret) does not wait for it.
        let own = arn(ACCOUNT, "rotated");
        store
            .enqueue(vec![entry(&own, "us-east-1", "rotate", "5")])
            .await
            .unwrap();
        let scheduled = store
            .claim_outbox(t + 5_001, "node-z", 60_000, 10)
            .await
            .unwrap();
        assert_eq!(payloads(&scheduled), ["5"]);
        store
            .retry_outbox(scheduled[0].id, 0, t + 86_400_000, None)
            .await
            .unwrap();
        store
            .enqueue(vec![entry(&own, "us-east-1", "rotate", "6")])
            .await
            .unwrap();
        let now = store
            .claim_outbox(t + 5_001, "node-z", 60_000, 10)
            .await
            .unwrap();
        assert_eq!(payloads(&now), ["6"]);
    }

    /// However a claim picks its rows (in id order, or in the order they are due) and wherever
    /// its limit cuts, a secret's rows to a destination are taken in the order they were
    /// queued: a row that is due before an older row of its secret (the older one waits out a
    /// retry that has just ended) is never taken without it.
    pub async fn a_claim_never_takes_a_row_ahead_of_an_older_row_of_its_secret(b: &Backend) {
        let store = b.region().await;
        let (s, other) = (arn(ACCOUNT, "s"), arn(ACCOUNT, "other"));
        store
            .enqueue(vec![entry(&s, "eu-west-1", "remove", "old")])
            .await
            .unwrap();
        let t = now_ms() + 1_000;
        let first = store.claim_outbox(t, "node-a", 60_000, 10).await.unwrap();
        store
            .retry_outbox(first[0].id, 1, t + 100, Some(t))
            .await
            .unwrap();
        store
            .enqueue(vec![
                entry(&s, "eu-west-1", "sync", "new"),
                entry(&other, "eu-west-1", "sync", "elsewhere"),
            ])
            .await
            .unwrap();
        let mut order = Vec::new();
        for _ in 0..3 {
            let rows = store
                .claim_outbox_to(t + 200, "node-a", 60_000, 1, Some("eu-west-1"))
                .await
                .unwrap();
            for row in &rows {
                order.push(row.entry.payload.clone());
                store
                    .finish_outbox(&row.entry.secret_arn, "eu-west-1", &row.entry.kind, row.id)
                    .await
                    .unwrap();
            }
        }
        assert_eq!(order.len(), 3, "every row is taken: {order:?}");
        let at = |p: &str| order.iter().position(|o| o == p).unwrap();
        assert!(at("old") < at("new"), "{order:?}");
    }

    pub async fn replica_heads_only_move_forward_and_replicas_are_listed(b: &Backend) {
        let store = b.region().await;
        let head = |arn: &str, seq, version: &str| coffer_store::ReplicaHead {
            arn: arn.into(),
            primary_region: "us-west-2".into(),
            seq,
            version_id: Some(version.into()),
            commit_ms: seq * 10,
            heard_ms: 1,
        };
        store
            .record_heads(&[head("a", 5, "v5"), head("b", 2, "v2")])
            .await
            .unwrap();
        // An older announcement arriving late changes nothing; a newer one replaces it.
        store
            .record_heads(&[head("a", 4, "v4"), head("b", 3, "v3")])
            .await
            .unwrap();
        assert_eq!(
            store.replica_heads().await.unwrap(),
            vec![head("a", 5, "v5"), head("b", 3, "v3")]
        );
        store.delete_heads(&["a".to_string()]).await.unwrap();
        assert_eq!(
            store.replica_heads().await.unwrap(),
            vec![head("b", 3, "v3")]
        );

        // Only replicas are listed, with their state as stored.
        let mut replica = secret(ACCOUNT, "dr/replica", 1_000);
        let state = r#"{"replica":{"primary_region":"us-west-2","primary_arn":"x","seq":3}}"#;
        replica.replication = Some(state.into());
        let mut primary = secret(ACCOUNT, "dr/primary", 1_001);
        primary.replication = Some(r#"{"primary":{"replicas":[]}}"#.into());
        let plain = secret(ACCOUNT, "dr/plain", 1_002);
        let replica_arn = replica.arn.clone();
        insert(&store, replica, Vec::new()).await;
        insert(&store, primary, Vec::new()).await;
        insert(&store, plain, Vec::new()).await;
        assert_eq!(
            store.replica_states().await.unwrap(),
            vec![(replica_arn, state.to_string())]
        );

        // Documents by key prefix, replaced in place; `_` and `%` are not wildcards.
        store.save_document("failover/a_1", "{}", 1).await.unwrap();
        store
            .save_document("failover/a_1", "{\"n\":2}", 2)
            .await
            .unwrap();
        store.save_document("failover/ab", "{}", 3).await.unwrap();
        store.save_document("other/x", "{}", 4).await.unwrap();
        assert_eq!(
            store.load_documents("failover/a_").await.unwrap(),
            vec![("failover/a_1".to_string(), "{\"n\":2}".to_string())]
        );
        assert_eq!(store.load_documents("failover/").await.unwrap().len(), 2);
    }

    pub async fn a_promotion_is_remembered_after_the_secret_is_deleted(b: &Backend) {
        let store = b.region().await;
        let rec = secret(ACCOUNT, "promoted", 1_000);
        let primary_arn = rec.arn.replace("us-east-1", "us-west-2");
        insert(&store, rec.clone(), Vec::new()).await;
        assert_eq!(store.load_detachment(&rec.arn).await.unwrap(), None);
        let detachment = |epoch| {
            SecretChange::RecordDetachment(coffer_store::Detachment {
                arn: rec.arn.clone(),
                primary_arn: primary_arn.clone(),
                epoch,
                detached_ms: 2_000 + epoch,
            })
        };
        // With a stale promotion (a conflict), nothing is recorded.
        let mut stale = rec.clone();
        stale.row_version = 5;
        assert_conflict(
            store
                .commit_with(
                    vec![
                        SecretChange::Update {
                            secret: stale,
                            expected_row_version: 4,
                            upsert_versions: Vec::new(),
                            delete_versions: Vec::new(),
                        },
                        detachment(3),
                    ],
                    Vec::new(),
                )
                .await,
            "stale promotion",
        );
        assert_eq!(store.load_detachment(&rec.arn).await.unwrap(), None);
        store
            .commit_with(vec![update(&rec), detachment(3)], Vec::new())
            .await
            .unwrap();
        store
            .commit(SecretChange::Delete {
                arn: rec.arn.clone(),
                expected_row_version: 2,
            })
            .await
            .unwrap();
        let kept = store.load_detachment(&rec.arn).await.unwrap().unwrap();
        assert_eq!(
            (kept.primary_arn.as_str(), kept.epoch, kept.detached_ms),
            (primary_arn.as_str(), 3, 2_003)
        );
        // A later promotion of the same ARN replaces the record.
        store.commit(detachment(9)).await.unwrap();
        assert_eq!(
            store
                .load_detachment(&rec.arn)
                .await
                .unwrap()
                .unwrap()
                .epoch,
            9
        );
    }

    pub async fn finish_retry_and_depth(b: &Backend) {
        let store = b.region().await;
        let a = arn(ACCOUNT, "a");
        let bb = arn(ACCOUNT, "b");
        store
            .enqueue(vec![
                entry(&a, "eu-west-1", "sync", "1"),
                entry(&a, "eu-west-1", "sync", "2"),
                entry(&a, "ap-south-1", "sync", "3"),
                entry(&a, "eu-west-1", "remove", "4"),
                entry(&bb, "eu-west-1", "sync", "5"),
            ])
            .await
            .unwrap();
        assert_eq!(
            store.outbox_depth().await.unwrap(),
            vec![("ap-south-1".to_string(), 1), ("eu-west-1".to_string(), 4)]
        );
        let t = now_ms() + 1_000;
        let rows = store.claim_outbox(t, "node-a", 60_000, 10).await.unwrap();
        let id_of = |payload: &str| rows.iter().find(|r| r.entry.payload == payload).unwrap().id;

        // Finishing (a, eu-west-1, sync) up to the first row leaves the second.
        store
            .finish_outbox(&a, "eu-west-1", "sync", id_of("1"))
            .await
            .unwrap();
        assert_eq!(
            store.outbox_depth().await.unwrap(),
            vec![("ap-south-1".to_string(), 1), ("eu-west-1".to_string(), 3)]
        );
        // Up to the last id settles only that secret, destination and kind.
        store
            .finish_outbox(&a, "eu-west-1", "sync", i64::MAX)
            .await
            .unwrap();
        assert_eq!(
            store.outbox_depth().await.unwrap(),
            vec![("ap-south-1".to_string(), 1), ("eu-west-1".to_string(), 2)]
        );
        // Finishing something that is not there is fine.
        store
            .finish_outbox(&a, "eu-west-1", "sync", i64::MAX)
            .await
            .unwrap();

        // A retry releases the lease and schedules the next attempt.
        let retried = id_of("5");
        store
            .retry_outbox(retried, 3, t + 5_000, Some(t - 10))
            .await
            .unwrap();
        let early = store
            .claim_outbox(t + 4_999, "node-b", 60_000, 10)
            .await
            .unwrap();
        assert!(
            early.is_empty(),
            "not due yet, others still leased: {early:?}"
        );
        let due = store
            .claim_outbox(t + 5_000, "node-b", 60_000, 10)
            .await
            .unwrap();
        assert_eq!(ids(&due), vec![retried]);
        assert_eq!(due[0].attempts, 3);
        assert_eq!(due[0].next_attempt_ms, t + 5_000);
        assert_eq!(due[0].first_failure_ms, Some(t - 10));
        // A retry back to no failure.
        store.retry_outbox(retried, 0, t, None).await.unwrap();
        let back = store.claim_outbox(t, "node-c", 60_000, 10).await.unwrap();
        assert_eq!(ids(&back), vec![retried]);
        assert_eq!(back[0].first_failure_ms, None);

        for r in &rows {
            store
                .finish_outbox(
                    &r.entry.secret_arn,
                    &r.entry.dest_region,
                    &r.entry.kind,
                    r.id,
                )
                .await
                .unwrap();
        }
        assert!(store.outbox_depth().await.unwrap().is_empty());
        store.close().await;
    }

    pub async fn commit_and_finish_is_all_or_nothing(b: &Backend) {
        let store = b.region().await;
        let rec = secret(ACCOUNT, "delivered", 1_000);
        insert(&store, rec.clone(), Vec::new()).await;
        store
            .enqueue(vec![
                entry(&rec.arn, "eu-west-1", "sync", "1"),
                entry(&rec.arn, "eu-west-1", "sync", "2"),
                entry(&rec.arn, "eu-west-1", "remove", "3"),
            ])
            .await
            .unwrap();
        let rows = store
            .claim_outbox(now_ms() + 1_000, "node-a", 60_000, 10)
            .await
            .unwrap();
        let last_sync = rows[1].id;

        // A stale change: Conflict, and no row is settled (of several settlements, none).
        let mut stale = rec.clone();
        stale.row_version = 5;
        let result = store
            .commit_and_finish(
                vec![update(&stale)],
                &[
                    (&rec.arn, "eu-west-1", "sync", last_sync),
                    (&rec.arn, "eu-west-1", "remove", i64::MAX),
                ],
            )
            .await;
        assert_conflict(result, "stale change with settling");
        assert_eq!(
            store.outbox_depth().await.unwrap(),
            vec![("eu-west-1".to_string(), 3)]
        );
        assert_eq!(load(&store, &rec.arn).await.record.row_version, 1);

        // The status change and the settling together.
        let mut status = rec.clone();
        status.replication = Some(r#"{"Primary":{"replicas":["InSync"]}}"#.into());
        store
            .commit_and_finish(
                vec![update(&status)],
                &[(&rec.arn, "eu-west-1", "sync", last_sync)],
            )
            .await
            .unwrap();
        let loaded = load(&store, &rec.arn).await.record;
        assert_eq!(loaded.row_version, 2);
        assert_eq!(loaded.replication, status.replication);
        assert_eq!(
            store.outbox_depth().await.unwrap(),
            vec![("eu-west-1".to_string(), 1)],
            "only the remove row is left"
        );
        // No change at all: just the settling.
        store
            .commit_and_finish(Vec::new(), &[(&rec.arn, "eu-west-1", "remove", i64::MAX)])
            .await
            .unwrap();
        assert!(store.outbox_depth().await.unwrap().is_empty());
        store.close().await;
    }

    pub async fn reopening_keeps_everything(b: &Backend) {
        let store = b.region().await;
        let rec = secret(ACCOUNT, "durable", 1_000);
        let versions = vec![version(&rec.arn, "v1", 1_000, &["AWSCURRENT"])];
        store
            .commit_with(
                vec![SecretChange::Insert {
                    secret: rec.clone(),
                    versions: versions.clone(),
                }],
                vec![entry(&rec.arn, "eu-west-1", "sync", "{}")],
            )
            .await
            .unwrap();
        let key = KmsKeyRecord {
            key_arn: "arn:aws:kms:us-east-1:111122223333:key/k".into(),
            account_id: ACCOUNT.into(),
            key_id: "k".into(),
            wrapped_material: vec![1; 60],
            metadata: "{}".into(),
            created_ms: 5,
        };
        store.create_kms_key(key.clone(), None).await.unwrap();
        store.close().await;
        let meta = b.meta("region").await;
        assert!(meta.contains(&("kind".to_string(), "coffer-region".to_string())));
        assert!(meta.contains(&("format_version".to_string(), current_format())));

        for _ in 0..2 {
            let store = b.region().await;
            let loaded = load(&store, &rec.arn).await;
            assert_eq!(loaded.record, rec);
            assert_eq!(loaded.versions, versions);
            assert_eq!(
                store.load_kms_key(&key.key_arn).await.unwrap(),
                Some(key.clone())
            );
            assert_eq!(
                store.outbox_depth().await.unwrap(),
                vec![("eu-west-1".to_string(), 1)]
            );
            store.close().await;
            assert_eq!(b.meta("region").await, meta, "reopening rewrites no marker");
        }
        // New outbox ids keep growing after a reopen.
        let store = b.region().await;
        store
            .enqueue(vec![entry(&rec.arn, "eu-west-1", "sync", "{}")])
            .await
            .unwrap();
        let rows = store
            .claim_outbox(now_ms() + 1_000, "n", 1_000, 10)
            .await
            .unwrap();
        assert_eq!(rows.len(), 2);
        assert!(rows[0].id < rows[1].id);
        store.close().await;
    }

    pub async fn a_newer_format_is_refused_and_left_untouched(b: &Backend) {
        let store = b.region().await;
        let rec = secret(ACCOUNT, "precious", 1_000);
        insert(&store, rec.clone(), Vec::new()).await;
        store.close().await;

        b.set_meta("region", "format_version", "999").await;
        let before = b.meta("region").await;
        let err = match b.try_region().await {
            Err(StoreError::Incompatible(message)) => message,
            Err(other) => panic!("expected Incompatible, got {other:?}"),
            Ok(_) => panic!("a store of format 999 was opened"),
        };
        assert!(err.contains("newer Coffer"), "{err}");
        assert!(
            err.contains("999") && err.contains("left untouched"),
            "{err}"
        );
        assert_eq!(b.meta("region").await, before, "the marker was not touched");

        // Back to the real version: the data is all there.
        b.set_meta("region", "format_version", &current_format())
            .await;
        let store = b.region().await;
        assert_eq!(load(&store, &rec.arn).await.record, rec);
        store.close().await;
    }

    pub async fn a_store_of_another_kind_is_refused(b: &Backend) {
        let store = b.region().await;
        store.close().await;
        let before = b.meta("region").await;
        match b.try_iam_named("region").await {
            Err(StoreError::Incompatible(message)) => {
                assert!(message.contains("coffer-region"), "{message}");
                assert!(message.contains("left untouched"), "{message}");
            }
            Err(other) => panic!("expected Incompatible, got {other:?}"),
            Ok(_) => panic!("a region store opened as the IAM store"),
        }
        assert_eq!(b.meta("region").await, before);
        let iam = b.iam().await;
        iam.close().await;
        assert!(matches!(
            b.try_region_named("iam").await,
            Err(StoreError::Incompatible(_))
        ));
    }

    pub async fn regions_are_independent(b: &Backend) {
        let east = b.region_named("region").await;
        let west = b.region_named("region_west").await;
        let rec = secret(ACCOUNT, "everywhere", 1_000);
        insert(
            &east,
            rec.clone(),
            vec![version(&rec.arn, "v1", 1_000, &[])],
        )
        .await;
        assert!(west.load_secret_by_arn(&rec.arn).await.unwrap().is_none());
        insert(&west, rec.clone(), Vec::new()).await;
        assert_eq!(load(&east, &rec.arn).await.versions.len(), 1);
        assert!(load(&west, &rec.arn).await.versions.is_empty());
        east.enqueue(vec![entry(&rec.arn, "us-west-2", "sync", "{}")])
            .await
            .unwrap();
        assert!(west.outbox_depth().await.unwrap().is_empty());
        east.close().await;
        west.close().await;
    }

    pub async fn iam_accounts_users_and_keys(b: &Backend) {
        let iam = b.iam().await;
        assert!(iam.accounts().await.unwrap().is_empty());
        iam.create_account(OTHER_ACCOUNT, 2_000).await.unwrap();
        iam.create_account(ACCOUNT, 1_000).await.unwrap();
        assert_conflict(iam.create_account(ACCOUNT, 3_000).await, "account exists");
        assert_eq!(iam.accounts().await.unwrap(), vec![ACCOUNT, OTHER_ACCOUNT]);

        let admin = UserRecord {
            user_arn: format!("arn:aws:iam::{ACCOUNT}:user/admin"),
            account_id: ACCOUNT.into(),
            user_name: "admin".into(),
            user_id: "AIDAADMIN".into(),
            is_admin: true,
            created_ms: 1_000,
        };
        let reader = UserRecord {
            user_arn: format!("arn:aws:iam::{ACCOUNT}:user/reader"),
            user_name: "reader".into(),
            user_id: "AIDAREADER".into(),
            is_admin: false,
            created_ms: 2_000,
            ..admin.clone()
        };
        iam.create_user(reader.clone()).await.unwrap();
        iam.create_user(admin.clone()).await.unwrap();
        let mut same_name = admin.clone();
        same_name.user_arn.push_str("-2");
        assert_conflict(iam.create_user(same_name).await, "user name taken");
        assert_conflict(iam.create_user(admin.clone()).await, "user ARN taken");
        let mut elsewhere = admin.clone();
        elsewhere.account_id = OTHER_ACCOUNT.into();
        elsewhere.user_arn = format!("arn:aws:iam::{OTHER_ACCOUNT}:user/admin");
        elsewhere.created_ms = 3_000;
        iam.create_user(elsewhere.clone()).await.unwrap();
        assert_eq!(
            iam.users().await.unwrap(),
            vec![admin.clone(), reader.clone(), elsewhere]
        );

        let key = AccessKeyRecord {
            access_key_id: "AKIAEXAMPLE1".into(),
            user_arn: admin.user_arn.clone(),
            account_id: ACCOUNT.into(),
            wrapped_secret: vec![0, 255, 1, 254],
            status: "Active".into(),
            created_ms: 1_500,
        };
        let inactive = AccessKeyRecord {
            access_key_id: "AKIAEXAMPLE2".into(),
            user_arn: reader.user_arn.clone(),
            status: "Inactive".into(),
            created_ms: 1_600,
            ..key.clone()
        };
        iam.create_access_key(inactive.clone()).await.unwrap();
        iam.create_access_key(key.clone()).await.unwrap();
        assert_conflict(iam.create_access_key(key.clone()).await, "key id taken");
        assert_eq!(
            iam.access_keys().await.unwrap(),
            vec![key.clone(), inactive.clone()]
        );
        iam.close().await;

        let iam = b.iam().await;
        assert_eq!(iam.accounts().await.unwrap().len(), 2);
        assert_eq!(iam.users().await.unwrap().len(), 3);
        assert_eq!(iam.access_keys().await.unwrap(), vec![key, inactive]);
        iam.close().await;
        let meta = b.meta("iam").await;
        assert!(meta.contains(&("kind".to_string(), "coffer-iam".to_string())));
        assert!(meta.contains(&("format_version".to_string(), "3".to_string())));
    }

    /// The per-user key quota holds under concurrent creations: of eight at once with room for
    /// two, exactly two are written.
    pub async fn access_key_quota_holds_under_concurrent_creations(b: &Backend) {
        let iam = b.iam().await;
        iam.create_account(ACCOUNT, 1_000).await.unwrap();
        let carol = UserRecord {
            user_arn: format!("arn:aws:iam::{ACCOUNT}:user/carol"),
            account_id: ACCOUNT.into(),
            user_name: "carol".into(),
            user_id: "AIDACAROL".into(),
            is_admin: false,
            created_ms: 1_000,
        };
        iam.create_user(carol.clone()).await.unwrap();
        let tries = (0..8).map(|i| {
            let iam = iam.clone();
            let key = AccessKeyRecord {
                access_key_id: format!("AKIACAROL{i}"),
                user_arn: carol.user_arn.clone(),
                account_id: ACCOUNT.into(),
                wrapped_secret: vec![i],
                status: "Active".into(),
                created_ms: 1_100 + i as i64,
            };
            tokio::spawn(async move { iam.create_access_key_within(key, 2).await.unwrap() })
        });
        let mut created = 0;
        for t in tries {
            created += t.await.unwrap() as usize;
        }
        assert_eq!(created, 2);
        assert_eq!(
            iam.user_access_keys(&carol.user_arn).await.unwrap().len(),
            2
        );
        iam.close().await;
    }

    /// Nodes bootstrapping one empty store at the same instant: one account is created, and
    /// every node is told that one.
    pub async fn the_first_account_is_bootstrapped_once(b: &Backend) {
        let iam = b.iam().await;
        let tries = (0..6).map(|i| {
            let iam = iam.clone();
            let account = format!("10000000000{i}");
            let admin = UserRecord {
                user_arn: format!("arn:aws:iam::{account}:user/admin"),
                account_id: account.clone(),
                user_name: "admin".into(),
                user_id: format!("AIDAADMIN{i}"),
                is_admin: true,
                created_ms: 1_000,
            };
            let key = AccessKeyRecord {
                access_key_id: format!("AKIAADMIN{i}"),
                user_arn: admin.user_arn.clone(),
                account_id: account,
                wrapped_secret: vec![i],
                status: "Active".into(),
                created_ms: 1_000,
            };
            tokio::spawn(async move { iam.bootstrap_account(1_000, admin, key).await.unwrap() })
        });
        let mut firsts = Vec::new();
        for t in tries {
            firsts.push(t.await.unwrap());
        }
        let accounts = iam.accounts().await.unwrap();
        assert_eq!(accounts.len(), 1, "{accounts:?}");
        assert!(firsts.iter().all(|f| *f == accounts[0]), "{firsts:?}");
        assert_eq!(iam.users().await.unwrap().len(), 1);
        assert_eq!(iam.access_keys().await.unwrap().len(), 1);
        // Later starts write nothing and learn the same account.
        let again = iam
            .bootstrap_account(
                2_000,
                UserRecord {
                    user_arn: "arn:aws:iam::999999999999:user/admin".into(),
                    account_id: "999999999999".into(),
                    user_name: "admin".into(),
                    user_id: "AIDALATE".into(),
                    is_admin: true,
                    created_ms: 2_000,
                },
                AccessKeyRecord {
                    access_key_id: "AKIALATE".into(),
                    user_arn: "arn:aws:iam::999999999999:user/admin".into(),
                    account_id: "999999999999".into(),
                    wrapped_secret: vec![],
                    status: "Active".into(),
                    created_ms: 2_000,
                },
            )
            .await
            .unwrap();
        assert_eq!(again, accounts[0]);
        assert_eq!(iam.accounts().await.unwrap(), accounts);
        iam.close().await;
    }

    pub async fn iam_keys_and_policies_change(b: &Backend) {
        let iam = b.iam().await;
        iam.create_account(ACCOUNT, 1_000).await.unwrap();
        let bob = UserRecord {
            user_arn: format!("arn:aws:iam::{ACCOUNT}:user/bob"),
            account_id: ACCOUNT.into(),
            user_name: "bob".into(),
            user_id: "AIDABOB".into(),
            is_admin: false,
            created_ms: 1_000,
        };
        iam.create_user(bob.clone()).await.unwrap();
        assert_eq!(iam.user(&bob.user_arn).await.unwrap(), Some(bob.clone()));
        assert_eq!(iam.user("arn:aws:iam::1:user/none").await.unwrap(), None);
        let key = AccessKeyRecord {
            access_key_id: "AKIABOB1".into(),
            user_arn: bob.user_arn.clone(),
            account_id: ACCOUNT.into(),
            wrapped_secret: vec![9, 8, 7],
            status: "Active".into(),
            created_ms: 1_100,
        };
        let second = AccessKeyRecord {
            access_key_id: "AKIABOB2".into(),
            created_ms: 1_200,
            ..key.clone()
        };
        iam.create_access_key(second.clone()).await.unwrap();
        iam.create_access_key(key.clone()).await.unwrap();
        assert_eq!(
            iam.user_access_keys(&bob.user_arn).await.unwrap(),
            vec![key.clone(), second.clone()]
        );
        assert!(
            iam.set_access_key_status("AKIABOB1", "Inactive")
                .await
                .unwrap()
        );
        assert!(
            !iam.set_access_key_status("AKIANONE", "Inactive")
                .await
                .unwrap()
        );
        assert_eq!(
            iam.access_key("AKIABOB1").await.unwrap().unwrap().status,
            "Inactive"
        );
        assert!(iam.delete_access_key("AKIABOB2").await.unwrap());
        assert!(!iam.delete_access_key("AKIABOB2").await.unwrap());
        assert_eq!(iam.access_key("AKIABOB2").await.unwrap(), None);

        let policy = |name: &str, doc: &str, at: i64| UserPolicyRecord {
            user_arn: bob.user_arn.clone(),
            policy_name: name.into(),
            document: doc.into(),
            updated_ms: at,
        };
        iam.put_user_policy(policy("read", "{\"a\":1}", 2_000))
            .await
            .unwrap();
        iam.put_user_policy(policy("Admin", "{}", 2_100))
            .await
            .unwrap();
        iam.put_user_policy(policy("read", "{\"a\": 2}", 2_200))
            .await
            .unwrap();
        assert_eq!(
            iam.user_policies(&bob.user_arn).await.unwrap(),
            vec![
                policy("Admin", "{}", 2_100),
                policy("read", "{\"a\": 2}", 2_200)
            ]
        );
        assert!(
            iam.delete_user_policy(&bob.user_arn, "Admin")
                .await
                .unwrap()
        );
        assert!(
            !iam.delete_user_policy(&bob.user_arn, "Admin")
                .await
                .unwrap()
        );
        assert_eq!(iam.user_policies(&bob.user_arn).await.unwrap().len(), 1);

        assert!(iam.delete_user(&bob.user_arn).await.unwrap());
        assert!(!iam.delete_user(&bob.user_arn).await.unwrap());
        assert_eq!(iam.users().await.unwrap(), Vec::new());
        iam.close().await;
    }

    pub async fn iam_user_tags_are_swapped_only_from_what_was_read(b: &Backend) {
        let iam = b.iam().await;
        iam.create_account(ACCOUNT, 1_000).await.unwrap();
        let carol = UserRecord {
            user_arn: format!("arn:aws:iam::{ACCOUNT}:user/carol"),
            account_id: ACCOUNT.into(),
            user_name: "carol".into(),
            user_id: "AIDACAROL".into(),
            is_admin: false,
            created_ms: 1_000,
        };
        iam.create_user(carol.clone()).await.unwrap();
        // A new user (and every user of a store made before tags existed) has none.
        assert_eq!(
            iam.user_tags(&carol.user_arn).await.unwrap().as_deref(),
            Some("[]")
        );
        let one = r#"[{"Key":"a","Value":"1"}]"#;
        assert!(
            iam.replace_user_tags(&carol.user_arn, "[]", one)
                .await
                .unwrap()
        );
        // A writer that read the old tags loses: nothing is overwritten.
        assert!(
            !iam.replace_user_tags(&carol.user_arn, "[]", "[]")
                .await
                .unwrap()
        );
        assert_eq!(
            iam.user_tags(&carol.user_arn).await.unwrap().as_deref(),
            Some(one)
        );
        assert_eq!(
            iam.user_tags("arn:aws:iam::1:user/none").await.unwrap(),
            None
        );
        assert!(
            !iam.replace_user_tags("arn:aws:iam::1:user/none", "[]", one)
                .await
                .unwrap()
        );
        iam.close().await;
    }

    /// `writers` tasks each add one to a counter kept in the description: load, modify, commit,
    /// and on `Conflict` start over. Every increment must survive.
    pub async fn increment_concurrently(stores: &[Arc<dyn Store>], writers: usize) {
        let rec = secret(ACCOUNT, "counter", 1_000);
        let mut initial = rec.clone();
        initial.description = Some("0".into());
        insert(&stores[0], initial, Vec::new()).await;
        let mut tasks = Vec::new();
        for n in 0..writers {
            let store = stores[n % stores.len()].clone();
            let arn = rec.arn.clone();
            tasks.push(tokio::spawn(async move {
                let mut conflicts = 0;
                loop {
                    let current = store.load_secret_by_arn(&arn).await.unwrap().unwrap();
                    let mut next = current.record.clone();
                    let count: i64 = next.description.as_deref().unwrap().parse().unwrap();
                    next.description = Some((count + 1).to_string());
                    next.row_version += 1;
                    let version = version(&arn, &format!("v{n}"), 2_000 + n as i64, &[]);
                    match store
                        .commit(SecretChange::Update {
                            secret: next,
                            expected_row_version: current.record.row_version,
                            upsert_versions: vec![version],
                            delete_versions: Vec::new(),
                        })
                        .await
                    {
                        Ok(()) => return conflicts,
                        Err(StoreError::Conflict) => {
                            conflicts += 1;
                            assert!(conflicts < 10_000, "writer {n} starved");
                        }
                        Err(other) => panic!("writer {n}: {other}"),
                    }
                }
            }));
        }
        let mut conflicts = 0;
        for task in tasks {
            conflicts += task.await.unwrap();
        }
        let done = load(&stores[0], &rec.arn).await;
        assert_eq!(
            done.record.description.as_deref(),
            Some(writers.to_string().as_str()),
            "lost updates ({conflicts} conflicts retried)"
        );
        assert_eq!(done.record.row_version, writers as i64 + 1);
        assert_eq!(done.versions.len(), writers);
    }

    pub async fn concurrent_load_modify_commit_loses_no_update(b: &Backend) {
        let store = b.region().await;
        increment_concurrently(std::slice::from_ref(&store), 24).await;
        store.close().await;
    }
}

/// What only a database shared by several nodes has.
mod postgres_only {
    use super::*;
    use coffer_store::PostgresStore;

    async fn with_backend<F, Fut>(test: F)
    where
        F: FnOnce(Arc<Backend>) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let backend = Arc::new(Backend::postgres());
        test(backend.clone()).await;
        Arc::into_inner(backend)
            .expect("the test kept the backend")
            .cleanup()
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nodes_starting_together_migrate_once() {
        with_backend(|b| async move {
            let mut opens = Vec::new();
            for _ in 0..6 {
                let b = b.clone();
                opens.push(tokio::spawn(async move { b.try_region().await }));
            }
            let mut stores = Vec::new();
            for open in opens {
                stores.push(open.await.unwrap().expect("every node opens the store"));
            }
            let meta = b.meta("region").await;
            assert_eq!(
                meta,
                vec![
                    ("format_version".to_string(), current_format()),
                    ("kind".to_string(), "coffer-region".to_string()),
                    ("migration_lock".to_string(), "coffer".to_string()),
                ]
            );
            // Every node works on the same tables.
            let rec = secret(ACCOUNT, "shared", 1_000);
            insert(&stores[0], rec.clone(), Vec::new()).await;
            for store in &stores {
                assert_eq!(load(store, &rec.arn).await.record, rec);
                store.close().await;
            }
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_nodes_lose_no_update() {
        with_backend(|b| async move {
            let nodes = [b.region().await, b.region().await];
            cases::increment_concurrently(&nodes, 24).await;
            for node in nodes {
                node.close().await;
            }
        })
        .await;
    }

    /// Each node caches what it reads (`PostgresStore`'s read cache); a read on one node right
    /// after a write acknowledged by the other must return the write, whatever it changed: the
    /// record, versions, only an access day (written without a `row_version` bump), or the
    /// secret deleted and its name taken by a new one. Both nodes read every secret before
    /// each write, so their caches hold the state the write replaces. A node without a cache
    /// is the oracle. Random steps; the seed is printed (`COFFER_SEED` replays one).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_node_reads_what_another_node_wrote_at_once() {
        with_backend(|b| async move {
            let nodes = [b.region().await, b.region().await];
            let oracle: Arc<dyn Store> = Arc::new(
                PostgresStore::open(b.url(), &b.schema("region"))
                    .await
                    .expect("oracle")
                    .cache_max_bytes(0),
            );
            let seed = std::env::var("COFFER_SEED")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| now_ms() as u64 | 1);
            println!("a_node_reads_what_another_node_wrote_at_once: COFFER_SEED={seed}");
            let mut rng = seed;
            let mut next = move |n: u64| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng % n
            };
            let names = ["alpha", "beta", "gamma"];
            for name in names {
                let rec = secret(ACCOUNT, name, 1_000);
                let v = version(&rec.arn, "v0", 1_000, &["AWSCURRENT"]);
                insert(&nodes[0], rec, vec![v]).await;
            }
            let mut generation = 0;
            for step in 0..300 {
                let name = names[next(names.len() as u64) as usize];
                let writer = next(2) as usize;
                let reader = &nodes[1 - writer];
                for node in &nodes {
                    node.load_secret_by_name(ACCOUNT, name).await.unwrap().unwrap();
                }
                let current = oracle
                    .load_secret_by_name(ACCOUNT, name)
                    .await
                    .unwrap()
                    .expect("the secret exists");
                let arn = current.record.arn.clone();
                let what = next(5);
                match what {
                    0 | 1 => {
                        let mut change = update(&current.record);
                        if let SecretChange::Update {
                            secret,
                            upsert_versions,
                            delete_versions,
                            ..
                        } = &mut change
                        {
                            secret.description = Some(format!("step {step}"));
                            if what == 1 {
                                upsert_versions.push(version(
                                    &arn,
                                    &format!("v{step}"),
                                    2_000 + step,
                                    &[],
                                ));
                                if let Some(old) =
                                    current.versions.iter().find(|v| v.stages.is_empty())
                                {
                                    delete_versions.push(old.version_id.clone());
                                }
                            }
                        }
                        nodes[writer].commit(change).await.expect("update");
                    }
                    2 | 3 => {
                        let v = &current.versions[next(current.versions.len() as u64) as usize];
                        // Several steps a day: an access may change only a version's day.
                        let day = 20_000 + step / 20;
                        nodes[writer]
                            .record_access(&arn, &v.version_id, day)
                            .await
                            .expect("access");
                    }
                    _ => {
                        nodes[writer]
                            .commit(SecretChange::Delete {
                                arn: arn.clone(),
                                expected_row_version: current.record.row_version,
                            })
                            .await
                            .expect("delete");
                        generation += 1;
                        let mut rec = secret(ACCOUNT, name, 1_000 + step);
                        rec.arn = format!(
                            "arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:{name}-G{generation:05}"
                        );
                        let v = version(&rec.arn, "v0", 1_000 + step, &["AWSCURRENT"]);
                        insert(&nodes[writer], rec, vec![v]).await;
                    }
                }
                let truth = oracle.load_secret_by_name(ACCOUNT, name).await.unwrap();
                let by_name = reader.load_secret_by_name(ACCOUNT, name).await.unwrap();
                assert_eq!(by_name, truth, "seed {seed}, step {step} ({what}): by name");
                let by_arn = reader.load_secret_by_arn(&arn).await.unwrap();
                let old_truth = oracle.load_secret_by_arn(&arn).await.unwrap();
                assert_eq!(by_arn, old_truth, "seed {seed}, step {step} ({what}): by ARN");
            }
            for node in nodes {
                node.close().await;
            }
            oracle.close().await;
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_nodes_never_claim_the_same_row() {
        with_backend(|b| async move {
            let nodes = [b.region().await, b.region().await];
            let total = 80;
            nodes[0]
                .enqueue(
                    (0..total)
                        .map(|i| entry(&arn(ACCOUNT, &format!("s{i}")), "eu-west-1", "sync", "{}"))
                        .collect(),
                )
                .await
                .unwrap();
            let t = now_ms() + 1_000;
            let mut tasks = Vec::new();
            for n in 0..6 {
                let node = nodes[n % 2].clone();
                tasks.push(tokio::spawn(async move {
                    let owner = format!("node-{n}");
                    let mut mine = Vec::new();
                    loop {
                        let rows = node.claim_outbox(t, &owner, 60_000, 5).await.unwrap();
                        if rows.is_empty() {
                            return mine;
                        }
                        for r in &rows {
                            node.finish_outbox(
                                &r.entry.secret_arn,
                                &r.entry.dest_region,
                                &r.entry.kind,
                                r.id,
                            )
                            .await
                            .unwrap();
                        }
                        mine.extend(ids(&rows));
                    }
                }));
            }
            let mut seen = BTreeSet::new();
            for task in tasks {
                for id in task.await.unwrap() {
                    assert!(seen.insert(id), "row {id} was claimed twice");
                }
            }
            assert_eq!(seen.len(), total);
            assert!(nodes[1].outbox_depth().await.unwrap().is_empty());
            for node in nodes {
                node.close().await;
            }
        })
        .await;
    }

    /// Under SERIALIZABLE, losers of a race get SQLSTATE 40001 instead of waiting; the store
    /// retries them, and what cannot succeed becomes `Conflict` for the caller's reload loop.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serializable_transactions_are_retried() {
        let b = Arc::new(Backend::postgres_serializable());
        let nodes = [b.region().await, b.region().await];
        cases::increment_concurrently(&nodes, 16).await;
        nodes[0]
            .enqueue(
                (0..40)
                    .map(|i| entry(&arn(ACCOUNT, &format!("s{i}")), "eu-west-1", "sync", "{}"))
                    .collect(),
            )
            .await
            .unwrap();
        let t = now_ms() + 1_000;
        let mut tasks = Vec::new();
        for n in 0..4 {
            let node = nodes[n % 2].clone();
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                for k in 0.. {
                    let owner = format!("node-{n}-{k}");
                    let rows = node.claim_outbox(t, &owner, 60_000, 3).await.unwrap();
                    if rows.is_empty() {
                        return mine;
                    }
                    mine.extend(ids(&rows));
                }
                unreachable!()
            }));
        }
        let mut seen = BTreeSet::new();
        for task in tasks {
            for id in task.await.unwrap() {
                assert!(seen.insert(id), "row {id} was claimed twice");
            }
        }
        assert_eq!(seen.len(), 40);
        for node in nodes {
            node.close().await;
        }
        Arc::into_inner(b).unwrap().cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_schema_of_someone_else_is_refused_and_left_untouched() {
        with_backend(|b| async move {
            let schema = b.schema("region");
            b.pg_execute(format!(
                "CREATE SCHEMA \"{schema}\"; CREATE TABLE \"{schema}\".orders (id BIGINT); \
                 INSERT INTO \"{schema}\".orders VALUES (7)"
            ))
            .await;
            match b.try_region().await {
                Err(StoreError::Incompatible(message)) => {
                    assert!(message.contains("not a Coffer store"), "{message}");
                    assert!(message.contains(&schema), "{message}");
                }
                Err(other) => panic!("expected Incompatible, got {other:?}"),
                Ok(_) => panic!("a foreign schema was adopted"),
            }
            let tables = b
                .pg_scalar(format!(
                    "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '{schema}'"
                ))
                .await;
            assert_eq!(tables, 1, "nothing was created next to the foreign table");
            let rows = b
                .pg_scalar(format!("SELECT COUNT(*) FROM \"{schema}\".orders"))
                .await;
            assert_eq!(rows, 1);
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_empty_schema_made_by_an_administrator_is_used() {
        with_backend(|b| async move {
            b.pg_execute(format!("CREATE SCHEMA \"{}\"", b.schema("region")))
                .await;
            let store = b.region().await;
            insert(&store, secret(ACCOUNT, "s", 1), Vec::new()).await;
            store.close().await;
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bad_schema_names_and_unreachable_servers_are_errors() {
        let url = support::postgres_url();
        for bad in ["Coffer", "us-east-1", "x\"; DROP TABLE y; --", ""] {
            match PostgresStore::open(&url, bad).await {
                Err(StoreError::Backend(message)) => {
                    assert!(message.contains("schema name"), "{message}")
                }
                Err(other) => panic!("{bad:?}: {other:?}"),
                Ok(_) => panic!("{bad:?} accepted"),
            }
        }
        assert_eq!(
            PostgresStore::schema_for_region("eu-central-2"),
            "coffer_eu_central_2"
        );
        // Port 1 on localhost refuses at once; the password never appears in the error.
        match PostgresStore::open("postgres://coffer:hunter2@127.0.0.1:1/coffer", "coffer_x").await
        {
            Err(StoreError::Backend(message)) => {
                assert!(!message.contains("hunter2"), "{message}");
                assert!(message.contains("127.0.0.1:1"), "{message}");
            }
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("connected to port 1"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_node_holds_a_lease_at_a_time_until_it_runs_out() {
        with_backend(|b| async move {
            let nodes = [b.region().await, b.region().await];
            let now = now_ms();
            assert!(
                nodes[0]
                    .try_lease("purge", "node-a", now, 1_000)
                    .await
                    .unwrap()
            );
            assert!(
                !nodes[1]
                    .try_lease("purge", "node-b", now, 1_000)
                    .await
                    .unwrap()
            );
            // The holder renews; other leases are independent.
            assert!(
                nodes[0]
                    .try_lease("purge", "node-a", now + 500, 1_000)
                    .await
                    .unwrap()
            );
            assert!(
                nodes[1]
                    .try_lease("other", "node-b", now, 1_000)
                    .await
                    .unwrap()
            );
            assert!(
                !nodes[1]
                    .try_lease("purge", "node-b", now + 1_400, 1_000)
                    .await
                    .unwrap()
            );
            // A dead holder's lease runs out and the next node takes it over.
            assert!(
                nodes[1]
                    .try_lease("purge", "node-b", now + 1_600, 1_000)
                    .await
                    .unwrap()
            );
            assert!(
                !nodes[0]
                    .try_lease("purge", "node-a", now + 1_700, 1_000)
                    .await
                    .unwrap()
            );
            // Many asking at once: exactly one gets it.
            let mut asks = Vec::new();
            for i in 0..8 {
                let store = nodes[i % 2].clone();
                asks.push(tokio::spawn(async move {
                    store
                        .try_lease("race", &format!("n{i}"), now, 60_000)
                        .await
                        .unwrap()
                }));
            }
            let mut granted = 0;
            for ask in asks {
                granted += ask.await.unwrap() as usize;
            }
            assert_eq!(granted, 1);
            for node in nodes {
                node.close().await;
            }
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_migrate_on_start_an_unmigrated_schema_is_refused() {
        with_backend(|b| async move {
            let schema = b.schema("lazy");
            match PostgresStore::open_with(b.url(), &schema, false).await {
                Err(StoreError::Incompatible(message)) => {
                    assert!(message.contains("coffer migrate"), "{message}")
                }
                Err(other) => panic!("{other:?}"),
                Ok(_) => panic!("an empty schema was opened without migrating"),
            }
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(b.url())
                .await
                .unwrap();
            let created: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = $1",
            )
            .bind(&schema)
            .fetch_one(&mut conn)
            .await
            .unwrap();
            assert_eq!(created, 0, "nothing may be written");
            PostgresStore::open(b.url(), &schema)
                .await
                .unwrap()
                .close()
                .await;
            PostgresStore::open_with(b.url(), &schema, false)
                .await
                .expect("a migrated schema opens")
                .close()
                .await;
        })
        .await;
    }

    /// Everything a Region holds, of every shape.
    async fn fill(store: &Arc<dyn Store>) {
        let mut tagged = secret(ACCOUNT, "tagged", 1_000);
        tagged.tags = Some(vec![Tag {
            key: "team".into(),
            value: "orders".into(),
        }]);
        tagged.deleted_ms = Some(5_000);
        tagged.purge_at_ms = Some(9_000);
        tagged.rotation = Some("{\"enabled\":true}".into());
        tagged.replication = Some("{\"Primary\":{}}".into());
        let a = tagged.arn.clone();
        insert(
            store,
            tagged,
            vec![
                version(&a, "v1", 1_000, &["AWSPREVIOUS"]),
                version(&a, "v2", 2_000, &["AWSCURRENT", "MINE"]),
            ],
        )
        .await;
        let mut pending = version(&a, "v3", 3_000, &["AWSPENDING"]);
        pending.value_kind = ValueKind::None;
        pending.wrapped_data_key = None;
        pending.ciphertext = None;
        pending.kms_key_arn = None;
        let loaded = load(store, &a).await;
        store
            .commit(SecretChange::Update {
                secret: SecretRecord {
                    row_version: loaded.record.row_version + 1,
                    ..loaded.record.clone()
                },
                expected_row_version: loaded.record.row_version,
                upsert_versions: vec![pending],
                delete_versions: Vec::new(),
            })
            .await
            .unwrap();
        insert(store, secret(OTHER_ACCOUNT, "other", 2_000), Vec::new()).await;
        store
            .commit(SecretChange::RecordDetachment(coffer_store::Detachment {
                arn: arn(ACCOUNT, "promoted"),
                primary_arn: arn(ACCOUNT, "promoted").replace("us-east-1", "us-west-2"),
                epoch: 7,
                detached_ms: 4_000,
            }))
            .await
            .unwrap();
        store
            .create_kms_key(
                KmsKeyRecord {
                    key_arn: "arn:aws:kms:us-east-1:111122223333:key/k1".into(),
                    account_id: ACCOUNT.into(),
                    key_id: "k1".into(),
                    wrapped_material: vec![1, 2, 3, 0, 255],
                    metadata: "{}".into(),
                    created_ms: 10,
                },
                Some(KmsAliasRecord {
                    account_id: ACCOUNT.into(),
                    alias_name: "alias/aws/secretsmanager".into(),
                    target_key_arn: "arn:aws:kms:us-east-1:111122223333:key/k1".into(),
                    created_ms: 10,
                }),
            )
            .await
            .unwrap();
        store
            .enqueue(vec![
                entry(&a, "eu-west-1", "sync", "{\"force\":false}"),
                entry(&a, "us-east-1", "rotate", "{\"generation\":1}"),
            ])
            .await
            .unwrap();
        // A leased row comes back unleased.
        store
            .claim_outbox(now_ms(), "node-a", 60_000, 1)
            .await
            .unwrap();
    }

    /// A snapshot without what a restore renumbers (outbox ids).
    fn comparable(mut s: coffer_store::RegionSnapshot) -> coffer_store::RegionSnapshot {
        for row in &mut s.outbox {
            row.id = 0;
        }
        s
    }

    /// Counts what an export streams, and keeps it.
    #[derive(Default)]
    struct Streamed {
        started: Option<(i64, u64)>,
        snapshot: coffer_store::RegionSnapshot,
        items: usize,
    }

    impl coffer_store::RegionSink for Streamed {
        type Error = StoreError;
        fn start(&mut self, format_version: i64, secrets: u64) -> Result<(), StoreError> {
            assert!(self.started.is_none(), "started twice");
            self.started = Some((format_version, secrets));
            Ok(())
        }
        fn item(&mut self, item: coffer_store::RegionItem) -> Result<(), StoreError> {
            assert!(self.started.is_some(), "a record before the start");
            self.items += 1;
            coffer_store::RegionSink::item(&mut self.snapshot, item)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_export_of_many_pages_streams_every_record_once() {
        with_backend(|b| async move {
            let store: Arc<dyn Store> = Arc::new(
                PostgresStore::open(b.url(), &b.schema("many"))
                    .await
                    .unwrap(),
            );
            fill(&store).await;
            // More secrets than several export pages, with names whose order depends on the
            // collation (case, punctuation).
            for i in 0..700 {
                let name = match i % 3 {
                    0 => format!("Page-{i}"),
                    1 => format!("page_{i}"),
                    _ => format!("page.{i}/x"),
                };
                let a = arn(ACCOUNT, &name);
                insert(
                    &store,
                    secret(ACCOUNT, &name, 10_000 + i),
                    vec![
                        version(&a, "v1", 1_000, &["AWSPREVIOUS"]),
                        version(&a, "v2", 2_000, &["AWSCURRENT"]),
                    ],
                )
                .await;
            }
            let pg = PostgresStore::open(b.url(), &b.schema("many"))
                .await
                .unwrap();
            let mut streamed = Streamed::default();
            pg.export_to(&mut streamed).await.unwrap();
            let whole = pg.export().await.unwrap();
            assert_eq!(
                streamed.started,
                Some((whole.format_version, whole.secrets.len() as u64))
            );
            assert_eq!(whole.secrets.len(), 702);
            let s = &streamed.snapshot;
            assert_eq!(
                streamed.items,
                s.secrets.len()
                    + s.kms_keys.len()
                    + s.kms_aliases.len()
                    + s.outbox.len()
                    + s.detachments.len()
            );
            let mut arns: Vec<&str> = s.secrets.iter().map(|s| s.record.arn.as_str()).collect();
            arns.sort();
            arns.dedup();
            assert_eq!(arns.len(), 702, "every secret exactly once");
            for secret in &s.secrets {
                assert!(
                    secret
                        .versions
                        .iter()
                        .all(|v| v.secret_arn == secret.record.arn),
                    "versions of another secret"
                );
            }
            for exported in &s.secrets {
                assert_eq!(*exported, load(&store, &exported.record.arn).await);
            }

            // Streamed into SQLite, record by record: the same Region.
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("many.db");
            let mut items = whole.items();
            let n = coffer_store::import_sqlite_from(&path, || Ok::<_, StoreError>(items.next()))
                .await
                .unwrap();
            drop(items);
            assert_eq!(n, 702);
            // The restored rows' copies of their labelled versions (SQLite's triggers).
            let restored: Arc<dyn Store> =
                Arc::new(coffer_store::SqliteStore::open(&path).await.unwrap());
            for exported in &whole.secrets {
                let labelled = restored
                    .load_by_arn(&exported.record.arn, Versions::Labelled)
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(labelled.versions, labelled_of(exported));
            }
            restored.close().await;
            let back = coffer_store::export_sqlite(&path).await.unwrap();
            assert_eq!(comparable(back), comparable(whole));
            pg.close().await;
            store.close().await;
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_snapshot_moves_from_sqlite_to_postgres_and_back() {
        with_backend(|b| async move {
            let dir = tempfile::tempdir().unwrap();
            let lite_path = dir.path().join("west.db");
            let lite: Arc<dyn Store> =
                Arc::new(coffer_store::SqliteStore::open(&lite_path).await.unwrap());
            fill(&lite).await;
            lite.close().await;
            let from_lite = coffer_store::export_sqlite(&lite_path).await.unwrap();
            assert_eq!(from_lite.secrets.len(), 2);
            assert_eq!(from_lite.secrets[0].versions.len(), 3);
            assert_eq!(from_lite.outbox.len(), 2);
            assert_eq!(from_lite.format_version.to_string(), current_format());
            assert_eq!(from_lite.detachments.len(), 1);

            let pg = PostgresStore::open(b.url(), &b.schema("restored"))
                .await
                .unwrap();
            pg.import(&from_lite).await.unwrap();
            let from_pg = pg.export().await.unwrap();
            assert_eq!(comparable(from_pg.clone()), comparable(from_lite.clone()));
            // The restored store works: reads, and the outbox is claimable by any node.
            let pg: Arc<dyn Store> = Arc::new(pg);
            let a = arn(ACCOUNT, "tagged");
            assert_eq!(load(&pg, &a).await, from_lite.secrets[0]);
            assert_eq!(
                pg.claim_outbox(now_ms(), "node-b", 1_000, 10)
                    .await
                    .unwrap()
                    .len(),
                2
            );
            assert!(
                pg.load_kms_alias(ACCOUNT, "alias/aws/secretsmanager")
                    .await
                    .unwrap()
                    .is_some()
            );
            // A second import would mix two states: refused, nothing changed.
            let pg_store = PostgresStore::open(b.url(), &b.schema("restored"))
                .await
                .unwrap();
            match pg_store.import(&from_lite).await {
                Err(StoreError::Incompatible(m)) => assert!(m.contains("empty"), "{m}"),
                other => panic!("{other:?}"),
            }
            assert_eq!(
                comparable(pg_store.export().await.unwrap()).secrets,
                from_lite.secrets
            );
            pg_store.close().await;
            pg.close().await;

            let back_path = dir.path().join("back.db");
            coffer_store::import_sqlite(&back_path, &from_pg)
                .await
                .unwrap();
            let back = coffer_store::export_sqlite(&back_path).await.unwrap();
            assert_eq!(comparable(back), comparable(from_lite.clone()));
            match coffer_store::import_sqlite(&back_path, &from_pg).await {
                Err(StoreError::Incompatible(m)) => assert!(m.contains("empty"), "{m}"),
                other => panic!("{other:?}"),
            }
        })
        .await;
    }
}
