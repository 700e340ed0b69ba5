//! Group commit: the SQLite store's secret changes share transactions and fsyncs.
//!
//! SQLite has one writer, and with `synchronous=FULL` every commit waits for an fsync of the
//! WAL (milliseconds on a disk). One commit per acknowledged write capped a Region at about
//! one write per fsync, however many clients wrote at once. Here every secret change
//! ([`Store::commit_with`](crate::Store::commit_with), `commit_and_finish`, `finish_outbox`) is
//! a [`Job`] queued to one writer thread, which in a loop:
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
//! A batch whose statements panic (a bug) fails its jobs, not the thread: the writes after it
//! still commit.
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
//! The store's other writes (a KMS change and its outbox rows, a replica's heads, a failover
//! document) are durable jobs too ([`Job::write`]), so nothing else writes the file while the
//! store is open.
//!
//! The writer is a thread of its own that owns its connection and runs a batch's statements
//! through rusqlite, on that thread. Through sqlx every statement was two hand-offs between a
//! runtime thread and the connection's worker thread, several per job: profiled at 64
//! concurrent PutSecretValue, those hand-offs (futex wake-ups, thread switches) were about a
//! third of the server's CPU, and each job's statements waited for them in turn while the
//! whole batch waited for the job (docs/benchmarks.md). A caller's only hand-off now is its
//! job into the queue and the answer back.
//!
//! Its transactions begin with `BEGIN IMMEDIATE`, so that a checkpoint holding the write lock
//! is waited for (busy timeout) rather than failing a transaction that already read.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::changes;
use super::terms_memo::TermsMemo;
use crate::{OutboxEntry, OutboxRow, Result, SecretChange, StoreError};

/// The most jobs one transaction takes; the rest wait for the next. Bounds how long a job can
/// wait behind the others of its batch (each costs tens of microseconds of statements).
pub(super) const MAX_BATCH: usize = 256;

/// Jobs queued and not yet taken by the writer; a caller beyond this waits to queue.
const QUEUE: usize = 4096;

/// The writer connection's page cache (SQLite's `cache_size`, in KiB). The writer walks the
/// secrets', versions' and search terms' indexes for every change; SQLite's default 2 MiB page
/// cache made most of those walks reads from the OS.
const CACHE_KIB: u32 = 32 * 1024;

/// Statements the writer keeps prepared (the multi-row statements have one text per row count).
const PREPARED: usize = 128;

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
    /// Any other write of the store (a KMS change, a replica's heads, a failover document),
    /// run after the changes and before the outbox rows.
    pub write: Option<OtherWrite>,
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

/// A write of a job other than secret changes and the outbox, on the writer's connection
/// inside the job's savepoint.
pub(super) type OtherWrite = Box<dyn FnOnce(&Connection) -> Result<()> + Send>;

/// What a job gives back: the rows it claimed, if it claimed.
type Answer = Result<Vec<OutboxRow>>;

struct Queued {
    job: Job,
    answer: oneshot::Sender<Answer>,
}

/// What the writer thread is sent.
enum Message {
    Job(Box<Queued>),
    /// Close the connection (the last one closed folds the WAL into the database file) and
    /// stop; answered once closed.
    Close(oneshot::Sender<()>),
}

/// How many transactions the writer committed and how many jobs they held.
#[derive(Debug, Default)]
struct Counts {
    commits: AtomicU64,
    jobs: AtomicU64,
}

/// The handle to the writer thread; the thread ends when the handle is dropped or closed.
pub(super) struct GroupCommitter {
    queue: mpsc::Sender<Message>,
    counts: Arc<Counts>,
}

/// The settings of the writer's connection.
#[derive(Clone)]
pub(super) struct WriterFile {
    pub path: PathBuf,
    /// SQLite's `journal_size_limit` (see `open::WAL_LIMIT_BYTES`).
    pub wal_limit: u64,
}

impl GroupCommitter {
    /// Opens the writer's connection to `file` (so a file that cannot be written fails the
    /// open) and starts the writer thread.
    pub fn spawn(file: WriterFile) -> Result<GroupCommitter> {
        let mut writer = Writer::open(file)?;
        let (queue, mut messages) = mpsc::channel(QUEUE);
        let counts = Arc::new(Counts::default());
        let counted = counts.clone();
        std::thread::Builder::new()
            .name("coffer-sqlite-writer".into())
            .spawn(move || writer.run(&mut messages, &counted))
            .map_err(|e| StoreError::Backend(format!("cannot start the SQLite writer: {e}")))?;
        Ok(GroupCommitter { queue, counts })
    }

    /// Queues `job` and waits until the transaction holding it has committed (or failed).
    pub async fn commit(&self, job: Job) -> Result<()> {
        self.run(job).await.map(drop)
    }

