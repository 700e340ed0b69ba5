//! The appender: fail closed, and a response never leaves before its record is in the file.
//!
//! Request tasks serialise their record in parallel. Without fsync (the default), the records
//! are written by the request tasks themselves, combined: a task queues its record and, if no
//! other task is writing or about to write, becomes the *leader*. The leader first yields once
//! to its runtime ([`tokio::task::yield_now`]: it is polled again only after the other tasks
//! ready on its thread have run and the I/O driver was polled), so that the requests served in
//! the same round queue their records too; then it writes everything queued with one
//! `write(2)` into the page cache (it yields again, up to [`LEAD_ROUNDS`] times, while a round
//! brings more records). A task that finds a leader awaits its record's result
//! without blocking its thread (the leader looks at the queue again after writing, so nothing
//! is left behind). So concurrent requests share one system call, and their responses leave
//! together: under load, one write per scheduler round instead of one per request (see
//! docs/benchmarks.md, "The audit log written once per round"). A leader that is cancelled
//! while it yields (its request timed out, its client went away) writes in its `Drop`, so the
//! records queued behind it are never stranded. No hand-off to another thread, and no thread
//! ever sleeps on the lock (a blocking mutex cost two context switches per contended record
//! on 2 cores). With `fsync = true`, records go over a
//! channel to a writer thread,
//! which drains whatever is queued, chains it in queue order, writes the group with one
//! `write(2)` and one `fdatasync`, and only then answers every request of the group (group
//! commit). Durability rule: *written to the file* (the kernel's page cache: survives a crash
//! of Coffer, not of the machine); with fsync, on disk.
//!
//! A failed write answers every record of the group with an error (the request then fails)
//! and cuts the file back to its last complete record. If even that fails, the log is
//! *poisoned*: its state on disk is unknown, so every later record fails too (and the HTTP
//! layer refuses requests before running them) until Coffer is restarted.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot};

use crate::chain;
use crate::record::Record;

/// Most records chained and written in one group.
const MAX_GROUP: usize = 4096;

/// Most rounds a leader yields for (see the module docs): it stops early after a round that
/// brought no record. Each yield also lets its thread poll for I/O, so the requests that
/// arrived meanwhile are read and served in the same group; measured on 2 cores under wrk,
/// three rounds instead of one gave +15-25% GetSecretValue at 64 connections and halved p99
/// (docs/benchmarks.md, "The audit log written once per round").
const LEAD_ROUNDS: usize = 3;

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// `fdatasync` every group before answering its requests.
    pub fsync: bool,
}

/// Why a record could not be written. Never carries record contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditError(pub String);

impl std::fmt::Display for AuditError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AuditError {}

struct Job {
    canonical: Vec<u8>,
    done: oneshot::Sender<Result<(), AuditError>>,
}

/// An open audit log. Cheap to share (`Arc`); the writer thread stops when the last clone is
/// dropped, after writing everything queued.
pub struct AuditLog {
    path: PathBuf,
    mode: Mode,
    poisoned: Arc<AtomicBool>,
    /// Groups written (one `write(2)` each): records / writes is the grouping achieved.
    writes: Arc<AtomicU64>,
}

/// Without fsync, the request tasks write the records themselves, combined ([`Combined`]).
/// With fsync, records go to the writer thread, which syncs once per group of concurrent
/// records.
enum Mode {
    Inline(Combined),
    Thread(mpsc::UnboundedSender<Job>),
}

/// Records written by whichever request task finds no other writing (flat combining).
struct Combined {
    queue: std::sync::Mutex<Queue>,
    /// The writer and its buffer, used only by the task that set [`Queue::writing`].
    writer: std::sync::Mutex<(Writer, Vec<u8>)>,
}

#[derive(Default)]
struct Queue {
    /// Records waiting for a writer, in the order they will be chained.
    jobs: Vec<Job>,
    /// A task is writing or about to write (the leader): it takes the queue again before it
    /// stops, so a record queued now is written by it. Set and cleared under the queue's lock, together with the look at `jobs`,
    /// so no record is ever left behind.
    writing: bool,
}

