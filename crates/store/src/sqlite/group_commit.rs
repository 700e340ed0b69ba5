//! Group commit: the SQLite store's secret changes share transactions and fsyncs.
//!
//! SQLite has one writer, and with `synchronous=FULL` every commit waits for an fsync of the
//! WAL (milliseconds on a disk). One commit per acknowledged write capped a Region at about
//! one write per fsync, however many clients wrote at once. Here every secret change
//! ([`Store::commit_with`](crate::Store::commit_with), `commit_and_finish`, `finish_outbox`) is
//! a [`Job`] queued to one writer task, which in a loop:
//!
//! 1. waits for a job, then takes every other job already queued (at most [`MAX_BATCH`]). There
//!    is no timer: a writer alone is committed at once, exactly as before, and the jobs that
//!    arrive while one batch's fsync is in flight make up the next batch;
//! 2. opens one transaction and applies each job, in arrival order, inside a SAVEPOINT of its
//!    own: a job that fails (its optimistic `row_version` check, a name already taken) is rolled
//!    back to its savepoint alone and gets its own error, and the jobs after it see the
//!    database as if it had never run, so each job means what it would mean committed alone;
//! 3. commits once (one fsync), and only once that COMMIT has returned answers each job.
//!
//! So a write is acknowledged only when it is on disk, as before, and the outbox rows of a
//! change are in the same transaction as the change. The cache ([`crate::CachedStore`]) drops
//! its entries when `commit_with` returns, i.e. after the commit. When the transaction itself
//! fails (BEGIN, a savepoint, the COMMIT: an I/O error, a full disk), every job of the batch
//! gets that error and nothing of the batch is committed; the connection is then closed and a
//! fresh one is opened for the next batch.
//!
//! Delivery bookkeeping (`commit_and_finish`: a replica's status, settled outbox rows) and
//! outbox claims (`claim_outbox_to`: leases) need no fsync of their own, since a crash that
//! loses them only means a row is claimed and delivered again; a batch made only of such jobs
//! commits with `synchronous=NORMAL` (atomic and ordered in the WAL, made durable by the next
//! full commit). A batch with any user write commits with the fsync. A claim is a job like the
//! others, so the replication lanes' claims share transactions with the writes instead of
//! taking turns with them for the connection.
//!
//! A caller that stops waiting (its request was cancelled) does not withdraw its job: the job
//! is committed with its batch or not, like a commit whose answer was lost on the way.
//!
//! A read's LastAccessedDate (`record_access`, the first read of a secret each day) is a
//! non-durable job too: reads spread over many secrets share transactions instead of taking
//! turns for the connection one transaction each. A crash may lose the day of the last reads;
//! the next read writes it again.
//!
//! A failed delivery's retry schedule (`retry_outbox`) is a non-durable job too: under an
//! outage a lane fails whole batches, and their retries share transactions with the writes
//! instead of each taking the writer connection for a transaction of its own.
//!
//! The other writes of the store (KMS keys, IAM) take the writer connection from its pool of
//! one between two batches, as before.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::SqlitePool;
use sqlx::sqlite::SqliteConnection;
use tokio::sync::{mpsc, oneshot};

use super::changes;
use super::terms_memo::TermsMemo;
use crate::{OutboxEntry, OutboxRow, Result, SecretChange, StoreError};

/// The most jobs one transaction takes; the rest wait for the next. Bounds how long a job can
/// wait behind the others of its batch (each costs tens of microseconds of statements).
pub(super) const MAX_BATCH: usize = 256;

/// Jobs queued and not yet taken by the writer; a caller beyond this waits to queue.
const QUEUE: usize = 4096;

/// Outbox rows to settle: `(secret ARN, destination Region, kind, up to id)`.
pub(super) type Settle = (String, String, String, i64);