    /// [`GroupCommitter::commit`] that returns the rows the job claimed.
    pub async fn run(&self, job: Job) -> Answer {
        let (answer, answered) = oneshot::channel();
        self.queue
            .send(Message::Job(Box::new(Queued { job, answer })))
            .await
            .map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }

    /// Commits what is queued, closes the connection and stops the thread; jobs queued after
    /// this fail.
    pub async fn close(&self) {
        let (closed, done) = oneshot::channel();
        if self.queue.send(Message::Close(closed)).await.is_ok() {
            let _ = done.await;
        }
    }

    /// `(transactions committed, jobs committed or refused in them)` since the store opened.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.counts.commits.load(Ordering::Relaxed),
            self.counts.jobs.load(Ordering::Relaxed),
        )
    }
}

fn stopped() -> StoreError {
    StoreError::Backend("the store's writer has stopped".into())
}

/// How often the writer finishes the background checkpointer's work itself.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// The writer thread's state: its connection (`None` after a transaction failed as a whole,
/// reopened for the next batch) and what it knows of the search terms it committed.
struct Writer {
    file: WriterFile,
    conn: Option<Connection>,
    memo: TermsMemo,
}

impl Writer {
    fn open(file: WriterFile) -> Result<Writer> {
        let conn = connect(&file)?;
        Ok(Writer {
            file,
            conn: Some(conn),
            memo: TermsMemo::new(),
        })
    }

    fn run(&mut self, messages: &mut mpsc::Receiver<Message>, counts: &Counts) {
        let mut received = Vec::with_capacity(MAX_BATCH);
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut checkpointed = std::time::Instant::now();
        while messages.blocking_recv_many(&mut received, MAX_BATCH) > 0 {
            let mut close = None;
            for message in received.drain(..) {
                match message {
                    Message::Job(queued) if close.is_none() => batch.push(*queued),
                    // A job queued behind the close is dropped: its caller hears "stopped".
                    Message::Job(_) => {}
                    Message::Close(closed) => close = close.or(Some(closed)),
                }
            }
            if !batch.is_empty() {
                let answers = self.commit_batch_or_fail(&mut batch);
                counts.commits.fetch_add(1, Ordering::Relaxed);
                counts.jobs.fetch_add(batch.len() as u64, Ordering::Relaxed);
                for (queued, answer) in batch.drain(..).zip(answers) {
                    // A caller that stopped waiting has nobody to tell.
                    let _ = queued.answer.send(answer);
                }
            }
            if let Some(closed) = close {
                self.conn = None;
                let _ = closed.send(());
                return;
            }
            if checkpointed.elapsed() >= CHECKPOINT_EVERY {
                checkpointed = std::time::Instant::now();
                self.catch_up();
            }
        }
    }

    /// [`Writer::commit_batch`], and when it panics (a bug in one job's statements), every
    /// job of the batch fails instead of the thread: the writes after it still commit. The
    /// connection is dropped (which rolls back what the batch began) and the memory of
    /// committed search terms is forgotten, as after a failed transaction.
    fn commit_batch_or_fail(&mut self, batch: &mut [Queued]) -> Vec<Answer> {
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.commit_batch(batch)));
        outcome.unwrap_or_else(|_| {
            tracing::error!(
                jobs = batch.len(),
                "the SQLite writer failed on a batch (a panic); its writes are refused, later ones go on"
            );
            self.conn = None;
            self.memo = TermsMemo::new();
            batch
                .iter()
                .map(|_| {
                    Err(StoreError::Backend(
                        "the store's writer failed on this write".into(),
                    ))
                })
                .collect()
        })
    }

    /// Copies into the database file the frames the background checkpointer has not copied
    /// yet (the last few commits'), between two batches. SQLite starts the WAL over only when a
    /// write transaction begins with every frame copied, and under a steady write load the
    /// background checkpoint never catches up with the commit that follows it, so the WAL grew
    /// to the size limit and the checkpointer's TRUNCATE held every writer off every few
    /// seconds (replication lag p99 of seconds at 1,000 writes/s). Run here, with no commit in
    /// between, the next batch starts the WAL over. It costs the copy of the last frames and
    /// one fsync of the database file, once a second at most.
    fn catch_up(&mut self) {
        let Some(conn) = &self.conn else { return };
        let started = std::time::Instant::now();
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "WAL checkpoint on the writer failed; will retry");
        }
        slow("the writer's WAL checkpoint", started);
    }

    /// Commits `batch` in one transaction; one answer per job, in order.
    fn commit_batch(&mut self, batch: &mut [Queued]) -> Vec<Answer> {
        let n = batch.len();
        let every = move |e: StoreError| vec![Err(e); n];
        let conn = match &mut self.conn {
            Some(conn) => conn,
            slot @ None => match connect(&self.file) {
                Ok(conn) => slot.insert(conn),
                Err(e) => return every(e),
            },
        };
        let durable = batch.iter().any(|q| q.job.durable);
        // Bookkeeping that is redone if a crash loses it commits without its own fsync (still
        // atomic and ordered in the WAL; the next `synchronous=FULL` commit makes it durable).
        if !durable && let Err(e) = conn.execute_batch("PRAGMA synchronous = NORMAL") {
            self.conn = None;
            return every(e.into());
        }
        let outcome = in_one_transaction(conn, batch, &mut self.memo);
        self.memo.batch_done(outcome.is_ok());
        let mut fresh = outcome.is_err();
        if !durable && let Err(e) = conn.execute_batch("PRAGMA synchronous = FULL") {
            // What was committed stays committed; a connection that cannot be put back is
            // not reused for acknowledged writes.
            tracing::warn!(error = %e, "cannot put the SQLite writer back to synchronous=FULL");
            fresh = true;
        }
        if fresh {
            // The transaction may be half rolled back by SQLite itself: start afresh.
            self.conn = None;
        }
        outcome.unwrap_or_else(every)
    }
}

