//! A node's cache of secrets over PostgreSQL that never serves a state older than the last
//! write acknowledged anywhere in the Region (issue 17).
//!
//! Several nodes write the same schema, so a node cannot know from its own writes when an
//! entry went stale (and PG-wire distributed databases have no LISTEN/NOTIFY to tell it).
//! Instead every hit is **validated**: the read asks the database for the secret's *stamp* —
//! its `row_version` (bumped by every change, in the change's transaction), its
//! `last_accessed_day` and its versions' `last_accessed_day`s (the access days are written
//! without a `row_version` bump) — and serves the cached state only if the stamp is the
//! cached one; otherwise it loads the secret whole and caches that (what a load returns is
//! cached from the secret's second load within a while, `crate::cache::Doorkeeper`).
//!
//! Why that is exact: the validating query is sent after the read began, and one statement
//! sees one snapshot taken when it starts, so every write acknowledged before the read began
//! is in that snapshot. If the stamp is unchanged there, so is everything a read returns.
//!
//! Why it is cheap: concurrent reads share one validating query (`WHERE arn = ANY($1)`, a
//! primary-key lookup per secret). A read waits for the next *round*: a round takes every
//! read queued when it starts, so a read never joins a query already sent (which may have
//! taken its snapshot before the read began). One round runs at a time (measured: two in
//! flight only split the batches and doubled PostgreSQL's work); under load each carries many
//! reads, so the database does a fraction of a query per read, and it
//! sends a stamp (a few numbers) instead of the secret's rows.
//!
//! A validation that fails (the database is unreachable, ...) is not an answer: the read then
//! loads the secret the usual way, which retries or reports the error.

use std::collections::HashMap;
use std::sync::Arc;

use quick_cache::Weighter;
use quick_cache::sync::Cache;
use sqlx::Row;
use sqlx::postgres::{PgConnection, PgPool};
use tokio::sync::{mpsc, oneshot};

use crate::Secret;
use crate::cache::{Doorkeeper, NameIndex, bounded_caches, secret_weight};

/// The most secrets one validating query names; a longer queue is served by several rounds.
const ROUND_MAX: usize = 512;

/// What changes whenever anything a read returns changes (see the module's text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Stamp {
    row_version: i64,
    last_accessed_day: Option<i64>,
    /// The versions' `last_accessed_day`s in `version_id` order (bytewise, as `COLLATE "C"`),
    /// `-` for none, comma-separated: the same text [`STAMPS`] computes.
    version_days: String,
}

impl Stamp {
    fn of(secret: &Secret) -> Stamp {
        let mut versions: Vec<_> = secret.versions.iter().collect();
        versions.sort_by(|a, b| a.version_id.cmp(&b.version_id));
        let days: Vec<String> = versions
            .iter()
            .map(|v| {
                v.last_accessed_day
                    .map_or_else(|| "-".into(), |d| d.to_string())
            })
            .collect();
        Stamp {
            row_version: secret.record.row_version,
            last_accessed_day: secret.record.last_accessed_day,
            version_days: days.join(","),
        }
    }
}

/// The stamps of the named secrets that exist, in one statement (one snapshot).
const STAMPS: &str = "SELECT s.arn, s.row_version, s.last_accessed_day, \
     coalesce((SELECT string_agg(coalesce(v.last_accessed_day::text, '-'), ',' \
         ORDER BY v.version_id COLLATE \"C\") \
         FROM secret_versions v WHERE v.secret_arn = s.arn), '') AS version_days \
     FROM secrets s WHERE s.arn = ANY($1)";

struct Cached {
    secret: Secret,
    stamp: Stamp,
}

#[derive(Clone, Copy)]
struct CachedBytes;

impl Weighter<String, Arc<Cached>> for CachedBytes {
    fn weight(&self, _arn: &String, cached: &Arc<Cached>) -> u64 {
        secret_weight(&cached.secret) + 32 + cached.stamp.version_days.len() as u64
    }
}

/// A read waiting for its round: the secret's stamp in the round's snapshot (`None`: the secret
/// does not exist), or `Err` when the round's query failed.
type Waiter = (String, oneshot::Sender<Result<Option<Stamp>, ()>>);

pub(super) struct ReadCache {
    by_arn: Cache<String, Arc<Cached>, CachedBytes>,
    /// Names never change for an ARN, so this needs no validation of its own: a hit here only
    /// picks the ARN whose stamp is then checked.
    arn_by_name: NameIndex,
    queue: mpsc::UnboundedSender<Waiter>,
    /// Which loads are remembered: a secret's second load within a while, as in the SQLite
    /// cache (`crate::cache::Doorkeeper`).
    doorkeeper: Doorkeeper,
    /// The bound it was made with.
    pub(super) max_bytes: u64,
}

