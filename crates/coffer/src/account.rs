//! `coffer account create`: another account in the same deployment, with its administrator
//! (user `admin`, AdministratorAccess) and one access key, printed once as an AWS CLI profile.
//!
//! It writes to the IAM store the server uses (the data directory's `iam.db`, or the
//! configured PostgreSQL `iam_store`), so it may run while the server runs: servers look up
//! an access key they have not seen in the store on its first request (see
//! `coffer_api::principals`), and the new key works at once.

use std::path::PathBuf;

use anyhow::bail;
use coffer_kms::RootKey;

use crate::config::{ServeArgs, Settings};
use crate::data_dir;

pub async fn create(
    data_dir: Option<PathBuf>,
    config: Option<PathBuf>,
    account_id: Option<String>,
) -> anyhow::Result<()> {
    let account_id = account_id.unwrap_or_else(data_dir::new_account_id);
    let settings = Settings::resolve(ServeArgs {
        listen: None,
        data_dir,
        regions: None,
        // Validated (12 digits) like the server's own account id.
        account_id: Some(account_id.clone()),
        config,
        replication_failure_timeout_secs: None,
        tls: None,
        tls_cert: None,
        tls_key: None,
        tls_names: None,
    })?;
    let dir = settings.data_dir.clone();
    let key_path = dir.join("keys").join("deployment.key");
    if !key_path.exists() {
        bail!(
            "{} does not exist: start `coffer serve` on this data directory once first",
            key_path.display()
        );
    }
    let (iam, existed) =
        data_dir::open_iam_store(&settings, &dir, settings.migrate_on_start).await?;
    if !existed {
        iam.close().await;
        bail!(
            "{} holds no deployment yet: start `coffer serve` on it once first",
            dir.display()
        );
    }
    let key = RootKey::load(&key_path)?;
    let created = data_dir::create_account(&*iam, &key, &account_id, None).await;
    iam.close().await;
    let (access_key_id, secret) = created?;
    println!(
        "[{account_id}]\naws_access_key_id = {access_key_id}\naws_secret_access_key = {}",
        secret.as_str()
    );
    eprintln!(
        "created account {account_id} with user admin; the lines above are an AWS CLI profile \
         for it (append them to aws/credentials and use --profile {account_id}); the secret \
         access key is not shown again"
    );
    Ok(())
}
