//! Where a Region's root key comes from, and its rotation (docs/keys.md).
//!
//! ```text
//! COFFER_ROOT_KEY_<REGION>        the key as 64 hex digits (REGION upper-cased, '-' -> '_'),
//!                                 e.g. COFFER_ROOT_KEY_US_EAST_1; takes precedence over the file
//! DIR/keys/<region>.key           the key file (mode 0600), created with a new store
//! DIR/keys/<region>.key.next      a rotation in progress: the key being rotated to
//! DIR/keys/<region>.key.old-<fp>  retired keys, kept to unwrap what was not re-wrapped yet
//! ```
//!
//! `coffer rotate-root-key --region R` re-wraps every KMS key of the Region under a new root key
//! while the server runs: the server unwraps with every key it knows and, when stored material
//! opens under none of them, reads the files again (`Keys::set_root_key_reloader`), so
//! no request fails during or after the switch.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use coffer_core::RegionService;
use coffer_kms::RootKey;
use coffer_store::KmsChange;

use crate::config::Settings;
use crate::data_dir::{self, RegionStore};

/// `COFFER_ROOT_KEY_US_EAST_1` for `us-east-1`.
pub fn env_var(region: &str) -> String {
    format!(
        "COFFER_ROOT_KEY_{}",
        region.to_ascii_uppercase().replace('-', "_")
    )
}

/// The Region's root key from its environment variable, or from `file()` when it is not set.
pub fn from_env_or(
    region: &str,
    file: impl FnOnce() -> anyhow::Result<RootKey>,
) -> anyhow::Result<RootKey> {
    let name = env_var(region);
    match std::env::var(&name) {
        Ok(hex) => RootKey::from_hex(&hex).context(name),
        Err(_) => file(),
    }
}

fn with_suffix(key_path: &Path, suffix: &str) -> PathBuf {
    let mut name = key_path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// The retired keys (`<region>.key.old-*`) and a rotation's next key (`<region>.key.next`).
/// Files that are not keys (or not private) are skipped with a warning: they only ever help.
pub fn other_keys(key_path: &Path) -> Vec<RootKey> {
    let Some(dir) = key_path.parent() else {
        return Vec::new();
    };
    let Some(base) = key_path.file_name().and_then(|n| n.to_str()) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                        n == format!("{base}.next") || n.starts_with(&format!("{base}.old-"))
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    paths.sort();
    paths
        .iter()
        .filter_map(|p| match RootKey::load(p) {
            Ok(k) => Some(k),
            Err(e) => {
                tracing::warn!(error = %e, "Skipping a root key file");
                None
            }
        })
        .collect()
}

/// Gives a Region's service its retired keys and a way to find a rotated key without a restart.
/// Nothing to do when the key comes from the environment (rotate by changing the variable and
/// restarting, see docs/keys.md).
pub fn attach(service: &RegionService, key_path: &Path) {
    for key in other_keys(key_path) {
        service.keys.add_unwrap_key(key);
    }
    if std::env::var(env_var(&service.region)).is_ok() {
        return;
    }
    let path = key_path.to_path_buf();
    service.keys.set_root_key_reloader(Box::new(move || {
        let mut keys = Vec::new();
        if let Ok(current) = RootKey::load(&path) {
            keys.push(current);
        }
        keys.extend(other_keys(&path));
        keys
    }));
}

/// `coffer rotate-root-key`: re-wraps every KMS key of `region` under a new root key (or, with
/// `rewrap_only`, under the current one: for keys a running server created during a rotation),
/// then makes the new key current and keeps the old one as `<region>.key.old-<fingerprint>`.
/// Safe to run again after an interruption: it resumes with the same `.next` key.
pub async fn rotate(
    settings: &Settings,
    region: &str,
    rewrap_only: bool,
) -> anyhow::Result<String> {
    let from_env = std::env::var(env_var(region)).is_ok();
    if from_env && !rewrap_only {
        bail!(
            "the root key of {region} comes from {}: rotate it by hand, then run with \
             --rewrap-only (docs/keys.md)",
            env_var(region)
        );
    }
    let dir = settings
        .data_dir
        .canonicalize()
        .with_context(|| format!("cannot open data directory {}", settings.data_dir.display()))?;
    let key_path = dir.join("keys").join(format!("{region}.key"));
    let load_current = || {
        from_env_or(region, || {
            RootKey::load(&key_path).map_err(anyhow::Error::from)
        })
    };
    let current = load_current()?;
    let next_path = with_suffix(&key_path, ".next");
    let target = if rewrap_only {
        load_current()?
    } else {
        RootKey::load_or_create(&next_path)?.0
    };
    let store: std::sync::Arc<dyn coffer_store::Store> =
        match data_dir::open_region_store(settings, &dir, region, false).await? {
            RegionStore::Sqlite(store, _) => std::sync::Arc::new(store),
            RegionStore::Postgres(store) => std::sync::Arc::new(store),
        };
    let mut sources = vec![current];
    sources.extend(other_keys(&key_path));
    let mut rewrapped = 0;
    let mut already = 0;
    for listed in store.list_kms_keys(None).await? {
        // Only over the row as read: a key the running server changes meanwhile (a rotation
        // writes new material) is read again and re-wrapped as it is now.
        let mut current = Some(listed);
        while let Some(mut record) = current.take() {
            if target
                .unwrap_key_material(&record.key_arn, &record.wrapped_material)
                .is_ok()
            {
                already += 1;
                break;
            }
            let material = sources
                .iter()
                .find_map(|k| {
                    k.unwrap_key_material(&record.key_arn, &record.wrapped_material)
                        .ok()
                })
                .ok_or_else(|| {
                    anyhow!(
                        "{} opens under none of the root keys in {} (nothing more was changed)",
                        record.key_arn,
                        dir.join("keys").display()
                    )
                })?;
            let expected = record.clone();
            record.wrapped_material = target.wrap_key_material(&record.key_arn, &material);
            let arn = record.key_arn.clone();
            match store
                .commit_kms(KmsChange::UpdateKeyIf {
                    key: record,
                    expected,
                })
                .await
            {
                Ok(()) => rewrapped += 1,
                Err(coffer_store::StoreError::Conflict) => {
                    // Changed (read it again) or deleted (nothing to re-wrap).
                    current = store.load_kms_key(&arn).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    store.close().await;
    if rewrap_only {
        return Ok(format!(
            "re-wrapped {rewrapped} KMS keys of {region} under the current root key ({already} already were)"
        ));
    }
    // Keep the old key (a hard link, so `<region>.key` never disappears), then put the new one
    // in place with an atomic rename.
    let old_path = with_suffix(&key_path, &format!(".old-{}", sources[0].fingerprint()));
    if !old_path.exists() {
        std::fs::hard_link(&key_path, &old_path)
            .with_context(|| format!("cannot keep the old key as {}", old_path.display()))?;
    }
    std::fs::rename(&next_path, &key_path).context("cannot put the new key in place")?;
    std::fs::File::open(dir.join("keys"))
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync {}", dir.join("keys").display()))?;
    Ok(format!(
        "re-wrapped {rewrapped} KMS keys of {region} under the new root key {} ({already} already were); \
         the old key is kept as {} for keys a running server creates before it notices the new one, \
         and for backups made before now: run `coffer rotate-root-key --region {region} --rewrap-only` \
         after the next restart, then remove it",
        target.fingerprint(),
        old_path.display()
    ))
}