/// One change, committed all or nothing.
#[derive(Default)]
pub(super) struct Job {
    pub changes: Vec<SecretChange>,
    pub outbox: Vec<OutboxEntry>,
    pub settle: Vec<Settle>,
    /// After the changes: claims outbox rows (see [`super::changes::claim_in`]); they are the answer.
    pub claim: Option<Claim>,
    /// A read's LastAccessedDate ([`crate::Store::record_access`]): `(secret ARN, version id,
    /// day)`. Not a change: the secret's `row_version` stays.
    pub access: Vec<crate::AccessRead>,
    /// A failed delivery's next attempt ([`crate::Store::retry_outbox`]).
    pub retry: Option<Retry>,
    /// Whether the caller's answer promises the change is on disk (`synchronous=FULL`).
    pub durable: bool,
}

/// The arguments of [`crate::Store::claim_outbox_to`].
pub(super) struct Claim {
    pub now_ms: i64,
    pub owner: String,
    pub lease_ms: i64,
    pub limit: i64,
    pub dest_region: Option<String>,
}

/// The arguments of [`crate::Store::retry_outbox`].
pub(super) struct Retry {
    pub id: i64,
    pub attempts: i64,
    pub next_attempt_ms: i64,
    pub first_failure_ms: Option<i64>,
}

/// What a job gives back: the rows it claimed, if it claimed.
type Answer = Result<Vec<OutboxRow>>;

struct Queued {
    job: Job,
    answer: oneshot::Sender<Answer>,
}

/// How many transactions the writer committed and how many jobs they held.
#[derive(Debug, Default)]
struct Counts {
    commits: AtomicU64,
    jobs: AtomicU64,
}

/// The handle to the writer task; the task ends when the handle is dropped.
pub(super) struct GroupCommitter {
    queue: mpsc::Sender<Queued>,
    counts: Arc<Counts>,
}

impl GroupCommitter {
    /// Starts the writer task on the store's writer pool (one connection).
    pub fn spawn(pool: SqlitePool) -> GroupCommitter {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let counts = Arc::new(Counts::default());
        tokio::spawn(run(pool, jobs, counts.clone()));
        GroupCommitter { queue, counts }
    }

    /// Queues `job` and waits until the transaction holding it has committed (or failed).
    pub async fn commit(&self, job: Job) -> Result<()> {
        self.run(job).await.map(drop)
    }

    /// [`GroupCommitter::commit`] that returns the rows the job claimed.
    pub async fn run(&self, job: Job) -> Answer {
        let (answer, answered) = oneshot::channel();
        self.queue
            .send(Queued { job, answer })
            .await
            .map_err(|_| StoreError::Backend("the store's writer has stopped".into()))?;
        answered
            .await
            .map_err(|_| StoreError::Backend("the store's writer has stopped".into()))?
    }

    /// `(transactions committed, jobs committed or refused in them)` since the store opened.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.counts.commits.load(Ordering::Relaxed),
            self.counts.jobs.load(Ordering::Relaxed),
        )
    }
}

async fn run(pool: SqlitePool, mut jobs: mpsc::Receiver<Queued>, counts: Arc<Counts>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut memo = TermsMemo::new();
    let mut checkpointed = std::time::Instant::now();
    while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let answers = commit_batch(&pool, &mut batch, &mut memo).await;
        counts.commits.fetch_add(1, Ordering::Relaxed);
        counts.jobs.fetch_add(batch.len() as u64, Ordering::Relaxed);
        for (queued, answer) in batch.drain(..).zip(answers) {
            // A caller that stopped waiting has nobody to tell.
            let _ = queued.answer.send(answer);
        }
        if checkpointed.elapsed() >= CHECKPOINT_EVERY {
            checkpointed = std::time::Instant::now();
            catch_up(&pool).await;
        }
    }
}