/// The writer's connection: WAL, `synchronous=FULL`, no automatic checkpoint (see
/// `open::spawn_checkpointer`), savepoint journals in memory.
fn connect(file: &WriterFile) -> Result<Connection> {
    let conn = Connection::open(&file.path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.set_prepared_statement_cache_capacity(PREPARED);
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
         PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = {}; \
         PRAGMA temp_store = memory; PRAGMA cache_size = -{CACHE_KIB};",
        file.wal_limit
    ))?;
    Ok(conn)
}

/// A step of the writer that every write queued meanwhile waited for: logged when it took
/// long enough to show in request latency (a disk that stalls, a checkpoint that waits).
pub(super) fn slow(step: &str, started: std::time::Instant) {
    let took = started.elapsed();
    if took >= Duration::from_millis(100) {
        tracing::warn!(
            step,
            took_ms = took.as_millis() as u64,
            "SQLite writer step was slow: every write waited for it (usually a slow or overloaded disk under the data directory)"
        );
    }
}

/// BEGIN, each job in its own savepoint, COMMIT. `Err` when the transaction as a whole fails
/// (nothing of it committed); otherwise each job's own outcome.
fn in_one_transaction(
    conn: &Connection,
    batch: &mut [Queued],
    memo: &mut TermsMemo,
) -> Result<Vec<Answer>> {
    // IMMEDIATE: the write lock now, waiting (busy timeout) for the store's other writes; a
    // deferred BEGIN that read first could not wait for the lock once another write committed.
    conn.execute_batch("BEGIN IMMEDIATE")?;
    match jobs_in(conn, batch, memo) {
        Ok(answers) => {
            let started = std::time::Instant::now();
            let committed = conn.execute_batch("COMMIT");
            slow("a group commit's COMMIT", started);
            if let Err(e) = committed {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e.into());
            }
            Ok(answers)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Each job of `batch` in its own savepoint, inside the open transaction.
fn jobs_in(conn: &Connection, batch: &mut [Queued], memo: &mut TermsMemo) -> Result<Vec<Answer>> {
    let together = accesses_together(conn, batch)?;
    let mut answers = Vec::with_capacity(batch.len());
    let mut open = false;
    for (i, queued) in batch.iter_mut().enumerate() {
        if together.contains(&i) {
            answers.push(Ok(Vec::new()));
            continue;
        }
        // The previous job's savepoint is released together with this one's start (the
        // COMMIT releases the last one).
        conn.execute_batch(if open {
            "RELEASE job; SAVEPOINT job"
        } else {
            "SAVEPOINT job"
        })?;
        open = true;
        let outcome = apply(conn, &mut queued.job, memo);
        memo.job_done(outcome.is_ok());
        if outcome.is_err() {
            // Fails (and fails the batch) when SQLite already rolled back the whole
            // transaction, as it does after some I/O errors.
            conn.execute_batch("ROLLBACK TO job")?;
        }
        answers.push(outcome);
    }
    Ok(answers)
}

/// Writes the access days of the batch's jobs that record nothing else (the first reads of a
/// day) in two statements for all of them, instead of a savepoint and two statements each: the
/// indexes of the jobs done. Nothing when there are fewer than two, or when the statements
/// fail (they are rolled back, and those jobs are then applied one by one like the others).
fn accesses_together(
    conn: &Connection,
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
                && j.write.is_none()
                && !j.access.is_empty();
            only.then_some((i, j.access.as_slice()))
        })
        .collect();
    if jobs.len() < 2 {
        return Ok(Default::default());
    }
    conn.execute_batch("SAVEPOINT accesses")?;
    let reads: Vec<crate::AccessRead> = jobs
        .iter()
        .flat_map(|(_, reads)| reads.iter().cloned())
        .collect();
    let done = changes::record_accesses_in(conn, &reads);
    if done.is_err() {
        conn.execute_batch("ROLLBACK TO accesses")?;
    }
    conn.execute_batch("RELEASE accesses")?;
    Ok(match done {
        Ok(()) => jobs.into_iter().map(|(i, _)| i).collect(),
        Err(_) => Default::default(),
    })
}

