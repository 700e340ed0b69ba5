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

    pub fn migrations(self) -> &'static [&'static str] {
        match self {
            StoreKind::Region => &[
                include_str!("../migrations/region/0001_initial.sql"),
                include_str!("../migrations/region/0002_replication_outbox.sql"),
            ],
            StoreKind::Iam => &[include_str!("../migrations/iam/0001_initial.sql")],
        }
    }
}

/// What the meta table says about an existing store.
pub fn check_compatible(
    kind: StoreKind,
    location: &str,
    found_kind: Option<&str>,
    found_version: Option<i64>,
) -> Result<(), String> {
    let supported = kind.migrations().len() as i64;
    match (found_kind, found_version) {
        (Some(k), Some(v)) if k == kind.name() && v <= supported && v >= 1 => Ok(()),
        (Some(k), Some(v)) if k == kind.name() => Err(format!(
            "{location} was written by a newer Coffer (store format {v}; this version reads up to {supported}). \
             Upgrade Coffer or point --data-dir elsewhere; the file was left untouched."
        )),
        (Some(k), _) => Err(format!(
            "{location} is a {k} store, not a {} store; the file was left untouched.",
            kind.name()
        )),
        _ => Err(format!(
            "{location} is not a Coffer store (no format marker); the file was left untouched."
        )),
    }
}
