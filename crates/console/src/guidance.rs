//! What a replica's failure means and what to do about it, from the cause stored with its
//! status (`coffer_core::replication::FailureCause`, set where the failure is found: the
//! replica Region's answer or the transport), never from the words of its message.

pub use coffer_core::replication::FailureCause as Cause;

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
        self.cause == Cause::NameClash
    }

    /// The advice as the Retry dialog shows it: the person is already in it, so "choose
    /// Actions, then Retry replication" becomes what to do on this form.
    pub fn in_retry_dialog(mut self) -> Advice {
        self.remedy = self
            .remedy
            .replace(
                "Choose Actions, then Retry replication, and select",
                "Select",
            )
            .replace(
                "then retry.",
                "then choose Retry replication below without Overwrite.",
            )
            .replace("choose Retry replication", "choose Retry replication below");
        self
    }
}

/// Advice for a replica in `region` that failed for `cause`.
pub fn advise(region: &str, cause: Cause) -> Advice {
    let (reason, remedy) = match cause {
        Cause::NameClash => (
            "A secret with this name already exists there",
            format!(
                "Choose Actions, then Retry replication, and select Overwrite to replace the secret in {region} with a replica of this one. Or delete that secret in {region} first, then retry."
            ),
        ),
        Cause::NameReplicated => (
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
    fn only_a_name_clash_suggests_overwrite() {
        let a = advise("eu-west-1", Cause::NameClash);
        assert!(a.suggests_overwrite());
        assert!(a.remedy.contains("Overwrite"));
        assert!(a.remedy.contains("eu-west-1"));
        let k = advise("eu-west-1", Cause::Key);
        assert!(!k.suggests_overwrite());
        assert!(k.remedy.contains("key policy"));
        assert!(!advise("eu-west-1", Cause::NameReplicated).suggests_overwrite());
        assert!(
            advise("ap-south-1", Cause::RegionNotEnabled)
                .remedy
                .contains("Enable ap-south-1")
        );
        assert!(advise("x", Cause::Network).remedy.contains("Retry"));
        assert_eq!(advise("x", Cause::Other).reason, "Replication failed");
    }

    #[test]
    fn the_retry_dialog_does_not_send_the_person_to_the_menu_they_came_from() {
        for cause in [Cause::NameClash, Cause::Key, Cause::Network, Cause::Other] {
            let a = advise("eu-west-1", cause).in_retry_dialog();
            assert!(!a.remedy.contains("Choose Actions"), "{}", a.remedy);
        }
        assert!(
            advise("eu-west-1", Cause::NameClash)
                .in_retry_dialog()
                .remedy
                .starts_with("Select Overwrite")
        );
    }
}