impl Combined {
    /// Queues `job`. True when no task is writing or about to write: the caller is the leader
    /// and must then call [`write_queued`](Self::write_queued) (through a [`Lead`]).
    fn enqueue(&self, job: Job) -> bool {
        let mut queue = lock(&self.queue);
        queue.jobs.push(job);
        if queue.writing {
            return false;
        }
        queue.writing = true;
        true
    }

    /// The leader's write: everything queued, until the queue is empty. Never waits for
    /// another task's write.
    fn write_queued(&self) {
        let mut guard = self.writer.lock().unwrap_or_else(|poisoned| {
            // A task panicked while writing: what reached the file is unknown, so fail closed,
            // as after a write that could not be undone.
            let guard = poisoned.into_inner();
            guard.0.poisoned.store(true, Ordering::Relaxed);
            guard
        });
        let (writer, buf) = &mut *guard;
        let mut unwinding = Unwinding {
            combined: self,
            poisoned: writer.poisoned.clone(),
            armed: true,
        };
        loop {
            let group = {
                let mut queue = lock(&self.queue);
                if queue.jobs.is_empty() {
                    queue.writing = false;
                    unwinding.armed = false;
                    return;
                }
                std::mem::take(&mut queue.jobs)
            };
            writer.write_jobs(group, buf);
        }
    }
}

/// The leader's duty to write, done when it is dropped: after its yield, or when its task is
/// cancelled during the yield (the records queued behind it must not wait forever).
struct Lead<'a>(&'a Combined);

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        self.0.write_queued();
    }
}

/// Should the writing task panic, the records queued behind it fail (the log is poisoned)
/// instead of waiting forever for a writer that is gone.
struct Unwinding<'a> {
    combined: &'a Combined,
    poisoned: Arc<AtomicBool>,
    armed: bool,
}

impl Drop for Unwinding<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        self.poisoned.store(true, Ordering::Relaxed);
        let mut queue = lock(&self.combined.queue);
        queue.writing = false;
        for job in queue.jobs.drain(..) {
            let _ = job.done.send(Err(poisoned_error()));
        }
    }
}