/// How often the writer finishes the background checkpointer's work itself.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Copies into the database file the frames the background checkpointer has not copied yet
/// (the last few commits'), between two batches. SQLite starts the WAL over only when a write
/// transaction begins with every frame copied, and under a steady write load the background
/// checkpoint never catches up with the commit that follows it, so the WAL grew to the size
/// limit and the checkpointer's TRUNCATE held every writer off every few seconds (replication
/// lag p99 of seconds at 1,000 writes/s). Run here, with no commit in between, the next batch
/// starts the WAL over. It costs the copy of the last frames and one fsync of the database
/// file, once a second at most.
async fn catch_up(pool: &SqlitePool) {
    let started = std::time::Instant::now();
    if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
        .execute(pool)
        .await
    {
        tracing::warn!(error = %e, "WAL checkpoint on the writer failed; will retry");
    }
    slow("the writer's WAL checkpoint", started);
}

/// A step of the writer that every write queued meanwhile waited for: logged when it took
/// long enough to show in request latency (a disk that stalls, a checkpoint that waits).
pub(super) fn slow(step: &str, started: std::time::Instant) {
    let took = started.elapsed();
    if took >= std::time::Duration::from_millis(100) {
        tracing::warn!(
            step,
            took_ms = took.as_millis() as u64,
            "SQLite writer step was slow: every write waited for it (usually a slow or overloaded disk under the data directory)"
        );
    }
}

/// Commits `batch` in one transaction; one answer per job, in order. `memo` follows what the
/// transaction did to the search terms.
async fn commit_batch(
    pool: &SqlitePool,
    batch: &mut [Queued],
    memo: &mut TermsMemo,
) -> Vec<Answer> {
    let n = batch.len();
    let every = move |e: StoreError| vec![Err(e); n];
    let mut conn = match pool.acquire().await {
        Ok(conn) => conn,
        Err(e) => return every(e.into()),
    };
    let durable = batch.iter().any(|q| q.job.durable);
    if !durable && let Err(e) = changes::relax(&mut conn).await {
        conn.close_on_drop();
        return every(e);
    }
    let outcome = in_one_transaction(&mut conn, batch, memo).await;
    memo.batch_done(outcome.is_ok());
    if outcome.is_err() {
        // The transaction may be half rolled back by SQLite itself: start afresh.
        conn.close_on_drop();
    }
    if !durable && let Err(e) = changes::restore(&mut conn).await {
        // `restore` closed the connection; what was committed stays committed.
        tracing::warn!(error = %e, "cannot put the SQLite writer back to synchronous=FULL");
    }
    outcome.unwrap_or_else(every)
}

/// BEGIN, each job in its own savepoint, COMMIT. `Err` when the transaction as a whole fails
/// (nothing of it committed); otherwise each job's own outcome.
async fn in_one_transaction(
    conn: &mut SqliteConnection,
    batch: &mut [Queued],
    memo: &mut TermsMemo,
) -> Result<Vec<Answer>> {
    let mut tx = sqlx::Connection::begin(conn).await?;
    let together = accesses_together(&mut tx, batch).await?;
    let mut answers = Vec::with_capacity(batch.len());
    let mut open = false;
    for (i, queued) in batch.iter_mut().enumerate() {
        if together.contains(&i) {
            answers.push(Ok(Vec::new()));
            continue;
        }
        // The previous job's savepoint is released together with this one's start: one round
        // trip to SQLite's worker thread (the COMMIT releases the last one).
        let start = if open {
            "RELEASE job; SAVEPOINT job"
        } else {
            "SAVEPOINT job"
        };
        open = true;
        sqlx::raw_sql(start).execute(&mut *tx).await?;
        let outcome = apply(&mut tx, &mut queued.job, memo).await;
        memo.job_done(outcome.is_ok());
        if outcome.is_err() {
            // Fails (and fails the batch) when SQLite already rolled back the whole
            // transaction, as it does after some I/O errors.
            sqlx::query("ROLLBACK TO job").execute(&mut *tx).await?;
        }
        answers.push(outcome);
    }
    let started = std::time::Instant::now();
    tx.commit().await?;
    slow("a group commit's COMMIT", started);
    Ok(answers)
}

