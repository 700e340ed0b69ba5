//! `coffer resource-policy list|remove`: the way back from a resource policy that locks
//! everyone out (a `Deny` on `aws:SecureTransport` = false on a plaintext node, say), which no
//! API call can undo. It needs local access to the data directory (or the config file of a node
//! whose stores are in PostgreSQL), not credentials, and it is recorded in the audit log.
//!
//! It refuses to run while a `coffer serve` holds the same audit log (the lock `coffer serve`
//! takes on it): a running SQLite node caches secrets and would not see the change. Stop the
//! node, run the command, start the node. A removal on a primary replicates to its replicas like
//! any other change; a replica's policy is removed on its primary.

use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use coffer_core::operation::Operation as _;
use coffer_core::ops::Operation as SecretsManager;
use coffer_store::{SecretChange, Store};

use crate::config::Settings;
use crate::data_dir::{self, RegionStore};

async fn open_store(settings: &Settings, region: &str) -> anyhow::Result<Arc<dyn Store>> {
    let dir = settings.data_dir.clone();
    Ok(
        match data_dir::open_region_store(settings, &dir, region, false).await? {
            RegionStore::Sqlite(store, _) => Arc::new(store),
            RegionStore::Postgres(store) => Arc::new(store),
        },
    )
}

async fn accounts(settings: &Settings) -> anyhow::Result<Vec<String>> {
    let (iam, _) = data_dir::open_iam_store(settings, &settings.data_dir, false).await?;
    let accounts = iam.accounts().await.map_err(anyhow::Error::from);
    iam.close().await;
    accounts
}

fn regions<'a>(
    settings: &'a Settings,
    region: &'a Option<String>,
) -> anyhow::Result<Vec<&'a String>> {
    match region {
        Some(r) if settings.regions.contains(r) => Ok(vec![r]),
        Some(r) => Err(anyhow!("this node does not serve {r} (--regions)")),
        None => Ok(settings.regions.iter().collect()),
    }
}

/// Every secret with a resource policy: one line `REGION ARN POLICY` each.
pub async fn list(settings: &Settings, region: Option<String>) -> anyhow::Result<String> {
    // The same lock as `remove`, so the listing is what `remove` would act on.
    let _audit = crate::audit_cmd::open(settings)?;
    let accounts = accounts(settings).await?;
    let mut out = Vec::new();
    for region in regions(settings, &region)? {
        let store = open_store(settings, region).await?;
        for account in &accounts {
            for secret in store.list_secrets(account).await? {
                if let Some(policy) = &secret.record.resource_policy {
                    out.push(format!("{region} {} {policy}", secret.record.arn));
                }
            }
        }
        store.close().await;
    }
    if out.is_empty() {
        return Ok("no secret has a resource policy".into());
    }
    Ok(out.join("\n"))
}

/// Removes the resource policy of `secret_id` (an ARN or a name) in `region`, recorded in the
/// audit log as `DeleteResourcePolicy` by the local operator.
pub async fn remove(settings: &Settings, region: &str, secret_id: &str) -> anyhow::Result<String> {
    let audit = crate::audit_cmd::open(settings)?;
    regions(settings, &Some(region.to_string()))?;
    let store = open_store(settings, region).await?;
    let result = remove_in(settings, &*store, region, secret_id).await;
    store.close().await;
    let (secret, outcome) = result?;
    let operation = SecretsManager::DeleteResourcePolicy;
    let mut record = coffer_audit::Record::new(
        SecretsManager::EVENT_SOURCE.into(),
        operation.name().into(),
        operation.read_only(),
        uuid::Uuid::new_v4().to_string(),
    );
    record.event_type = "CofferOperatorAction";
    record.aws_region = region.to_string();
    record.source_ip_address = "local".into();
    record.user_agent = format!(
        "coffer/{} resource-policy remove",
        env!("CARGO_PKG_VERSION")
    );
    record.user_identity = coffer_audit::UserIdentity {
        kind: "Operator".into(),
        principal_id: std::env::var("USER").ok(),
        ..Default::default()
    };
    record.recipient_account_id = Some(secret.account_id.clone());
    record.request_parameters = serde_json::json!({"secretId": secret_id});
    record.response_elements = serde_json::json!({"arn": secret.arn, "name": secret.name});
    audit
        .append(&record)
        .await
        .context("the policy was removed, but its audit record was not written")?;
    Ok(outcome)
}

async fn remove_in(
    settings: &Settings,
    store: &dyn Store,
    region: &str,
    secret_id: &str,
) -> anyhow::Result<(coffer_store::SecretRecord, String)> {
    let mut found = None;
    if secret_id.starts_with("arn:") {
        found = store.load_secret_by_arn(secret_id).await?;
    } else {
        for account in accounts(settings).await? {
            if let Some(s) = store.load_secret_by_name(&account, secret_id).await? {
                if found.is_some() {
                    bail!(
                        "several accounts have a secret named {secret_id} in {region}: give its ARN"
                    );
                }
                found = Some(s);
            }
        }
    }
    let Some(mut secret) = found else {
        bail!("no secret {secret_id} in {region}");
    };
    if let Err(e) = coffer_core::secret::ensure_primary(&secret) {
        bail!(
            "{} is a replica in {region}: remove the policy in its primary's Region ({})",
            secret.record.arn,
            e.message
        );
    }
    if secret.record.resource_policy.is_none() {
        return Ok((
            secret.record.clone(),
            format!(
                "{} has no resource policy (nothing changed)",
                secret.record.arn
            ),
        ));
    }
    let expected = secret.record.row_version;
    secret.record.resource_policy = None;
    secret.record.last_changed_ms = chrono::Utc::now().timestamp_millis();
    secret.record.row_version = expected + 1;
    let outbox = coffer_core::replication::sync_entries(&secret, &[]);
    let syncing: Vec<String> = outbox
        .iter()
        .filter(|e| e.kind == coffer_core::replication::KIND_SYNC)
        .map(|e| e.dest_region.clone())
        .collect();
    let syncing: Vec<&str> = syncing.iter().map(String::as_str).collect();
    if !syncing.is_empty() {
        coffer_core::replication::mark_syncing(&mut secret, &syncing, expected + 1);
    }
    store
        .commit_with(
            vec![SecretChange::Update {
                secret: secret.record.clone(),
                expected_row_version: expected,
                upsert_versions: Vec::new(),
                delete_versions: Vec::new(),
            }],
            outbox,
        )
        .await?;
    Ok((
        secret.record.clone(),
        format!("removed the resource policy of {}", secret.record.arn),
    ))
}