/// A mutex's data even if a thread panicked holding it (the queue is a plain list).
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Opens (creating, mode 0600) the log at `path` and continues its chain: the last
    /// record's hash is read from the end of the file. A last line without its newline (a
    /// crash in the middle of a write: no response was sent for it) is cut off. A last line
    /// that is not a chained record is refused: Coffer must not extend a log it cannot link to.
    ///
    /// Something other than a regular file (a FIFO, `/dev/full`) is written to without being
    /// read.
    pub fn open(path: &Path, options: Options) -> Result<AuditLog, AuditError> {
        let err = |what: &str, e: std::io::Error| {
            AuditError(format!(
                "cannot {what} the audit log {}: {e}",
                path.display()
            ))
        };
        let mut file = {
            let mut o = OpenOptions::new();
            o.read(true).append(true).create(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
            o.open(path).map_err(|e| err("open", e))?
        };
        // One writer per log: a second `coffer serve` on the same data directory, or an operator
        // command (`coffer resource-policy remove`) while the node runs, would fork the chain.
        // The lock (flock) lasts as long as the file is open; a file system without locks is
        // used without one.
        if let Err(std::fs::TryLockError::WouldBlock) = file.try_lock() {
            return Err(AuditError(format!(
                "the audit log {} is in use by another process (a running `coffer serve`?); stop it first",
                path.display()
            )));
        }
        let meta = file.metadata().map_err(|e| err("read", e))?;
        let (head, len) = if meta.is_file() {
            let (head, len) = last_hash(&mut file).map_err(|e| match e {
                Tail::Io(e) => err("read", e),
                Tail::Bad(why) => AuditError(format!(
                    "the audit log {} does not end with a Coffer audit record ({why}); run `coffer audit verify` on it, and move it away to start a new log",
                    path.display()
                )),
            })?;
            if len < meta.len() {
                file.set_len(len).map_err(|e| err("repair", e))?;
            }
            (head, len)
        } else {
            (chain::GENESIS, 0)
        };
        let poisoned = Arc::new(AtomicBool::new(false));
        let writes = Arc::new(AtomicU64::new(0));
        let writer = Writer {
            writes: writes.clone(),
            file,
            head,
            len,
            regular: meta.is_file(),
            options,
            poisoned: poisoned.clone(),
            path: path.to_path_buf(),
        };
        let mode = if options.fsync {
            let (queue, rx) = mpsc::unbounded_channel();
            std::thread::Builder::new()
                .name("coffer-audit".into())
                .spawn(move || writer.run(rx))
                .map_err(|e| err("start the writer of", e))?;
            Mode::Thread(queue)
        } else {
            Mode::Inline(Combined {
                queue: std::sync::Mutex::new(Queue::default()),
                writer: std::sync::Mutex::new((writer, Vec::with_capacity(4096))),
            })
        };
        Ok(AuditLog {
            path: path.to_path_buf(),
            mode,
            poisoned,
            writes,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many groups of records were written so far (one `write(2)` each).
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// True once a failed write could not be undone: every later record will fail.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Relaxed)
    }

    /// Chains and writes one record; resolves once it is in the file (see the module docs).
    pub async fn append(&self, record: &Record) -> Result<(), AuditError> {
        self.append_canonical(record.to_canonical_json()).await
    }

    /// [`append`](Self::append) for a record already serialised (a JSON object).
    pub async fn append_canonical(&self, canonical: Vec<u8>) -> Result<(), AuditError> {
        if self.is_poisoned() {
            return Err(poisoned_error());
        }
        let (done, wait) = oneshot::channel();
        match &self.mode {
            Mode::Inline(combined) => {
                if combined.enqueue(Job { canonical, done }) {
                    let lead = Lead(combined);
                    // The other requests of this round queue their records meanwhile; while a
                    // round brings more, one more round (bounded: a record waits at most
                    // LEAD_ROUNDS rounds of its thread).
                    let mut queued = 1;
                    for _ in 0..LEAD_ROUNDS {
                        tokio::task::yield_now().await;
                        let now = lock(&combined.queue).jobs.len();
                        if now == queued {
                            break;
                        }
                        queued = now;
                    }
                    drop(lead);
                }
            }
            Mode::Thread(queue) => queue
                .send(Job { canonical, done })
                .map_err(|_| AuditError("the audit log writer has stopped".into()))?,
        }
        wait.await
            .unwrap_or_else(|_| Err(AuditError("the audit log writer has stopped".into())))
    }
}

fn poisoned_error() -> AuditError {
    AuditError(
        "an earlier write to the audit log failed and could not be undone; restart Coffer once the log is writable".into(),
    )
}

struct Writer {
    writes: Arc<AtomicU64>,
    file: File,
    head: [u8; 32],
    /// Length of the file up to its last complete record.
    len: u64,
    regular: bool,
    options: Options,
    poisoned: Arc<AtomicBool>,
    path: PathBuf,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::UnboundedReceiver<Job>) {
        let mut group: Vec<Job> = Vec::new();
        let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
        while let Some(first) = rx.blocking_recv() {
            group.push(first);
            while group.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(job) => group.push(job),
                    Err(_) => break,
                }
            }
            self.write_jobs(std::mem::take(&mut group), &mut buf);
            if buf.capacity() > 16 << 20 {
                buf = Vec::with_capacity(1 << 20);
            }
        }
    }

    /// Writes the jobs' records as one group and answers each with the result.
    fn write_jobs(&mut self, mut jobs: Vec<Job>, buf: &mut Vec<u8>) {
        let records: Vec<Vec<u8>> = jobs
            .iter_mut()
            .map(|job| std::mem::take(&mut job.canonical))
            .collect();
        let result = self.write_group(&records, buf);
        for job in jobs {
            // The request may have gone (a cancelled task): its record is written all the same.
            let _ = job.done.send(result.clone());
        }
    }

    fn write_group(&mut self, group: &[Vec<u8>], buf: &mut Vec<u8>) -> Result<(), AuditError> {
        if self.poisoned.load(Ordering::Relaxed) {
            return Err(poisoned_error());
        }
        buf.clear();
        let mut head = self.head;
        for canonical in group {
            head = chain::write_line(buf, &head, canonical);
        }
        let written = self.file.write_all(buf).and_then(|()| {
            if self.options.fsync {
                self.file.sync_data()
            } else {
                Ok(())
            }
        });
        match written {
            Ok(()) => {
                self.writes.fetch_add(1, Ordering::Relaxed);
                self.head = head;
                self.len += buf.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Never the record's contents: only the path and the OS error.
                let undone = self.regular && self.file.set_len(self.len).is_ok();
                if !undone {
                    self.poisoned.store(true, Ordering::Relaxed);
                }
                // stderr, not `tracing`: this crate has no logger, and this must be seen.
                eprintln!(
                    "coffer: cannot write the audit log {}: {e}{}",
                    self.path.display(),
                    if undone {
                        "; the requests of this group fail"
                    } else {
                        "; the log cannot be repaired, so every request fails until Coffer restarts"
                    }
                );
                Err(AuditError(format!("cannot write the audit log: {e}")))
            }
        }
    }
}

