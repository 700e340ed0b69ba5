//! What a replica's failure means and what to do about it, from its `StatusMessage`.
//!
//! The messages are written by `coffer_core::replication::apply_sync` (name clash, a secret
//! already replicated, a key the replica Region cannot use) and by the replication transport
//! (network error, Region not enabled). Matching their words keeps the console free of any
//! second source of truth: an unknown message still shows, with the generic advice.

/// The kind of failure, which decides the advice and the default of the Retry dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    NameExists,
    ReplicatedElsewhere,
    Key,
    Network,
    RegionNotEnabled,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advice {
    pub cause: Cause,
    /// A short name of the reason, e.g. "A secret with this name exists".
    pub reason: &'static str,
    /// What the user should do, naming the console's own actions.
    pub remedy: String,
}

impl Advice {
    /// Whether retrying with Overwrite is the fix.
    pub fn suggests_overwrite(&self) -> bool {
        self.cause == Cause::NameExists
    }
}

pub fn classify(message: &str) -> Cause {
    let m = message.to_ascii_lowercase();
    if m.contains("already exists in region") {
        Cause::NameExists
    } else if m.contains("currently replicated") {
        Cause::ReplicatedElsewhere
    } else if m.contains("is not enabled") {
        Cause::RegionNotEnabled
    } else if m.contains("network error") || m.contains("could not reach") {
        Cause::Network
    } else if m.contains("encrypt")
        || m.contains("decrypt")
        || m.contains("kms")
        || m.contains("key '")
        || m.contains("alias ")
        || m.contains("key policy")
        || m.contains("accessdenied")
        || m.contains("not authorized")
    {
        Cause::Key
    } else {
        Cause::Other
    }
}

/// Advice for a replica in `region` whose status message is `message`.
pub fn advise(region: &str, message: &str) -> Advice {
    let cause = classify(message);
    let (reason, remedy) = match cause {
        Cause::NameExists => (
            "A secret with this name already exists there",
            format!(
                "Choose Actions, then Retry replication, and select Overwrite to replace the secret in {region} with a replica of this one. Or delete that secret in {region} first, then retry."
            ),
        ),
        Cause::ReplicatedElsewhere => (
            "The secret there belongs to another replication",
            format!(
                "The secret of this name in {region} is a primary or a replica of another secret, which Overwrite never replaces. Remove it from that replication (or delete it) in its primary Region, then choose Retry replication."
            ),
        ),
        Cause::Key => (
            "The encryption key cannot be used",
            format!(
                "Check that the key exists in {region} and that its key policy allows Secrets Manager to use it, or choose another key of {region}; then choose Retry replication."
            ),
        ),
        Cause::Network => (
            "The Region could not be reached",
            format!(
                "Check that the node serving {region} is running and reachable at the address in this node's peers. Delivery keeps retrying by itself; choose Retry replication to try again now."
            ),
        ),
        Cause::RegionNotEnabled => (
            "The Region is not enabled",
            format!(
                "Enable {region}: add it to the Regions of a node (--regions) or to the [[peers]] of this node's config file and restart it, then choose Retry replication."
            ),
        ),
        Cause::Other => (
            "Replication failed",
            "Fix the cause given in the status message, then choose Retry replication.".to_string(),
        ),
    };
    Advice {
        cause,
        reason,
        remedy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_of_the_replication_path_gets_its_remedy() {
        let cases = [
            (
                "Replication failed: Secret name db already exists in region eu-west-1.",
                Cause::NameExists,
            ),
            (
                "Replication failed: Can't overwrite secret db that is currently replicated from us-east-2.",
                Cause::ReplicatedElsewhere,
            ),
            (
                "Replication failed: Secrets Manager can't encrypt the secret value: Key 'arn:aws:kms:eu-west-1:1:key/x' does not exist",
                Cause::Key,
            ),
            (
                "Replication failed: Secrets Manager can't encrypt the secret value: Alias arn:aws:kms:eu-west-1:1:alias/nope is not found.",
                Cause::Key,
            ),
            (
                "Replication failed: network error reaching Region eu-west-1 at http://10.0.0.1:7780: connection refused",
                Cause::Network,
            ),
            (
                "Replication failed: Region ap-south-1 is not enabled in this deployment. Add it to the Regions of a node (--regions) or to the peers of this node's config file, then call ReplicateSecretToRegions again.",
                Cause::RegionNotEnabled,
            ),
            ("Something new", Cause::Other),
        ];
        for (message, cause) in cases {
            assert_eq!(classify(message), cause, "{message}");
        }
    }

    #[test]
    fn only_a_name_clash_suggests_overwrite() {
        let a = advise(
            "eu-west-1",
            "Replication failed: Secret name db already exists in region eu-west-1.",
        );
        assert!(a.suggests_overwrite());
        assert!(a.remedy.contains("Overwrite"));
        assert!(a.remedy.contains("eu-west-1"));
        let k = advise("eu-west-1", "Key 'x' does not exist");
        assert!(!k.suggests_overwrite());
        assert!(k.remedy.contains("key policy"));
        assert!(
            advise("ap-south-1", "Region ap-south-1 is not enabled")
                .remedy
                .contains("Enable ap-south-1")
        );
        assert!(advise("x", "network error").remedy.contains("Retry"));
    }
}
