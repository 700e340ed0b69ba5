//! The ordinary Secrets Manager API, called in-process by built-in rotators on behalf of the
//! secret's account (the same operations a Lambda rotation function calls).

use coffer_core::ops::{
    describe_secret, get_random_password, get_secret_value, put_secret_value,
    update_secret_version_stage,
};
use coffer_core::secret::{AWSCURRENT, AWSPENDING};
use coffer_core::{Caller, RegionService};
use zeroize::Zeroizing;

use crate::{Error, Result};

pub struct SecretsApi<'a> {
    pub region: &'a RegionService,
    pub caller: Caller,
}

impl<'a> SecretsApi<'a> {
    /// Acts for the account that owns `arn`.
    pub fn for_secret(region: &'a RegionService, arn: &str) -> SecretsApi<'a> {
        let account = arn.split(':').nth(4).unwrap_or_default().to_string();
        SecretsApi {
            region,
            caller: Caller::administrator(
                &account,
                &format!("arn:aws:iam::{account}:role/coffer-rotation"),
            ),
        }
    }

    pub async fn describe(&self, secret_id: &str) -> Result<describe_secret::Output> {
        describe_secret::run(
            self.region,
            &self.caller,
            describe_secret::Input {
                secret_id: Some(secret_id.into()),
            },
        )
        .await
        .map_err(Error::Api)
    }

    /// The string value of a version, `Ok(None)` when it has no value yet.
    pub async fn value(
        &self,
        secret_id: &str,
        version_id: Option<&str>,
        stage: Option<&str>,
    ) -> Result<Option<Zeroizing<String>>> {
        match get_secret_value::run(
            self.region,
            &self.caller,
            get_secret_value::Input {
                secret_id: Some(secret_id.into()),
                version_id: version_id.map(Into::into),
                version_stage: stage.map(Into::into),
            },
        )
        .await
        {
            Ok(out) => out.secret_string.map(Some).ok_or_else(|| {
                Error::Refused(
                    "the secret value is binary; this rotator rotates string secrets".into(),
                )
            }),
            Err(e) if e.code == coffer_core::ErrorCode::ResourceNotFound => Ok(None),
            Err(e) => Err(Error::Api(e)),
        }
    }

    pub async fn current_value(&self, secret_id: &str) -> Result<Zeroizing<String>> {
        self.value(secret_id, None, Some(AWSCURRENT))
            .await?
            .ok_or_else(|| Error::Refused("the secret has no AWSCURRENT value to rotate".into()))
    }

    /// Stores the new value in the AWSPENDING version `token` (filling the placeholder).
    pub async fn put_pending(
        &self,
        secret_id: &str,
        token: &str,
        value: Zeroizing<String>,
    ) -> Result<()> {
        put_secret_value::run(
            self.region,
            &self.caller,
            put_secret_value::Input {
                secret_id: Some(secret_id.into()),
                client_request_token: Some(token.into()),
                secret_string: Some(value),
                secret_binary: None,
                version_stages: Some(vec![AWSPENDING.to_string()]),
                rotation_token: None,
            },
        )
        .await
        .map(|_| ())
        .map_err(Error::Api)
    }

    /// finishSecret: moves AWSCURRENT to `token` (no-op when it is already there).
    pub async fn finish(&self, secret_id: &str, token: &str) -> Result<()> {
        let d = self.describe(secret_id).await?;
        let current = d
            .version_ids_to_stages
            .iter()
            .flatten()
            .find(|(_, stages)| stages.iter().any(|s| s == AWSCURRENT))
            .map(|(id, _)| id.clone());
        if current.as_deref() == Some(token) {
            return Ok(());
        }
        update_secret_version_stage::run(
            self.region,
            &self.caller,
            update_secret_version_stage::Input {
                secret_id: Some(secret_id.into()),
                version_stage: Some(AWSCURRENT.into()),
                remove_from_version_id: current,
                move_to_version_id: Some(token.into()),
            },
        )
        .await
        .map(|_| ())
        .map_err(Error::Api)
    }

    /// Checks what every step of AWS's template checks first: the token is the AWSPENDING
    /// version of this secret.
    pub async fn check_pending(&self, secret_id: &str, token: &str) -> Result<bool> {
        let d = self.describe(secret_id).await?;
        let stages = d
            .version_ids_to_stages
            .as_ref()
            .and_then(|m| m.get(token))
            .ok_or_else(|| {
                Error::Refused(format!("version {token} is not a version of the secret"))
            })?;
        if stages.iter().any(|s| s == AWSCURRENT) {
            return Ok(false);
        }
        if !stages.iter().any(|s| s == AWSPENDING) {
            return Err(Error::Refused(format!(
                "version {token} is not set as AWSPENDING for rotation"
            )));
        }
        Ok(true)
    }

    pub async fn random_password(
        &self,
        input: get_random_password::Input,
    ) -> Result<Zeroizing<String>> {
        get_random_password::run(self.region, &self.caller, input)
            .await
            .map(|o| o.random_password)
            .map_err(Error::Api)
    }
}
