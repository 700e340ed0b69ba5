//! The STS subset Coffer serves (Query protocol, signing name `sts`, version 2011-06-15).

use crate::operation::operations;

operations! {
    /// Every STS operation Coffer serves.
    pub enum Operation in "sts", "sts.amazonaws.com" {
        GetCallerIdentity: read,
    }
}