enum Tail {
    Io(std::io::Error),
    Bad(String),
}

/// The hash of the last complete record and the length of the file up to it.
fn last_hash(file: &mut File) -> Result<([u8; 32], u64), Tail> {
    let size = file.seek(SeekFrom::End(0)).map_err(Tail::Io)?;
    if size == 0 {
        return Ok((chain::GENESIS, 0));
    }
    // Read backwards in chunks until the last complete line is in `tail`.
    let mut tail: Vec<u8> = Vec::new();
    let mut start = size;
    loop {
        let chunk = (64 * 1024u64).min(start);
        let from = start.saturating_sub(chunk);
        let mut piece = vec![0u8; (start - from) as usize];
        file.seek(SeekFrom::Start(from)).map_err(Tail::Io)?;
        file.read_exact(&mut piece).map_err(Tail::Io)?;
        piece.extend_from_slice(&tail);
        tail = piece;
        start = from;
        // The end of the last complete line, and the newline before it (or the file's start).
        if let Some(end) = tail.iter().rposition(|&b| b == b'\n') {
            let line_start = tail[..end].iter().rposition(|&b| b == b'\n');
            if line_start.is_some() || start == 0 {
                let s = line_start.map(|i| i + 1).unwrap_or(0);
                let parsed = chain::parse_line(&tail[s..end]).map_err(Tail::Bad)?;
                if chain::link(&parsed.previous, &parsed.canonical) != parsed.hash {
                    return Err(Tail::Bad("its last record does not match its hash".into()));
                }
                return Ok((parsed.hash, start + end as u64 + 1));
            }
        } else if start == 0 {
            // No complete line at all: a first write that was cut short.
            return Ok((chain::GENESIS, 0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;

    fn record(name: &str) -> Record {
        Record::new(
            "secretsmanager.amazonaws.com".into(),
            name.into(),
            false,
            "r".into(),
        )
    }

    fn verify(path: &Path) -> Result<chain::Summary, chain::Broken> {
        chain::verify(std::io::BufReader::new(File::open(path).unwrap())).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn records_are_chained_across_reopens_and_concurrent_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        {
            let log = Arc::new(AuditLog::open(&path, Options::default()).unwrap());
            let mut tasks = Vec::new();
            for i in 0..200 {
                let log = log.clone();
                tasks.push(tokio::spawn(async move {
                    log.append(&record(&format!("Op{i}"))).await
                }));
            }
            for t in tasks {
                t.await.unwrap().unwrap();
            }
        }
        assert_eq!(verify(&path).unwrap().records, 200);
        // A restart continues the chain instead of starting a second one.
        {
            let log = AuditLog::open(&path, Options { fsync: true }).unwrap();
            log.append(&record("AfterRestart")).await.unwrap();
        }
        let s = verify(&path).unwrap();
        assert_eq!(s.records, 201);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.lines().last().unwrap().contains("AfterRestart"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    /// Many tasks on two threads appending at once: every record is written exactly once, in
    /// one chain, and every append returns (a record queued while another task was writing is
    /// written by that task, never left behind).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn records_appended_at_once_are_all_written_in_one_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = Arc::new(AuditLog::open(&path, Options::default()).unwrap());
        let mut tasks = Vec::new();
        for t in 0..64 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..250 {
                    log.append(&record(&format!("Op{t}x{i}"))).await.unwrap();
                }
            }));
        }
        let all = async {
            for t in tasks {
                t.await.unwrap();
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(60), all)
            .await
            .expect("every append returns");
        drop(log);
        assert_eq!(verify(&path).unwrap().records, 64 * 250);
        let text = std::fs::read_to_string(&path).unwrap();
        let mut names: Vec<&str> = text
            .lines()
            .map(|l| {
                let at = l.find("\"eventName\":\"").unwrap() + 13;
                &l[at..at + l[at..].find('"').unwrap()]
            })
            .collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 64 * 250, "a record was written twice");
    }

    /// Requests served in the same round of a thread share one `write(2)`: the first to queue
    /// its record yields before writing, so the others' records join it. (Before, each task
    /// that found no other writing wrote alone: 16 writes here.)
    #[tokio::test(flavor = "current_thread")]
    async fn records_of_one_round_share_one_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = Arc::new(AuditLog::open(&path, Options::default()).unwrap());
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let log = log.clone();
                tokio::spawn(async move { log.append(&record(&format!("Op{i}"))).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(log.writes(), 1);
        assert_eq!(verify(&path).unwrap().records, 16);
        // Alone, a record is written at once: no other task to wait for.
        log.append(&record("Alone")).await.unwrap();
        assert_eq!(log.writes(), 2);
    }

    /// A leader cancelled while it yields (its request timed out) still writes what was
    /// queued behind it: the other requests are answered, not stranded.
    #[tokio::test(flavor = "current_thread")]
    async fn a_cancelled_leader_writes_the_records_queued_behind_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = Arc::new(AuditLog::open(&path, Options::default()).unwrap());
        let first = record("Leader");
        let mut lead = Box::pin(log.append(&first));
        let polled = std::future::poll_fn(|cx| std::task::Poll::Ready(lead.as_mut().poll(cx)));
        assert!(
            polled.await.is_pending(),
            "the leader yields before writing"
        );
        let follower = {
            let log = log.clone();
            tokio::spawn(async move { log.append(&record("Follower")).await })
        };
        // The follower queues its record behind the leader and waits.
        tokio::task::yield_now().await;
        assert!(!follower.is_finished());
        drop(lead);
        tokio::time::timeout(std::time::Duration::from_secs(5), follower)
            .await
            .expect("the follower's record was written")
            .unwrap()
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("\"Leader\"") && text.contains("\"Follower\""),
            "{text}"
        );
        assert_eq!(verify(&path).unwrap().records, 2);
    }

    #[tokio::test]
    async fn a_line_cut_short_by_a_crash_is_dropped_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        {
            let log = AuditLog::open(&path, Options::default()).unwrap();
            log.append(&record("One")).await.unwrap();
            log.append(&record("Two")).await.unwrap();
        }
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"eventVersion\":\"1.08\",\"half").unwrap();
        drop(f);
        {
            let log = AuditLog::open(&path, Options::default()).unwrap();
            log.append(&record("Three")).await.unwrap();
        }
        assert_eq!(verify(&path).unwrap().records, 3);
    }

    #[tokio::test]
    async fn a_log_that_does_not_end_with_a_record_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        std::fs::write(&path, "hello\n").unwrap();
        let e = AuditLog::open(&path, Options::default()).unwrap_err();
        assert!(
            e.0.contains("does not end with a Coffer audit record"),
            "{e}"
        );
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_full_device_fails_the_record() {
        let log = AuditLog::open(Path::new("/dev/full"), Options::default()).unwrap();
        let e = log.append(&record("One")).await.unwrap_err();
        assert!(e.0.contains("cannot write the audit log"), "{e}");
        // The write could not be undone on a device: every later record fails at once.
        assert!(log.is_poisoned());
        assert!(log.append(&record("Two")).await.is_err());
    }

    #[tokio::test]
    async fn a_long_last_record_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        {
            let log = AuditLog::open(&path, Options::default()).unwrap();
            log.append(&record("Short")).await.unwrap();
            let mut long = record("Long");
            long.request_parameters = serde_json::json!({"Policy": "x".repeat(200_000)});
            log.append(&long).await.unwrap();
        }
        {
            let log = AuditLog::open(&path, Options::default()).unwrap();
            log.append(&record("Next")).await.unwrap();
        }
        assert_eq!(verify(&path).unwrap().records, 3);
    }
}