fn apply(conn: &Connection, job: &mut Job, memo: &mut TermsMemo) -> Answer {
    let changes = std::mem::take(&mut job.changes);
    match changes::plain_updates(&changes) {
        Some(records) => changes::update_records(conn, &records, memo)?,
        None => {
            for change in changes {
                changes::apply_change(conn, change, memo)?;
            }
        }
    }
    if let Some(write) = job.write.take() {
        write(conn)?;
    }
    changes::insert_outbox(conn, &job.outbox)?;
    changes::settle_outbox(conn, &job.settle)?;
    if !job.access.is_empty() {
        changes::record_accesses_in(conn, &job.access)?;
    }
    if let Some(retry) = &job.retry {
        changes::retry_in(conn, retry)?;
    }
    match &job.claim {
        Some(c) => changes::claim_in(conn, c),
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
                write: None,
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
        let mut writer = Writer::open(store.pools.file.clone()).unwrap();
        let answers = writer.commit_batch(&mut batch);
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
        let mut writer = Writer::open(store.pools.file.clone()).unwrap();
        let mut batch = vec![
            queued(vec![insert("a"), described("a", 1, "old")], Vec::new()),
            // Writes "new", then fails: rolled back.
            queued(vec![described("a", 2, "new"), update("a", 9)], Vec::new()),
        ];
        writer.commit_batch(&mut batch);
        assert_eq!(terms().await, ["old"]);
        let mut batch = vec![queued(vec![described("a", 2, "new")], Vec::new())];
        let answers = writer.commit_batch(&mut batch);
        assert!(answers[0].is_ok());
        assert_eq!(terms().await, ["new"]);
        // A change that keeps the terms keeps them.
        let mut batch = vec![queued(vec![described("a", 3, "new")], Vec::new())];
        writer.commit_batch(&mut batch);
        assert_eq!(terms().await, ["new"]);
    }

    /// A job that updates several secrets without touching versions (a delivered batch's
    /// replica statuses) makes them in one statement, with the same meaning as one by one:
    /// all of them, or, when any is stale, none.
    #[tokio::test]
    async fn several_plain_updates_are_all_or_nothing() {
        let (_dir, store) = open().await;
        let mut writer = Writer::open(store.pools.file.clone()).unwrap();
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
        let answers = writer.commit_batch(&mut batch);
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
        let mut writer = Writer::open(store.pools.file.clone()).unwrap();
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
        let answers = writer.commit_batch(&mut batch);
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
        let mut writer = Writer::open(store.pools.file.clone()).unwrap();
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
        writer.commit_batch(&mut setup);
        let mut batch = vec![
            access("a", 20),
            queued(vec![insert("c")], Vec::new()),
            access("b", 21),
            access("gone", 22),
        ];
        let answers = writer.commit_batch(&mut batch);
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

    /// A job whose statements panic fails with its batch, and the writer goes on: the next
    /// write commits, and nothing of the failed batch is in the store.
    #[tokio::test]
    async fn a_panicking_job_fails_its_batch_and_the_writer_goes_on() {
        let (_dir, store) = open().await;
        let writer = GroupCommitter::spawn(store.pools.file.clone()).unwrap();
        let failed = writer
            .commit(Job {
                changes: vec![insert("lost")],
                write: Some(Box::new(|_| panic!("a bug in a job"))),
                durable: true,
                ..Default::default()
            })
            .await;
        assert!(
            matches!(&failed, Err(StoreError::Backend(m)) if m.contains("failed on this write")),
            "{failed:?}"
        );
        writer
            .commit(Job {
                changes: vec![insert("kept")],
                durable: true,
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(
            store
                .load_secret_by_arn(&record("kept", 1).arn)
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            store
                .load_secret_by_arn(&record("lost", 1).arn)
                .await
                .unwrap()
                .is_none()
        );
    }

    /// Once the store has closed, a write is refused at once (it neither hangs nor reopens
    /// the file), and closing again is harmless.
    #[tokio::test]
    async fn a_write_after_close_is_refused() {
        let (_dir, store) = open().await;
        store.close().await;
        let refused = store.commit_with(vec![insert("late")], Vec::new()).await;
        assert!(
            matches!(&refused, Err(StoreError::Backend(m)) if m.contains("stopped")),
            "{refused:?}"
        );
        store.close().await;
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
