//! PutSecretValue (spec §4.5).

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::Operation;
use crate::authorize::Access;
use crate::error::{Error, Result};
use crate::input::{Blob, check_value, take_value};
use crate::operation::Operation as _;
use crate::region::{Caller, RegionService};
use crate::secret::{
    NewVersion, add_version, check_secret_id, ensure_not_deleted, ensure_primary, load,
    version_by_id, with_retry,
};
use crate::validate::Violations;

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub secret_id: Option<String>,
    pub client_request_token: Option<String>,
    pub secret_string: Option<Zeroizing<String>>,
    pub secret_binary: Option<Blob>,
    pub version_stages: Option<Vec<String>>,
    pub rotation_token: Option<Zeroizing<String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
    pub version_id: String,
    pub version_stages: Vec<String>,
}

/// Checks a `VersionStages` list: 1–20 labels of 1–256 characters.
pub fn check_stages(v: &mut Violations, stages: &Option<Vec<String>>) {
    if let Some(stages) = stages {
        v.count_strings(Some(stages), "versionStages", 1, 20);
        for (i, s) in stages.iter().enumerate() {
            v.length(Some(s), &format!("versionStages.{}.member", i + 1), 1, 256);
        }
    }
}

pub async fn run(region: &RegionService, caller: &Caller, input: Input) -> Result<Output> {
    let mut v = Violations::new();
    check_secret_id(&mut v, &input.secret_id, "secretId");
    check_value(
        &mut v,
        &input.client_request_token,
        &input.secret_string,
        &input.secret_binary,
    );
    check_stages(&mut v, &input.version_stages);
    v.length_sensitive(
        input.rotation_token.as_ref().map(|t| t.as_str()),
        "rotationToken",
        36,
        256,
    );
    v.finish()?;
    // [S] checked before the secret is looked up.
    let Some(token) = input.client_request_token else {
        return Err(Error::missing_token());
    };
    let value = take_value(input.secret_string, input.secret_binary)?
        // [E] LocalStack's wording; AWS's is not recorded.
        .ok_or_else(|| {
            Error::invalid_request("You must provide either SecretString or SecretBinary.")
        })?;
    let secret_id = input.secret_id.unwrap_or_default();
    let stages = input.version_stages;
    let secret = with_retry(|| async {
        let secret = load(
            region,
            caller,
            &secret_id,
            &Access::new(Operation::PutSecretValue.action()),
        )
        .await?;
        ensure_primary(&secret)?;
        ensure_not_deleted(&secret)?;
        Ok(
            match add_version(region, caller, secret, &token, &value, stages.as_deref()).await? {
                NewVersion::Replay(s) | NewVersion::Added(s) => s,
            },
        )
    })
    .await?;
    let version_stages = version_by_id(&secret, &token)
        .map(|v| v.stages.clone())
        .unwrap_or_default();
    Ok(Output {
        arn: secret.record.arn,
        name: secret.record.name,
        version_id: token,
        version_stages,
    })
}