/// Writes the access days of the batch's jobs that record nothing else (the first reads of a
/// day) in two statements for all of them, instead of a savepoint and two statements each: the
/// indexes of the jobs done. Nothing when there are fewer than two, or when the statements
/// fail (they are rolled back, and those jobs are then applied one by one like the others).
async fn accesses_together(
    tx: &mut SqliteConnection,
    batch: &[Queued],
) -> Result<std::collections::HashSet<usize>> {
    let jobs: Vec<(usize, &[crate::AccessRead])> = batch
        .iter()
        .enumerate()
        .filter_map(|(i, q)| {
            let j = &q.job;
            let only = j.changes.is_empty()
                && j.outbox.is_empty()
                && j.settle.is_empty()
                && j.claim.is_none()
                && j.retry.is_none()
                && !j.access.is_empty();
            only.then_some((i, j.access.as_slice()))
        })
        .collect();
    if jobs.len() < 2 {
        return Ok(Default::default());
    }
    sqlx::raw_sql("SAVEPOINT accesses")
        .execute(&mut *tx)
        .await?;
    let rows: Vec<(&str, &str, i64)> = jobs
        .iter()
        .flat_map(|(_, reads)| reads.iter())
        .map(|(arn, version, day)| (arn.as_str(), version.as_str(), *day))
        .collect();
    let done = changes::record_accesses_in(tx, &rows).await;
    if done.is_err() {
        sqlx::raw_sql("ROLLBACK TO accesses")
            .execute(&mut *tx)
            .await?;
    }
    sqlx::raw_sql("RELEASE accesses").execute(&mut *tx).await?;
    Ok(match done {
        Ok(()) => jobs.into_iter().map(|(i, _)| i).collect(),
        Err(_) => Default::default(),
    })
}

