//! Rotation without Lambda: the four-step protocol (`createSecret`, `setSecret`, `testSecret`,
//! `finishSecret`) run by Coffer against a *rotator* named by the secret's `RotationLambdaARN`.
//!
//! - Built-in rotators answer to well-known function names in any account and Region:
//!   `arn:aws:lambda:REGION:ACCOUNT:function:coffer-password` (see [`password`]) and the
//!   PostgreSQL rotators (see [`postgres`]).
//! - Configured rotators (`[[rotators]]` in the config file) of kind `http` receive the same
//!   event JSON a Lambda function receives, one POST per step (see [`http`]), and call back
//!   through the ordinary API with their own credentials.
//!
//! The schedule, the AWSPENDING version and the retry bookkeeping live in
//! `coffer_core::rotation`; due runs are outbox rows claimed under a lease by the replication
//! worker, which hands them to [`Runner`].

pub mod api;
pub mod error;
pub mod http;
pub mod password;
pub mod postgres;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use coffer_core::RegionService;
use coffer_core::rotation::{self, Begin, RotationFunctions, RotationRunner, RunOutcome};
use coffer_store::OutboxRow;
use serde::Serialize;

pub use api::SecretsApi;
pub use error::{Error, Result};

/// One invocation of a rotation function: the event a Lambda receives.
#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "PascalCase")]
pub struct Event {
    pub step: String,
    pub secret_id: String,
    pub client_request_token: String,
    pub rotation_token: String,
}

pub const STEPS: [&str; 4] = ["createSecret", "setSecret", "testSecret", "finishSecret"];

#[async_trait]
pub trait Rotator: Send + Sync {
    /// Runs one step; `Err` says why, for logs and DescribeSecret-free diagnostics (never a
    /// secret value).
    async fn invoke(&self, api: &SecretsApi<'_>, event: &Event) -> Result<()>;
}

/// The function name of `arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`.
pub fn function_name(lambda_arn: &str) -> Option<&str> {
    let rest = lambda_arn.split_once(":function:")?.1;
    let name = rest.split(':').next()?;
    (lambda_arn.starts_with("arn:") && !name.is_empty()).then_some(name)
}

/// Every rotator this node can call.
#[derive(Clone, Default)]
pub struct Registry {
    rotators: HashMap<String, Arc<dyn Rotator>>,
}

impl Registry {
    /// The built-in rotators plus `configured` (function name -> rotator).
    pub fn new(configured: HashMap<String, Arc<dyn Rotator>>) -> Registry {
        let mut rotators: HashMap<String, Arc<dyn Rotator>> = HashMap::new();
        rotators.insert(
            password::FUNCTION.into(),
            Arc::new(password::PasswordRotator),
        );
        for (name, r) in postgres::builtins() {
            rotators.insert(name, r);
        }
        rotators.extend(configured);
        Registry { rotators }
    }

    pub fn get(&self, lambda_arn: &str) -> Option<Arc<dyn Rotator>> {
        self.rotators.get(function_name(lambda_arn)?).cloned()
    }
}

impl RotationFunctions for Registry {
    fn exists(&self, lambda_arn: &str) -> bool {
        self.get(lambda_arn).is_some()
    }
}

/// Runs due rotations: the four steps in order, then the bookkeeping of success or failure.
pub struct Runner {
    pub registry: Registry,
    /// This node's id (the same as its outbox lease owner), for the rotation's run lease.
    pub node_id: String,
}

impl Runner {
    pub fn new(registry: Registry, node_id: impl Into<String>) -> Runner {
        Runner {
            registry,
            node_id: node_id.into(),
        }
    }
}

#[async_trait]
impl RotationRunner for Runner {
    async fn run(&self, region: &RegionService, row: &OutboxRow) -> RunOutcome {
        let arn = row.entry.secret_arn.as_str();
        let generation = match coffer_core::outbox::OutboxMessage::from_entry(&row.entry) {
            Ok(coffer_core::outbox::OutboxMessage::Rotate { generation }) => generation,
            other => {
                tracing::error!(arn, row = ?other.err(), "Dropping an unreadable rotation row");
                return RunOutcome::Done;
            }
        };
        let (token, lambda_arn) =
            match rotation::begin(region, arn, generation, &self.node_id).await {
                Ok(Begin::Run { token, lambda_arn }) => (token, lambda_arn),
                Ok(Begin::Later { at_ms }) => return RunOutcome::Later { at_ms },
                Ok(Begin::Nothing) => return RunOutcome::Done,
                Err(e) => {
                    return RunOutcome::Retry {
                        error: Error::Api(e).report(),
                    };
                }
            };
        let outcome = self.steps(region, arn, &token, &lambda_arn).await;
        let result = match outcome {
            Ok(()) => rotation::complete(region, arn, &token)
                .await
                .map_err(Error::Api),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                tracing::info!(region = %region.region, arn, version = %token, "Rotation finished");
                RunOutcome::Done
            }
            Err(error) => {
                let error = error.report();
                if let Err(e) = rotation::fail(region, arn, &error).await {
                    let e = Error::Api(e).report();
                    tracing::warn!(arn, error = %e, "The rotation's failure could not be recorded");
                }
                RunOutcome::Retry { error }
            }
        }
    }
}

impl Runner {
    async fn steps(
        &self,
        region: &RegionService,
        arn: &str,
        token: &str,
        lambda_arn: &str,
    ) -> Result<()> {
        let rotator = self.registry.get(lambda_arn).ok_or_else(|| {
            Error::Refused(format!(
                "rotation function {lambda_arn} is not configured on this node"
            ))
        })?;
        let api = SecretsApi::for_secret(region, arn);
        let rotation_token = uuid::Uuid::new_v4().to_string();
        for step in STEPS {
            let event = Event {
                step: step.to_string(),
                secret_id: arn.to_string(),
                client_request_token: token.to_string(),
                rotation_token: rotation_token.clone(),
            };
            rotator
                .invoke(&api, &event)
                .await
                .map_err(|e| Error::Step {
                    step,
                    source: Box::new(e),
                })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names_come_from_lambda_arns() {
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:123456789012:function:coffer-password"),
            Some("coffer-password")
        );
        assert_eq!(
            function_name("arn:aws:lambda:eu-west-1:123456789012:function:my-fn:PROD"),
            Some("my-fn")
        );
        assert_eq!(function_name("coffer-password"), None);
    }
}