impl ReadCache {
    /// A cache of about `max_bytes` whose rounds query `pool`. Must be called inside a Tokio
    /// runtime: the rounds run in a task, which ends when the cache is dropped.
    pub(super) fn new(pool: PgPool, max_bytes: u64) -> ReadCache {
        let (queue, rx) = mpsc::unbounded_channel();
        tokio::spawn(rounds(pool.clone(), rx));
        let (by_arn, arn_by_name, doorkeeper) = bounded_caches(max_bytes, CachedBytes);
        ReadCache {
            by_arn,
            arn_by_name,
            queue,
            doorkeeper,
            max_bytes,
        }
    }

    /// The ARN last seen under this name, if any (to be validated like any hit).
    pub(super) fn arn_of(&self, account_id: &str, name: &str) -> Option<String> {
        self.arn_by_name
            .get(&(account_id.to_string(), name.to_string()))
    }

    /// The cached state of `arn` if it is still the stored one, checked in a round that began
    /// after this call. `None`: not cached, changed, gone, or the check failed — load it.
    pub(super) async fn validated(&self, arn: &str) -> Option<Secret> {
        let cached = self.by_arn.get(arn)?;
        let (tx, rx) = oneshot::channel();
        self.queue.send((arn.to_string(), tx)).ok()?;
        match rx.await {
            Ok(Ok(Some(stamp))) if stamp == cached.stamp => Some(cached.secret.clone()),
            Ok(Ok(_)) => {
                self.by_arn.remove(arn);
                None
            }
            _ => None,
        }
    }

    /// Whether a load of the secret `key` names (its ARN, or its account and name) is to be
    /// remembered: the doorkeeper decides before the load, as in the SQLite cache, so a load it
    /// does not admit may take only the versions its reader needs.
    pub(super) fn admit<K: std::hash::Hash + ?Sized>(&self, key: &K) -> bool {
        self.doorkeeper.admit(key)
    }

    /// Remembers what a whole load the doorkeeper admitted returned: any later hit on it is
    /// validated first, so this may be put at any time, even after a newer state was stored.
    pub(super) fn put(&self, secret: &Secret) {
        let r = &secret.record;
        self.arn_by_name
            .insert((r.account_id.clone(), r.name.clone()), r.arn.clone());
        let cached = Cached {
            stamp: Stamp::of(secret),
            secret: secret.clone(),
        };
        self.by_arn.insert(r.arn.clone(), Arc::new(cached));
    }
}

/// The round runner: takes every waiting read, asks for their stamps in one query,
/// answers them; until the cache (the queue's sender) is dropped.
///
/// It keeps a connection of its own, outside the pool (a round never waits for a connection,
/// and the pool's are left to the other queries), on which the validating statement runs with
/// a generic plan: a round is a handful of primary-key lookups, and planning it anew each time
/// (what PostgreSQL does for an array parameter) cost more than running it.
async fn rounds(pool: PgPool, mut rx: mpsc::UnboundedReceiver<Waiter>) {
    let mut conn: Option<PgConnection> = None;
    loop {
        let Some(first) = rx.recv().await else {
            return;
        };
        let mut round = vec![first];
        // Let the tasks that are ready run first: concurrent reads queue theirs and share this
        // round instead of starting the next.
        tokio::task::yield_now().await;
        while round.len() < ROUND_MAX {
            match rx.try_recv() {
                Ok(waiter) => round.push(waiter),
                Err(_) => break,
            }
        }
        let mut arns: Vec<&str> = round.iter().map(|(arn, _)| arn.as_str()).collect();
        arns.sort_unstable();
        arns.dedup();
        let answer = stamps(&pool, &mut conn, &arns).await;
        if answer.is_err() {
            conn = None; // a new one next round
        }
        for (arn, tx) in round {
            let reply = match &answer {
                Ok(found) => Ok(found.get(&arn).cloned()),
                Err(()) => Err(()),
            };
            // The reader may have gone (a cancelled request): nothing to do.
            let _ = tx.send(reply);
        }
    }
}

async fn stamps(
    pool: &PgPool,
    conn: &mut Option<PgConnection>,
    arns: &[&str],
) -> Result<HashMap<String, Stamp>, ()> {
    let failed = |e: sqlx::Error| tracing::debug!("validating cached secrets failed: {e}");
    let conn = match conn {
        Some(conn) => conn,
        None => {
            let mut fresh = pool.acquire().await.map_err(failed)?.detach();
            sqlx::query("SET plan_cache_mode = force_generic_plan")
                .execute(&mut fresh)
                .await
                .map_err(failed)?;
            conn.insert(fresh)
        }
    };
    let rows = sqlx::query(STAMPS)
        .bind(arns)
        .fetch_all(&mut *conn)
        .await
        .map_err(failed)?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get::<String, _>("arn")?,
                Stamp {
                    row_version: row.try_get("row_version")?,
                    last_accessed_day: row.try_get("last_accessed_day")?,
                    version_days: row.try_get("version_days")?,
                },
            ))
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(failed)
}
