//! The STS subset Coffer serves (Query protocol, signing name `sts`, version 2011-06-15): one
//! file per operation, as `iam/`.

use crate::iam::{Iam, call};
use crate::operation::operations;
use crate::query::{Node, Params, Result};

pub mod get_caller_identity;

operations! {
    /// Every STS operation Coffer serves, each `sts/<snake_case_name>.rs`.
    pub enum Operation in "sts", "sts.amazonaws.com" {
        GetCallerIdentity: read,
    }
}

/// Runs STS `operation` with the request's members.
pub async fn dispatch(
    iam: &Iam<'_>,
    operation: Operation,
    params: &Params,
) -> Result<Option<Vec<Node>>> {
    match operation {
        Operation::GetCallerIdentity => call(get_caller_identity::run, iam, params).await,
    }
}
