//! The search terms the SQLite writer last committed for recently written secrets, so that a
//! change which leaves a secret's terms as they are (a new value, a replica's status, a
//! rotation's bookkeeping: most writes) neither reads nor writes `secret_terms`.
//!
//! Only the group-commit writer thread changes `secret_terms` while the store is open (the
//! migration backfill runs before it starts, a restore is offline), so what it committed is
//! what the table holds. The memo follows the transaction exactly: a job's entries count only
//! once its savepoint is released, a batch's only once its COMMIT returned; a batch that fails
//! as a whole forgets everything (SQLite may have rolled back more than the batch's own
//! statements). A secret the memo does not know, or has evicted, is synced as before.

use std::collections::{BTreeSet, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};

/// Secrets remembered at most: about 100 bytes each, so a few MB however many secrets a Region
/// holds; the recently written ones are the ones written again.
const CAPACITY: usize = 32_768;

/// A secret's search terms in 128 bits (equal sets, equal fingerprints; unequal sets collide
/// with a probability of about 2^-128).
pub(super) type Fingerprint = u128;

pub(super) fn fingerprint(terms: &BTreeSet<(&'static str, String)>) -> Fingerprint {
    let half = |seed: u8| {
        let mut h = DefaultHasher::new();
        seed.hash(&mut h);
        terms.hash(&mut h);
        h.finish()
    };
    (u128::from(half(1)) << 64) | u128::from(half(2))
}

/// `None`: the secret has no terms row any more (it was deleted).
type Entry = Option<Fingerprint>;

pub(super) struct TermsMemo {
    committed: quick_cache::unsync::Cache<String, Entry>,
    /// What the batch's jobs whose savepoints were released wrote.
    batch: HashMap<String, Entry>,
    /// What the current job wrote.
    job: HashMap<String, Entry>,
}

impl TermsMemo {
    pub fn new() -> TermsMemo {
        TermsMemo {
            committed: quick_cache::unsync::Cache::new(CAPACITY),
            batch: HashMap::new(),
            job: HashMap::new(),
        }
    }

    /// Whether `arn`'s terms in the transaction so far are known to be those of `fingerprint`.
    pub fn holds(&self, arn: &str, fingerprint: Fingerprint) -> bool {
        let known = self
            .job
            .get(arn)
            .or_else(|| self.batch.get(arn))
            .or_else(|| self.committed.get(arn));
        known == Some(&Some(fingerprint))
    }

    /// The current job made `arn`'s terms those of `entry`.
    pub fn wrote(&mut self, arn: &str, entry: Entry) {
        self.job.insert(arn.to_string(), entry);
    }

    /// The current job is over: released (`kept`) or rolled back to its savepoint.
    pub fn job_done(&mut self, kept: bool) {
        if kept {
            self.batch.extend(self.job.drain());
        } else {
            self.job.clear();
        }
    }

    /// The batch is over: committed, or failed as a whole.
    pub fn batch_done(&mut self, committed: bool) {
        self.job.clear();
        if committed {
            for (arn, entry) in self.batch.drain() {
                self.committed.insert(arn, entry);
            }
        } else {
            self.batch.clear();
            self.committed.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(term: &str) -> Fingerprint {
        fingerprint(&BTreeSet::from([("d", term.to_string())]))
    }

    #[test]
    fn only_what_was_committed_counts() {
        let mut memo = TermsMemo::new();
        memo.wrote("a", Some(fp("x")));
        assert!(memo.holds("a", fp("x")), "seen by the job itself");
        memo.job_done(false);
        assert!(!memo.holds("a", fp("x")), "rolled back to the savepoint");
        memo.wrote("a", Some(fp("y")));
        memo.job_done(true);
        memo.batch_done(true);
        assert!(memo.holds("a", fp("y")));
        assert!(!memo.holds("a", fp("x")));
        memo.wrote("a", None);
        memo.job_done(true);
        assert!(!memo.holds("a", fp("y")), "deleted later in the batch");
        memo.batch_done(false);
        assert!(
            !memo.holds("a", fp("y")),
            "a failed batch forgets everything"
        );
        assert_ne!(fp("x"), fp("y"));
    }
}
