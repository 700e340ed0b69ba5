//! Reads' LastAccessedDate, written behind the reads.
//!
//! The first read of a secret each day records the day on the secret and the version read
//! ([`Store::record_access`]). Waiting for that write made a day's first reads a quarter as
//! fast as later ones on a large Region: every commit, however small, makes each SQLite reader
//! connection drop its whole page cache (a reader sees that the database changed, not what),
//! so with thousands of first reads a second the point reads re-read their B-trees from the
//! OS on every call.
//!
//! Here the days are kept in memory first and written by one flush for all the reads of the
//! last [`FLUSH_DELAY`], in one transaction ([`Store::record_accesses`]). Until a flush has
//! committed them, every secret the cache hands out carries the days recorded for it (the
//! overlay), so this node reads its own reads at once: DescribeSecret right after the first
//! GetSecretValue of the day shows the day, as on AWS. What reads the store without the cache
//! waits for the flush first: ListSecrets (its LastAccessedDate, its sort by it) and
//! [`Store::list_secrets`].
//!
//! A replica's first read of the day also tells its primary (an `access` outbox row, for the
//! primary's `ReplicationStatus[].LastAccessedDate`): that row is written by the same flush,
//! so the replication worker finds it at its next poll after the flush.
//!
//! Durability is the same as before in kind: the access-day write never had its own fsync (a
//! power loss could lose the last days); now a process killed within [`FLUSH_DELAY`] of a
//! first read also loses that day. The next read of the secret records it again. A graceful
//! stop ([`Store::close`]) flushes first.
//!
//! The overlay holds an entry per secret read for the first time today and not yet flushed, at
//! most [`MAX_PENDING`]: when reads come faster than the writer records days, a read past that
//! bound writes its own day, as every read did before, and waits for it. A failed flush keeps
//! its entries and tries again after [`RETRY_DELAY`]; reads meanwhile fill the overlay and
//! then write their days themselves (and fail as the store fails).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::{OutboxEntry, Result, Secret, Store};

/// How long recorded days wait to share a flush: at thousands of first reads a second, about
/// ten commits a second instead of one per group of concurrent reads.
pub(crate) const FLUSH_DELAY: Duration = Duration::from_millis(100);

/// How long a failed flush waits before it tries again.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// The most secrets the overlay holds. The writer records a few thousand days a second on a
/// small machine (each rewrites about four random pages: the secret's row, its index entry by
/// access day, the version's row); reads can come faster. Past this bound a read writes its
/// day itself, as before the overlay, so reads slow to the writer's pace instead of the
/// overlay growing without bound (measured without it: 65,000 secrets waiting and 680 MB of
/// RSS after 30 s of first reads).
const MAX_PENDING: usize = 8_192;

/// The most secrets one flush transaction writes: each takes the writer about 0.1 ms, so
/// writes queued behind a flush wait tens of milliseconds at most.
const FLUSH_MAX: usize = 256;

/// The days recorded for one secret and not yet flushed.
#[derive(Clone, Debug, PartialEq)]
struct Days {
    /// The secret's LastAccessedDate: the latest day recorded.
    secret: i64,
    /// Each version read: `(version id, day)`.
    versions: Vec<(String, i64)>,
    /// The outbox row that tells another Region of the read (a replica's first read of the day
    /// tells its primary), written with the days.
    tell: Option<OutboxEntry>,
}

#[derive(Default)]
struct Pending {
    by_arn: HashMap<String, Days>,
    /// Counts the flushes that removed entries from the overlay (see [`AccessDays::overlay_since`]).
    epoch: u64,
}

/// The access days recorded and not yet written, and their flush.
pub(crate) struct AccessDays {
    inner: Arc<dyn Store>,
    pending: Mutex<Pending>,
    /// How many secrets `pending` holds: a read finds an empty overlay without the lock.
    len: AtomicUsize,
    /// A flush task is scheduled and has not yet begun.
    scheduled: AtomicBool,
    /// One flush at a time; a lister waits here for the flush in progress.
    flushing: tokio::sync::Mutex<()>,
    /// [`FLUSH_DELAY`], but for tests.
    delay: Duration,
    /// [`MAX_PENDING`], but for tests.
    max_pending: usize,
}

impl AccessDays {
    /// Days recorded are flushed `delay` later ([`FLUSH_DELAY`] but in tests).
    pub(crate) fn new(inner: Arc<dyn Store>, delay: Duration) -> AccessDays {
        AccessDays {
            inner,
            pending: Mutex::default(),
            len: AtomicUsize::new(0),
            scheduled: AtomicBool::new(false),
            flushing: tokio::sync::Mutex::new(()),
            delay,
            max_pending: MAX_PENDING,
        }
    }

    /// At most `max_pending` secrets wait in the overlay (tests).
    #[cfg(test)]
    pub(crate) fn with_max_pending(mut self, max_pending: usize) -> AccessDays {
        self.max_pending = max_pending;
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().expect("access days lock")
    }

