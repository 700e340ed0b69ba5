//! The IAM subset Coffer serves (Query protocol, signing name `iam`, version 2010-05-08).

use crate::operation::operations;

operations! {
    /// Every IAM operation Coffer serves.
    pub enum Operation in "iam", "iam.amazonaws.com" {
        CreateUser: change,
        GetUser: read,
        DeleteUser: change,
        ListUsers: read,
        CreateAccessKey: change,
        ListAccessKeys: read,
        UpdateAccessKey: change,
        DeleteAccessKey: change,
        PutUserPolicy: change,
        GetUserPolicy: read,
        DeleteUserPolicy: change,
        ListUserPolicies: read,
        TagUser: change,
        UntagUser: change,
        ListUserTags: read,
    }
}