async fn apply(conn: &mut SqliteConnection, job: &mut Job, memo: &mut TermsMemo) -> Answer {
    let changes = std::mem::take(&mut job.changes);
    match changes::plain_updates(&changes) {
        Some(records) => changes::update_records(conn, &records, memo).await?,
        None => {
            for change in changes {
                changes::apply_change(conn, change, memo).await?;
            }
        }
    }
    changes::insert_outbox(conn, &job.outbox).await?;
    changes::settle_outbox(conn, &job.settle).await?;
    if !job.access.is_empty() {
        let rows: Vec<(&str, &str, i64)> = job
            .access
            .iter()
            .map(|(arn, version, day)| (arn.as_str(), version.as_str(), *day))
            .collect();
        changes::record_accesses_in(conn, &rows).await?;
    }
    if let Some(retry) = &job.retry {
        changes::retry_in(conn, retry).await?;
    }
    match &job.claim {
        Some(c) => {
            changes::claim_in(
                conn,
                c.now_ms,
                &c.owner,
                c.lease_ms,
                c.limit,
                c.dest_region.as_deref(),
            )
            .await
        }
        None => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SecretRecord, Store, VersionRecord};

    const ACCOUNT: &str = "111122223333";

    fn record(name: &str, row_version: i64) -> SecretRecord {
        SecretRecord {
            arn: format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:{name}-AbCdEf"),
            account_id: ACCOUNT.to_string(),
            name: name.to_string(),
            description: None,
            kms_key_id: None,
            tags: None,
            resource_policy: None,
            created_ms: 1,
            last_changed_ms: 1,
            last_accessed_day: None,
            deleted_ms: None,
            purge_at_ms: None,
            rotation: None,
            replication: None,
            row_version,
        }
    }

    fn version(secret: &SecretRecord, id: &str) -> VersionRecord {
        VersionRecord {
            secret_arn: secret.arn.clone(),
            version_id: id.to_string(),
            stages: vec!["AWSCURRENT".to_string()],
            created_ms: 1,
            last_accessed_day: None,
            kms_key_arn: None,
            value_kind: crate::ValueKind::String,
            wrapped_data_key: Some(vec![1]),
            ciphertext: Some(b"sealed".to_vec()),
        }
    }

    fn insert(name: &str) -> SecretChange {
        let secret = record(name, 1);
        let versions = vec![version(&secret, "v1")];
        SecretChange::Insert { secret, versions }
    }

    fn update(name: &str, expected_row_version: i64) -> SecretChange {
        SecretChange::Update {
            secret: record(name, expected_row_version + 1),
            expected_row_version,
            upsert_versions: Vec::new(),
            delete_versions: Vec::new(),
        }
    }

    /// [`update`] that also sets the description to `text`.
    fn described(name: &str, expected_row_version: i64, text: &str) -> SecretChange {
        let mut secret = record(name, expected_row_version + 1);
        secret.description = Some(text.to_string());
        SecretChange::Update {
            secret,
            expected_row_version,
            upsert_versions: Vec::new(),
            delete_versions: Vec::new(),
        }
    }

    fn outbox(name: &str) -> OutboxEntry {
        OutboxEntry {
            secret_arn: record(name, 1).arn,
            dest_region: "eu-west-1".to_string(),
            kind: "sync".to_string(),
            payload: "{}".to_string(),
        }
    }

    fn queued(changes: Vec<SecretChange>, outbox: Vec<OutboxEntry>) -> Queued {
        Queued {
            job: Job {
                changes,
                outbox,
                settle: Vec::new(),
                claim: None,
                access: Vec::new(),
                retry: None,
                durable: true,
            },
            answer: oneshot::channel().0,
        }
    }

    async fn open() -> (tempfile::TempDir, super::super::SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = super::super::SqliteStore::open(&dir.path().join("region.db"))
            .await
            .unwrap();
        (dir, store)
    }

    /// One batch, one transaction: the job whose check fails (a stale row version after one
    /// change of its own, a taken name) is undone alone, change and outbox rows; the jobs
    /// around it commit, and a later job sees an earlier one's change.
    #[tokio::test]
    async fn a_failing_job_rolls_back_only_itself() {
        let (_dir, store) = open().await;
        let mut batch = vec![
            queued(vec![insert("a")], vec![outbox("a")]),
            // Its own first change would commit alone; its stale update fails the job.
            queued(vec![insert("b"), update("a", 7)], vec![outbox("b")]),
            queued(vec![insert("a")], Vec::new()),
            // Sees job 1's row (row_version 1).
            queued(vec![update("a", 1)], vec![outbox("a")]),
            queued(vec![insert("c")], Vec::new()),
        ];
        let mut memo = TermsMemo::new();
        let answers = commit_batch(&store.pools.writer, &mut batch, &mut memo).await;
        let shape: Vec<_> = answers
            .iter()
            .map(|a| match a {
                Ok(_) => "ok",
                Err(StoreError::Conflict) => "conflict",
                Err(_) => "other",
            })
            .collect();
        assert_eq!(shape, ["ok", "conflict", "conflict", "ok", "ok"]);
        let a = store.load_secret_by_arn(&record("a", 1).arn).await.unwrap();
        assert_eq!(a.unwrap().record.row_version, 2, "job 4 applied on job 1");
        assert!(
            store
                .load_secret_by_arn(&record("b", 1).arn)
                .await
                .unwrap()
                .is_none(),
            "job 2's insert was rolled back with its failed update"
        );
        assert!(
            store
                .load_secret_by_arn(&record("c", 1).arn)
                .await
                .unwrap()
                .is_some()
        );
        let rows = store.claim_outbox(i64::MAX / 2, "t", 1, 100).await.unwrap();
        let arns: Vec<_> = rows.iter().map(|r| r.entry.secret_arn.as_str()).collect();
        let a_arn = record("a", 1).arn;
        assert_eq!(
            arns,
            [a_arn.as_str(), a_arn.as_str()],
            "job 2's outbox row is gone"
        );
    }

    /// The search terms follow the savepoints: a job rolled back after it wrote a secret's
    /// new terms leaves the old ones, and the next job that makes the same change writes them
    /// (the writer's memory of committed terms must not count the rolled-back job).
    #[tokio::test]
    async fn search_terms_follow_the_jobs_that_were_kept() {
        let (_dir, store) = open().await;
        let terms = || async {
            let rows: Vec<(String,)> = sqlx::query_as(
                "SELECT t.term FROM secret_terms t JOIN secrets s ON s.term_key = t.secret_key \
                 WHERE s.arn = $1 AND t.kind = 'd' ORDER BY t.term",
            )
            .bind(record("a", 1).arn)
            .fetch_all(&store.pools.writer)
            .await
            .unwrap();
            rows.into_iter().map(|(t,)| t).collect::<Vec<_>>()
        };
        let mut memo = TermsMemo::new();
        let mut batch = vec![
            queued(vec![insert("a"), described("a", 1, "old")], Vec::new()),
            // Writes "new", then fails: rolled back.
            queued(vec![described("a", 2, "new"), update("a", 9)], Vec::new()),
        ];
        commit_batch(&store.pools.writer, &mut batch, &mut memo).await;
        assert_eq!(terms().await, ["old"]);
        let mut batch = vec![queued(vec![described("a", 2, "new")], Vec::new())];
        let answers = commit_batch(&store.pools.writer, &mut batch, &mut memo).await;
        assert!(answers[0].is_ok());
        assert_eq!(terms().await, ["new"]);
        // A change that keeps the terms keeps them.
        let mut batch = vec![queued(vec![described("a", 3, "new")], Vec::new())];
        commit_batch(&store.pools.writer, &mut batch, &mut memo).await;
        assert_eq!(terms().await, ["new"]);
    }

    /// A job that updates several secrets without touching versions (a delivered batch's
    /// replica statuses) makes them in one statement, with the same meaning as one by one:
    /// all of them, or, when any is stale, none.
    #[tokio::test]
    async fn several_plain_updates_are_all_or_nothing() {
        let (_dir, store) = open().await;
        let mut memo = TermsMemo::new();
        let mut batch = vec![
            queued(vec![insert("a"), insert("b"), insert("c")], Vec::new()),
            queued(
                vec![described("a", 1, "a2"), described("b", 1, "b2")],
                Vec::new(),
            ),
            // c is fresh, b is stale now: nothing of this job stays.
            queued(
                vec![described("c", 1, "c2"), described("b", 1, "b3")],
                Vec::new(),
            ),
        ];
        let answers = commit_batch(&store.pools.writer, &mut batch, &mut memo).await;
        assert!(answers[1].is_ok());
        assert!(matches!(answers[2], Err(StoreError::Conflict)));
        let now = |name: &str| {
            let arn = record(name, 1).arn;
            let store = &store;
            async move {
                let s = store.load_secret_by_arn(&arn).await.unwrap().unwrap();
                (s.record.row_version, s.record.description)
            }
        };
        assert_eq!(now("a").await, (2, Some("a2".into())));
        assert_eq!(now("b").await, (2, Some("b2".into())));
        assert_eq!(now("c").await, (1, None));
        let terms: Vec<(String,)> =
            sqlx::query_as("SELECT term FROM secret_terms WHERE kind = 'd' ORDER BY term")
                .fetch_all(&store.pools.writer)
                .await
                .unwrap();
        assert_eq!(terms, [("a2".to_string(),), ("b2".to_string(),)]);
    }

    /// The columns secondary indexes cover are written by a statement of their own, only
    /// when they change: an update that moves them (a new value's LastChangedDate, a deletion
    /// scheduled) is seen through the indexes, and one that keeps them keeps them.
    #[tokio::test]
    async fn indexed_columns_change_only_when_they_change() {
        let (_dir, store) = open().await;
        let mut memo = TermsMemo::new();
        let mut moved = record("a", 2);
        moved.last_changed_ms = 50;
        moved.purge_at_ms = Some(70);
        moved.deleted_ms = Some(60);
        moved.last_accessed_day = Some(3);
        let mut kept = moved.clone();
        kept.row_version = 3;
        kept.replication = Some("{}".into());
        let change = |secret: SecretRecord, expected_row_version| SecretChange::Update {
            secret,
            expected_row_version,
            upsert_versions: Vec::new(),
            delete_versions: Vec::new(),
        };
        let mut batch = vec![
            queued(vec![insert("a")], Vec::new()),
            queued(vec![change(moved, 1)], Vec::new()),
            queued(vec![change(kept, 2)], Vec::new()),
        ];
        let answers = commit_batch(&store.pools.writer, &mut batch, &mut memo).await;
        assert!(answers.iter().all(Result::is_ok));
        let a = store
            .load_secret_by_arn(&record("a", 1).arn)
            .await
            .unwrap()
            .unwrap()
            .record;
        assert_eq!(
            (
                a.row_version,
                a.last_changed_ms,
                a.purge_at_ms,
                a.deleted_ms
            ),
            (3, 50, Some(70), Some(60))
        );
        assert_eq!(
            (a.last_accessed_day, a.replication.as_deref()),
            (Some(3), Some("{}"))
        );
        assert_eq!(store.secrets_due_for_purge(69, 10).await.unwrap().len(), 0);
        assert_eq!(store.secrets_due_for_purge(70, 10).await.unwrap(), [a.arn]);
    }

    /// The first reads of a day in one batch write their access days together, around the
    /// other jobs of the batch, and each secret and version read gets its day.
    #[tokio::test]
    async fn access_days_of_a_batch_are_written_together() {
        let (_dir, store) = open().await;
        let mut memo = TermsMemo::new();
        let access = |name: &str, day: i64| Queued {
            job: Job {
                access: vec![(record(name, 1).arn, "v1".to_string(), day)],
                ..Default::default()
            },
            answer: oneshot::channel().0,
        };
        let mut setup = vec![
            queued(vec![insert("a")], Vec::new()),
            queued(vec![insert("b")], Vec::new()),
        ];
        commit_batch(&store.pools.writer, &mut setup, &mut memo).await;
        let mut batch = vec![
            access("a", 20),
            queued(vec![insert("c")], Vec::new()),
            access("b", 21),
            access("gone", 22),
        ];
        let answers = commit_batch(&store.pools.writer, &mut batch, &mut memo).await;
        assert!(answers.iter().all(Result::is_ok));
        for (name, day) in [("a", 20), ("b", 21)] {
            let s = store
                .load_secret_by_arn(&record(name, 1).arn)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(s.record.last_accessed_day, Some(day), "{name}");
            assert_eq!(s.versions[0].last_accessed_day, Some(day), "{name}");
        }
        assert!(
            store
                .load_secret_by_arn(&record("c", 1).arn)
                .await
                .unwrap()
                .is_some()
        );
    }

    /// Writers that arrive while a commit is in flight share the next one: 64 concurrent
    /// changes take far fewer than 64 transactions, and each caller gets its own answer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_share_commits() {
        let (_dir, store) = open().await;
        let store = Arc::new(store);
        let (commits_before, jobs_before) = store.commit_counts();
        let mut tasks = Vec::new();
        for i in 0..64 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                // Every fourth one collides with the secret of the one before it.
                let name = format!("s{}", i - (i % 4 == 1) as usize);
                store
                    .commit_with(vec![insert(&name)], vec![outbox(&name)])
                    .await
            }));
        }
        let mut refused = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(()) => {}
                Err(StoreError::Conflict) => refused += 1,
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert_eq!(
            refused, 16,
            "each colliding insert, and only those, is refused"
        );
        let (commits, jobs) = store.commit_counts();
        assert_eq!(jobs - jobs_before, 64);
        assert!(
            commits - commits_before <= 32,
            "64 concurrent writes took {} commits",
            commits - commits_before
        );
        assert_eq!(store.list_secrets(ACCOUNT).await.unwrap().len(), 48);
    }
}
