//! PutUserPolicy: adds or replaces an inline policy of a user, within AWS's 2,048 characters
//! for all of a user's inline policies together.

use coffer_iam::Policy;
use coffer_store::UserPolicyRecord;

use super::{Iam, Operation, PolicyName};
use crate::query::{Params, QueryError, QueryInput, Result};

/// AWS's quota for the inline policies of one user: their documents together, whitespace
/// not counted.
const USER_POLICY_BYTES: usize = 2048;

pub struct Input {
    pub names: PolicyName,
    pub policy_document: String,
}

impl QueryInput for Input {
    fn parse(params: &Params) -> Result<Input> {
        let names = PolicyName::parse(params)?;
        let document = params.required("PolicyDocument", "policyDocument")?;
        if document.is_empty() || document.len() > 131_072 {
            return Err(QueryError::constraint(
                "",
                "policyDocument",
                "Member must have length between 1 and 131072",
            ));
        }
        Ok(Input {
            names,
            policy_document: document.to_string(),
        })
    }
}

pub async fn run(iam: &Iam<'_>, input: Input) -> Result<()> {
    let PolicyName {
        user_name,
        policy_name,
    } = input.names;
    let document = input.policy_document;
    iam.authorize(Operation::PutUserPolicy, &iam.user_arn(&user_name))?;
    Policy::parse_identity_policy(&document)
        .map_err(|e| QueryError::new(400, "MalformedPolicyDocument", e.0))?;
    let user = iam.existing_user(&user_name).await?;
    let store = &iam.principals.iam;
    let size = |d: &str| d.chars().filter(|c| !c.is_whitespace()).count();
    let others: usize = iam
        .user_policies(&user)
        .await?
        .iter()
        .filter(|p| p.policy_name != policy_name)
        .map(|p| size(&p.document))
        .sum();
    if others + size(&document) > USER_POLICY_BYTES {
        return Err(QueryError::conflict(
            "LimitExceeded",
            format!(
                "Maximum policy size of {USER_POLICY_BYTES} bytes exceeded for user {}",
                user.user_name
            ),
        ));
    }
    store
        .put_user_policy(UserPolicyRecord {
            user_arn: user.user_arn.clone(),
            policy_name,
            document,
            updated_ms: chrono::Utc::now().timestamp_millis(),
        })
        .await
        .map_err(QueryError::internal)?;
    iam.credentials.forget(&user.user_arn, None);
    Ok(())
}
