//! GetRandomPassword (spec §4.14).

use coffer_kms::password::{PasswordError, PasswordRules, generate};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::Operation;
use crate::authorize::{Access, Target, authorize};
use crate::error::{Error, Result};
use crate::operation::Operation as _;
use crate::region::{Caller, RegionService};
use crate::validate::Violations;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    pub password_length: Option<i64>,
    pub exclude_characters: Option<String>,
    pub exclude_numbers: Option<bool>,
    pub exclude_punctuation: Option<bool>,
    pub exclude_uppercase: Option<bool>,
    pub exclude_lowercase: Option<bool>,
    pub include_space: Option<bool>,
    pub require_each_included_type: Option<bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    pub random_password: Zeroizing<String>,
}

pub async fn run(region: &RegionService, caller: &Caller, input: Input) -> Result<Output> {
    let mut v = Violations::new();
    v.range(input.password_length, "passwordLength", 1, 4096);
    v.length(
        input.exclude_characters.as_deref(),
        "excludeCharacters",
        0,
        4096,
    );
    v.finish()?;
    authorize(
        region,
        caller,
        &Access::new(Operation::GetRandomPassword.action()),
        Target::Everything,
    )?;
    let rules = PasswordRules {
        length: input.password_length.unwrap_or(32) as u64,
        exclude_characters: input.exclude_characters.unwrap_or_default(),
        exclude_numbers: input.exclude_numbers.unwrap_or(false),
        exclude_punctuation: input.exclude_punctuation.unwrap_or(false),
        exclude_uppercase: input.exclude_uppercase.unwrap_or(false),
        exclude_lowercase: input.exclude_lowercase.unwrap_or(false),
        include_space: input.include_space.unwrap_or(false),
        require_each_included_type: input.require_each_included_type.unwrap_or(true),
    };
    let password = generate(&rules).map_err(|e| match e {
        PasswordError::InvalidLength { .. }
        | PasswordError::NoCharacterTypes
        | PasswordError::TooShort { .. } => Error::invalid_parameter(e.to_string()),
    })?;
    Ok(Output {
        random_password: password,
    })
}
