//! The tables of operations: one enum per service (Secrets Manager in `ops/`, KMS in `kms/`,
//! IAM and STS, Coffer's own operations in `failover.rs`), made by [`operations!`]. A variant
//! is the operation's wire name; the table gives its IAM action and CloudTrail's `readOnly`,
//! and `FromStr` reads the name a request carries. Each service's `dispatch` matches on its
//! enum, so an operation added to a table and not dispatched does not compile.

use crate::error::{Error, ErrorCode, Result};

/// What every table of operations says about each of its operations.
pub trait Operation: Copy + std::str::FromStr + 'static {
    /// The service's IAM action prefix (`secretsmanager`, `kms`, `iam`, `sts`).
    const SERVICE: &'static str;
    /// CloudTrail's `eventSource` of the service's records (`secretsmanager.amazonaws.com`).
    const EVENT_SOURCE: &'static str;
    /// Every operation of the table, in the table's order.
    const ALL: &'static [Self];
    /// The operation's name on the wire (`X-Amz-Target` suffix or Query `Action`).
    fn name(self) -> &'static str;
    /// The IAM action that authorizes it (`secretsmanager:GetSecretValue`).
    fn action(self) -> &'static str;
    /// CloudTrail's `readOnly`: the call changes nothing (reads, KMS's cryptographic
    /// operations, STS's credential calls).
    fn read_only(self) -> bool;
}

/// The name a request carried is none of the table's operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownOperation;

/// One table of operations: `enum Name in "service", "event source" { Variant: read, }`, each
/// operation `read` (CloudTrail's `readOnly`) or `change`. The variant's name is the wire name.
macro_rules! operations {
    (@read_only read) => { true };
    (@read_only change) => { false };
    (
        $(#[$meta:meta])*
        pub enum $table:ident in $service:literal, $source:literal {
            $( $(#[$vmeta:meta])* $op:ident: $kind:ident, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $table {
            $( $(#[$vmeta])* $op, )*
        }

        impl $crate::operation::Operation for $table {
            const SERVICE: &'static str = $service;
            const EVENT_SOURCE: &'static str = $source;
            const ALL: &'static [$table] = &[$($table::$op),*];

            fn name(self) -> &'static str {
                match self {
                    $($table::$op => stringify!($op),)*
                }
            }

            fn action(self) -> &'static str {
                match self {
                    $($table::$op => concat!($service, ":", stringify!($op)),)*
                }
            }

            fn read_only(self) -> bool {
                match self {
                    $($table::$op => $crate::operation::operations!(@read_only $kind),)*
                }
            }
        }

        impl std::str::FromStr for $table {
            type Err = $crate::operation::UnknownOperation;

            fn from_str(name: &str) -> std::result::Result<$table, Self::Err> {
                match name {
                    $(stringify!($op) => Ok($table::$op),)*
                    _ => Err($crate::operation::UnknownOperation),
                }
            }
        }

        impl std::fmt::Display for $table {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str($crate::operation::Operation::name(*self))
            }
        }
    };
}

pub(crate) use operations;

/// The operation of `T`'s table that `name` names, or UnknownOperationException with the
/// service's own words for a name it does not have.
pub(crate) fn named<T: Operation>(name: &str, unknown: impl FnOnce() -> String) -> Result<T> {
    name.parse::<T>()
        .map_err(|_| Error::new(ErrorCode::UnknownOperation, unknown()))
}

/// CloudTrail's `readOnly` of the operation `name` of `T`'s table; `false` for a name the
/// table does not have (a failed call that changed nothing, recorded as a change so its
/// record keeps every detail).
pub fn read_only<T: Operation>(name: &str) -> bool {
    name.parse::<T>().is_ok_and(|op| op.read_only())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kms::Operation as Kms;
    use crate::ops::Operation as SecretsManager;

    /// The rule the audit log used before the tables: CloudTrail's `readOnly` guessed from the
    /// name's prefix. Every operation of every table keeps the flag it gave.
    fn name_rule(operation: &str) -> bool {
        const PREFIXES: &[&str] = &[
            "Get",
            "List",
            "Describe",
            "BatchGet",
            "Validate",
            "Encrypt",
            "Decrypt",
            "ReEncrypt",
            "GenerateDataKey",
            "GenerateRandom",
            "GenerateMac",
            "VerifyMac",
            "Sign",
            "Verify",
            "AssumeRole",
        ];
        PREFIXES.iter().any(|p| operation.starts_with(p))
    }

    fn agree_with_the_name_rule<T: Operation + std::fmt::Debug>() {
        for op in T::ALL {
            assert_eq!(op.read_only(), name_rule(op.name()), "{op:?}");
            assert_eq!(
                op.name().parse::<T>().ok().map(|o| o.name()),
                Some(op.name())
            );
            assert_eq!(op.action(), format!("{}:{}", T::SERVICE, op.name()));
        }
    }

    #[test]
    fn read_only_flags_are_the_ones_the_name_rule_gave() {
        agree_with_the_name_rule::<SecretsManager>();
        agree_with_the_name_rule::<Kms>();
        agree_with_the_name_rule::<crate::failover::Operation>();
        agree_with_the_name_rule::<crate::iam::Operation>();
        agree_with_the_name_rule::<crate::sts::Operation>();
    }

    #[test]
    fn read_only_follows_cloudtrail() {
        use crate::iam::Operation as Iam;
        assert!(SecretsManager::GetSecretValue.read_only());
        assert!(SecretsManager::BatchGetSecretValue.read_only());
        assert!(SecretsManager::ListSecrets.read_only());
        assert!(Kms::Decrypt.read_only());
        assert!(SecretsManager::GetRandomPassword.read_only());
        assert!(!SecretsManager::CreateSecret.read_only());
        assert!(!SecretsManager::PutSecretValue.read_only());
        assert!(!Iam::CreateAccessKey.read_only());
        assert!(!Kms::ScheduleKeyDeletion.read_only());
        assert!(!read_only::<SecretsManager>("GetNothing"));
    }

    #[test]
    fn tables_list_every_operation_once() {
        assert_eq!(SecretsManager::ALL.len(), 23);
        assert_eq!(Kms::ALL.len(), 28);
        assert_eq!(crate::iam::Operation::ALL.len(), 15);
        assert!("GetSecretValue".parse::<Kms>().is_err());
        assert!("getsecretvalue".parse::<SecretsManager>().is_err());
        assert_eq!(
            SecretsManager::GetSecretValue.action(),
            "secretsmanager:GetSecretValue"
        );
        assert_eq!(Kms::Decrypt.action(), "kms:Decrypt");
        assert_eq!(crate::iam::Operation::CreateUser.action(), "iam:CreateUser");
        assert_eq!(
            crate::sts::Operation::GetCallerIdentity.action(),
            "sts:GetCallerIdentity"
        );
    }
}