    /// Records a read of `version_id` of `arn` on `day` (and the outbox row that tells another
    /// Region of it) and schedules its flush; `false` (nothing recorded) when the overlay is
    /// full: the caller writes the day itself.
    pub(crate) fn record(
        self: &Arc<Self>,
        arn: &str,
        version_id: &str,
        day: i64,
        tell: &Option<OutboxEntry>,
    ) -> bool {
        {
            let mut pending = self.lock();
            if pending.by_arn.len() >= self.max_pending && !pending.by_arn.contains_key(arn) {
                return false;
            }
            let days = pending.by_arn.entry(arn.to_string()).or_insert(Days {
                secret: day,
                versions: Vec::new(),
                tell: None,
            });
            if tell.is_some() {
                days.tell.clone_from(tell);
            }
            days.secret = days.secret.max(day);
            match days.versions.iter_mut().find(|(v, _)| v == version_id) {
                Some((_, d)) => *d = day,
                None => days.versions.push((version_id.to_string(), day)),
            }
            self.len.store(pending.by_arn.len(), Ordering::Release);
        }
        self.schedule(self.delay);
        true
    }

    /// Starts a flush task after `delay` unless one is already waiting.
    fn schedule(self: &Arc<Self>, delay: Duration) {
        if self.scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        let days = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            // Days recorded from here on schedule another flush.
            days.scheduled.store(false, Ordering::Release);
            if let Err(e) = days.flush().await {
                tracing::warn!(
                    error = %e,
                    "could not write the LastAccessedDate of recent reads; trying again"
                );
                days.schedule(RETRY_DELAY);
            }
        });
    }

    /// Whether days are waiting to be flushed.
    pub(crate) fn any(&self) -> bool {
        self.len.load(Ordering::Acquire) > 0
    }

    /// The overlay's epoch, taken before a read of the store.
    pub(crate) fn epoch(&self) -> u64 {
        self.lock().epoch
    }

    /// Sets on `secret` the days recorded for it and not yet flushed.
    pub(crate) fn overlay(&self, secret: &mut Secret) {
        if self.any() {
            apply(&self.lock(), secret);
        }
    }

    /// [`AccessDays::overlay`] for a secret read from the store after [`AccessDays::epoch`]
    /// returned `epoch`; `false` (and nothing set) if a flush removed entries since: the read
    /// may have seen the store before that flush's commit and the overlay after it, so it
    /// lacks those days and must read again.
    pub(crate) fn overlay_since(&self, secret: &mut Secret, epoch: u64) -> bool {
        let pending = self.lock();
        if pending.epoch != epoch {
            return false;
        }
        apply(&pending, secret);
        true
    }

    /// Writes every day recorded so far, [`FLUSH_MAX`] secrets a transaction, leaving each
    /// written one out of the overlay (unless recorded again meanwhile). Waits for a flush in
    /// progress first.
    pub(crate) async fn flush(&self) -> Result<()> {
        let _one = self.flushing.lock().await;
        let arns: Vec<String> = self.lock().by_arn.keys().cloned().collect();
        for chunk in arns.chunks(FLUSH_MAX) {
            self.write(chunk).await?;
        }
        Ok(())
    }

    /// Writes the days of `arns` in one transaction.
    async fn write(&self, arns: &[String]) -> Result<()> {
        let taken: Vec<(String, Days)> = {
            let pending = self.lock();
            arns.iter()
                .filter_map(|arn| Some((arn.clone(), pending.by_arn.get(arn)?.clone())))
                .collect()
        };
        let mut reads: Vec<crate::AccessRead> = taken
            .iter()
            .flat_map(|(arn, days)| {
                days.versions
                    .iter()
                    .map(|(version, day)| (arn.clone(), version.clone(), *day))
            })
            .collect();
        // Latest last: a secret's day is the latest of its reads even across statements.
        reads.sort_by_key(|(_, _, day)| *day);
        let tell = taken.iter().filter_map(|(_, d)| d.tell.clone()).collect();
        self.inner.record_accesses(&reads, tell).await?;
        let mut pending = self.lock();
        for (arn, days) in taken {
            if pending.by_arn.get(&arn) == Some(&days) {
                pending.by_arn.remove(&arn);
            }
        }
        pending.epoch += 1;
        self.len.store(pending.by_arn.len(), Ordering::Release);
        Ok(())
    }
}

/// Sets `secret`'s pending days, if it has any.
fn apply(pending: &Pending, secret: &mut Secret) {
    if let Some(days) = pending.by_arn.get(&secret.record.arn) {
        set_days(secret, days);
    }
}

/// Sets the days of `days` on `secret` (versions it no longer has are skipped).
fn set_days(secret: &mut Secret, days: &Days) {
    secret.record.last_accessed_day = Some(days.secret);
    for (version_id, day) in &days.versions {
        if let Some(v) = secret
            .versions
            .iter_mut()
            .find(|v| &v.version_id == version_id)
        {
            v.last_accessed_day = Some(*day);
        }
    }
}
