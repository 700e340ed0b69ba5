//! Embedded schema versions and the checks that keep Coffer away from a store it does not
//! understand. Each kind of store ("region", "iam") has an ordered list of migrations; the
//! number applied is kept in `coffer_meta.format_version`.

/// Which store a database file is, so a region file is never opened as the IAM file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Region,
    Iam,
}

impl StoreKind {
    pub fn name(self) -> &'static str {
        match self {
            StoreKind::Region => "coffer-region",
            StoreKind::Iam => "coffer-iam",
        }
    }

    /// The SQLite migrations; their count is the store format version both backends write.
    pub fn migrations(self) -> &'static [&'static str] {
        match self {
            StoreKind::Region => &[
                include_str!("../migrations/region/0001_initial.sql"),
                include_str!("../migrations/region/0002_replication_outbox.sql"),
                include_str!("../migrations/region/0003_kms.sql"),
                include_str!("../migrations/region/0004_replica_detachments.sql"),
                include_str!("../migrations/region/0005_failover.sql"),
                include_str!("../migrations/region/0006_list_in_store.sql"),
                include_str!("../migrations/region/0007_term_keys.sql"),
                include_str!("../migrations/region/0008_labelled_versions.sql"),
                include_str!("../migrations/region/0009_labelled_inline.sql"),
            ],
            StoreKind::Iam => &[
                include_str!("../migrations/iam/0001_initial.sql"),
                include_str!("../migrations/iam/0002_user_policies.sql"),
                include_str!("../migrations/iam/0003_user_tags.sql"),
            ],
        }
    }

    /// The same schema in PostgreSQL's dialect (BYTEA, an identity column for the outbox id):
    /// migration N of one backend brings a store to the same format N as on the other.
    pub fn postgres_migrations(self) -> &'static [&'static str] {
        match self {
            StoreKind::Region => &[
                include_str!("../migrations/postgres/region/0001_initial.sql"),
                include_str!("../migrations/postgres/region/0002_replication_outbox.sql"),
                include_str!("../migrations/postgres/region/0003_kms.sql"),
                include_str!("../migrations/postgres/region/0004_replica_detachments.sql"),
                include_str!("../migrations/postgres/region/0005_failover.sql"),
                include_str!("../migrations/postgres/region/0006_list_in_store.sql"),
                include_str!("../migrations/postgres/region/0007_term_keys.sql"),
                include_str!("../migrations/postgres/region/0008_labelled_versions.sql"),
                include_str!("../migrations/postgres/region/0009_labelled_inline.sql"),
            ],
            StoreKind::Iam => &[
                include_str!("../migrations/postgres/iam/0001_initial.sql"),
                include_str!("../migrations/postgres/iam/0002_user_policies.sql"),
                include_str!("../migrations/postgres/iam/0003_user_tags.sql"),
            ],
        }
    }
}

/// The Region store format that added `secret_terms`: a store migrated from before it gets the
/// terms of its existing secrets in the migration's transaction.
pub const SEARCH_TERMS_FORMAT: i64 = 6;

/// Whether migrating `kind` from format `applied` must backfill the search terms.
pub fn needs_terms_backfill(kind: StoreKind, applied: i64) -> bool {
    kind == StoreKind::Region && (1..SEARCH_TERMS_FORMAT).contains(&applied)
}

/// Says, before a migration of an existing store starts, that start-up waits for it: a
/// migration rewrites tables (format 7 took 73 s at a million secrets), and nothing else
/// would be logged until it ends.
pub fn log_migration(kind: StoreKind, location: &str, applied: i64, target: usize) {
    if applied >= 1 {
        tracing::info!(
            "{location}: migrating the {} store from format {applied} to {target}; Coffer starts \
             serving when it is done (about a minute per million secrets)",
            kind.name()
        );
    }
}

/// What the meta table says about an existing store file.
pub fn check_compatible(
    kind: StoreKind,
    location: &str,
    found_kind: Option<&str>,
    found_version: Option<i64>,
) -> Result<(), String> {
    check_compatible_in(
        kind,
        location,
        "the file",
        "point --data-dir elsewhere",
        found_kind,
        found_version,
    )
}

/// [`check_compatible`] for a store that is not a file (a PostgreSQL schema): `what` names it in
/// "... was left untouched", `elsewhere` says how to point Coffer at another one.
pub fn check_compatible_in(
    kind: StoreKind,
    location: &str,
    what: &str,
    elsewhere: &str,
    found_kind: Option<&str>,
    found_version: Option<i64>,
) -> Result<(), String> {
    let supported = kind.migrations().len() as i64;
    match (found_kind, found_version) {
        (Some(k), Some(v)) if k == kind.name() && v <= supported && v >= 1 => Ok(()),
        (Some(k), Some(v)) if k == kind.name() => Err(format!(
            "{location} was written by a newer Coffer (store format {v}; this version reads up to {supported}). \
             Upgrade Coffer or {elsewhere}; {what} was left untouched."
        )),
        (Some(k), _) => Err(format!(
            "{location} is a {k} store, not a {} store; {what} was left untouched.",
            kind.name()
        )),
        _ => Err(format!(
            "{location} is not a Coffer store (no format marker); {what} was left untouched."
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_backends_have_the_same_format_versions() {
        for kind in [StoreKind::Region, StoreKind::Iam] {
            assert_eq!(
                kind.migrations().len(),
                kind.postgres_migrations().len(),
                "{}: every migration needs its PostgreSQL dialect",
                kind.name()
            );
        }
    }

    #[test]
    fn messages_name_the_store() {
        let file = check_compatible(
            StoreKind::Region,
            "region.db",
            Some("coffer-region"),
            Some(99),
        )
        .unwrap_err();
        assert!(file.contains("newer Coffer") && file.contains("the file was left untouched"));
        let schema = check_compatible_in(
            StoreKind::Iam,
            "schema x",
            "the schema",
            "use another schema",
            Some("coffer-region"),
            Some(1),
        )
        .unwrap_err();
        assert!(
            schema.contains("not a coffer-iam store") && schema.contains("the schema was left")
        );
    }
}
