//! A read-through cache of secrets in front of a [`Store`], for the read path
//! (GetSecretValue, DescribeSecret). It holds only what the store holds — ciphertext, never a
//! plaintext value.
//!
//! It is exact when this process is the only writer of the store (the embedded SQLite default):
//! every change goes through [`Store::commit_with`] or [`Store::record_access`] here. A
//! committed change is written through: the cached secret becomes the committed state (so the
//! replication worker's read right after a write, and the next write's read, are hits),
//! computed the way the store applies the change; when the cached state is not the one the
//! change was based on (`expected_row_version`), or the commit failed, the entry is dropped
//! instead. A reader that missed puts what it loaded into the cache only if no change to that
//! secret began since its read began (a reader that loaded the old state must not put it back
//! after a writer changed it). The check is per secret, so a steady stream of writes to other
//! secrets does not keep a secret out of the cache; a read by a name the cache has never seen
//! (its ARN unknown before the load) falls back to "no change at all began since".
//!
//! While a commit is in flight, its secrets are out of the cache (their old entries are set
//! aside for the write-through) and no reader puts them back: the store may have committed
//! before the commit returns to its writer (a group commit answers every job of a batch at
//! once), and a reader that already sees its effects, such as the replication worker that
//! claimed the outbox row written with it, must not be served the state before it. The worker
//! reads through [`Store::load_secret_settled`], which first waits (briefly) for those commits
//! to return, so its read is a hit on the written-through state instead of a store read.
//!
//! A secret a reader loaded is cached only from its second load within a short while
//! ([`Doorkeeper`]): under reads spread over far more secrets than the cache holds (a Region of
//! a million secrets read at random), caching every miss cost more than every hit it bought
//! (each insert evicted another secret, and the cache's memory was churned at the rate of the
//! reads); a secret read again soon, or written (written through), is cached as before.
//!
//! A read's LastAccessedDate ([`Store::record_access`]) is written behind the read
//! ([`access_days`]): every secret the cache puts in an entry or hands out from the store
//! carries the days recorded and not yet written, and an entry present when a day is recorded
//! is updated in place, so the next read of the secret stays a hit.

mod access_days;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use quick_cache::Weighter;
use quick_cache::sync::Cache;

use access_days::AccessDays;

use crate::{
    KmsAliasRecord, KmsChange, KmsKeyRecord, OutboxEntry, OutboxRow, Result, Secret, SecretChange,
    Store, Versions,
};

/// The default of `cache_max_bytes`: sized for a small machine (a 1 GiB VM still has room for
/// everything else); about 100,000 secrets of a few hundred bytes with three versions.
pub const DEFAULT_CACHE_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// What a cached secret costs in memory, roughly: its strings and byte strings plus a fixed
/// overhead per record (the struct, the map entry, the `Arc`). Never 0 (a weightless entry
/// would never be evicted).
#[derive(Clone, Copy)]
struct SecretBytes;

fn opt_len(s: &Option<String>) -> u64 {
    s.as_ref().map_or(0, |s| s.len() as u64)
}

/// The cache's estimate of the bytes a secret takes in memory.
pub fn secret_weight(secret: &Secret) -> u64 {
    let r = &secret.record;
    let tags: u64 = r
        .tags
        .iter()
        .flatten()
        .map(|t| 48 + t.key.len() as u64 + t.value.len() as u64)
        .sum();
    let versions: u64 = secret
        .versions
        .iter()
        .map(|v| {
            160 + v.secret_arn.len() as u64
                + v.version_id.len() as u64
                + v.stages.iter().map(|s| 24 + s.len() as u64).sum::<u64>()
                + opt_len(&v.kms_key_arn)
                + v.wrapped_data_key.as_ref().map_or(0, |b| b.len() as u64)
                + v.ciphertext.as_ref().map_or(0, |b| b.len() as u64)
        })
        .sum();
    // The key (the ARN again) and the record's fixed part.
    256 + 2 * r.arn.len() as u64
        + r.account_id.len() as u64
        + r.name.len() as u64
        + opt_len(&r.description)
        + opt_len(&r.kms_key_id)
        + opt_len(&r.resource_policy)
        + opt_len(&r.rotation)
        + opt_len(&r.replication)
        + tags
        + versions
}

impl Weighter<String, Arc<Secret>> for SecretBytes {
    fn weight(&self, _arn: &String, secret: &Arc<Secret>) -> u64 {
        secret_weight(secret)
    }
}

/// The weight of an (account, name) -> ARN entry.
#[derive(Clone, Copy)]
pub(crate) struct NameBytes;

impl Weighter<(String, String), String> for NameBytes {
    fn weight(&self, key: &(String, String), arn: &String) -> u64 {
        96 + (key.0.len() + key.1.len() + arn.len()) as u64
    }
}

/// The share of `cache_max_bytes` the (account, name) -> ARN index may use.
const NAME_SHARE: u64 = 8;

/// (account, name) -> ARN: names never change for an ARN.
pub(crate) type NameIndex = Cache<(String, String), String, NameBytes>;

/// The caches of one Region out of its bound `max_bytes`: the secrets by ARN (weighed by
/// `weighter`), the (account, name) -> ARN index ([`NAME_SHARE`] of the bound) and the
/// [`Doorkeeper`] sized to the secrets' part. For [`CachedStore`] and the PostgreSQL read
/// cache, which hold different values per secret.
pub(crate) fn bounded_caches<V, W>(
    max_bytes: u64,
    weighter: W,
) -> (Cache<String, V, W>, NameIndex, Doorkeeper)
where
    V: Clone,
    W: Weighter<String, V> + Clone,
{
    let names = max_bytes / NAME_SHARE;
    let secrets = max_bytes - names;
    (
        Cache::with_weighter((secrets / 2048).max(16) as usize, secrets.max(1), weighter),
        Cache::with_weighter((names / 160).max(16) as usize, names.max(1), NameBytes),
        Doorkeeper::for_max_bytes(secrets),
    )
}

/// Which secrets a reader that missed may cache: those loaded from the store before, recently.
///
/// Each slot remembers (a hash of) the last secret loaded whose hash falls in it. A load of a
/// secret its slot remembers is admitted; any other load only takes the slot. So a secret read
/// twice within about as many loads as there are slots is cached from its second read, and
/// reads spread uniformly over many more secrets than the cache holds mostly cache nothing.
/// Under uniform reads of N secrets, about slots / (N + slots) of the loads are admitted (a
/// secret's two reads are that often close enough): 6% of a million with the default bound, so
/// the cache still fills, over about a minute, and then churns at a twentieth of the reads'
/// rate instead of at their rate. Chosen over caching every load (the cache's behaviour
/// before) by measurement: random GetSecretValue over a million secrets, 64 MiB cache, 60 s
/// runs, 17.5–18.2k → 18.3–19.9k req/s, 77–81 → 65–74 µs of server CPU per read
/// (docs/benchmarks.md, "Reads admitted to the cache"). Writes are not subject to it: a
/// committed change is written through as before, to a secret that is cached.
pub(crate) struct Doorkeeper {
    hasher: RandomState,
    slots: Box<[AtomicU64]>,
}

impl Doorkeeper {
    /// About one slot per KiB of the cache's bound (a secret with a value weighs about one to
    /// two): 65,536 slots (512 KiB) for the default 64 MiB.
    pub(crate) fn for_max_bytes(max_bytes: u64) -> Doorkeeper {
        let slots = (max_bytes / 1024).clamp(1024, 1 << 22).next_power_of_two() as usize;
        Doorkeeper {
            hasher: RandomState::new(),
            slots: (0..slots).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Whether the secret `key` names (its ARN, or for [`CachedStore`]'s reads by name its
    /// account and name) was loaded recently (then it may be cached); remembers it either way.
    pub(crate) fn admit<K: std::hash::Hash + ?Sized>(&self, key: &K) -> bool {
        // Never 0, the empty slot; the slot is chosen by the high bits.
        let hash = self.hasher.hash_one(key) | 1;
        let slot = (hash >> 32) as usize & (self.slots.len() - 1);
        self.slots[slot].swap(hash, Ordering::Relaxed) == hash
    }
}

/// A bounded read-through cache: entries are evicted by recency and frequency (quick_cache's
/// CLOCK-Pro) when their estimated bytes reach the bound, so memory is bounded by
/// configuration, not by the number of secrets, and a working set larger than the cache
/// keeps its hot part instead of starting over.
pub struct CachedStore {
    inner: Arc<dyn Store>,
    by_arn: Cache<String, Arc<Secret>, SecretBytes>,
    /// Names never change for an ARN, so this needs no invalidation beyond a miss on
    /// `by_arn`.
    arn_by_name: NameIndex,
    /// Held while entries are changed, so a change and a reader's insert never interleave;
    /// hits read the caches without it.
    state: Mutex<State>,
    /// Told whenever commits end, for [`Store::load_secret_settled`].
    settled: tokio::sync::Notify,
    /// KMS aliases, which every write under a default key resolves.
    aliases: Mutex<Aliases>,
    /// Reads' access days not yet written to `inner`.
    days: Arc<AccessDays>,
    /// Which loads readers may cache.
    doorkeeper: Doorkeeper,
}

/// The KMS aliases read, until any KMS change: every KMS change goes through this store
/// (`commit_kms_with`, `create_kms_key`), and empties the map when it begins and when it ends;
/// while one is in flight nothing is served from the map or put in it. Aliases that do not
/// exist are not remembered. At most as many entries as the Region has aliases.
#[derive(Default)]
struct Aliases {
    generation: u64,
    in_flight: usize,
    map: HashMap<(String, String), KmsAliasRecord>,
}

impl Aliases {
    fn changing(&mut self, begins: bool) {
        if begins {
            self.in_flight += 1;
        } else {
            self.in_flight -= 1;
        }
        self.generation += 1;
        self.map.clear();
    }
}

#[derive(Default)]
struct State {
    /// Counts changes.
    generation: u64,
    /// The secrets of the commits in flight (ARN -> how many): readers do not cache them.
    in_flight: HashMap<String, usize>,
    /// The secrets in flight whose commits overlapped (one began while another was in flight).
    /// None of those commits writes through: their answers may reach the cache in another
    /// order than the store committed them, and an earlier one's state, put last, would be
    /// served after the later one was acknowledged. Cleared when the last of them ends.
    overlapped: HashSet<String>,
    /// The secrets readers are loading from the store after a miss. An entry lives while any
    /// of its readers does, so the map holds at most one entry per read in progress.
    reading: HashMap<String, Reading>,
}

/// The readers of one secret loading it from the store.
#[derive(Default)]
struct Reading {
    readers: usize,
    /// A change to the secret began while one of them was reading: none of them caches what
    /// it loaded (one of them may have loaded the state before the change).
    changed: bool,
}

/// How long [`Store::load_secret_settled`] waits for the commits in flight of its secret: about
/// one group commit with its fsync. A commit slower than that is not waited for; the read then
/// goes to the store, as any read during a commit does.
const SETTLE_WAIT: Duration = Duration::from_millis(50);

/// A reader that missed and is loading from the store: what it loaded may be cached if no
/// change began since (see [`CachedStore::start_read`]). Dropped without
/// [`ReadTicket::finish`] (a cancelled read), it only leaves the readers.
struct ReadTicket<'a> {
    cache: &'a CachedStore,
    since: Since,
    done: bool,
}

enum Since {
    /// The secret's ARN was known when the read began: changes to it alone count.
    Arn(String),
    /// The generation when the read began (a read by a name never seen).
    Generation(u64),
}

impl ReadTicket<'_> {
    /// Caches `found` (a load the doorkeeper admitted), unless a change to it began since the
    /// read began or is in flight.
    fn finish(mut self, found: Option<&Secret>) {
        self.done = true;
        let mut state = self.cache.lock();
        let unchanged = match &self.since {
            Since::Arn(arn) => {
                let changed = leave_reading(&mut state, arn);
                !changed && found.is_some_and(|s| &s.record.arn == arn)
            }
            Since::Generation(g) => state.generation == *g,
        };
        if let Some(secret) = found
            && unchanged
            && !state.in_flight.contains_key(&secret.record.arn)
        {
            self.cache.put(secret.clone());
        }
    }
}

impl Drop for ReadTicket<'_> {
    fn drop(&mut self) {
        if !self.done
            && let Since::Arn(arn) = &self.since
        {
            leave_reading(&mut self.cache.lock(), arn);
        }
    }
}

/// One reader of `arn` is done; whether a change began while it (or another reader of the same
/// secret) was reading.
fn leave_reading(state: &mut State, arn: &str) -> bool {
    let Some(reading) = state.reading.get_mut(arn) else {
        return true;
    };
    let changed = reading.changed;
    reading.readers -= 1;
    if reading.readers == 0 {
        state.reading.remove(arn);
    }
    changed
}

/// The entries a commit in flight set aside, by ARN, for its write-through.
type SetAside = HashMap<String, Arc<Secret>>;

impl CachedStore {
    pub fn new(inner: Arc<dyn Store>) -> CachedStore {
        CachedStore::with_max_bytes(inner, DEFAULT_CACHE_MAX_BYTES)
    }

    /// A cache whose entries take at most about `max_bytes` (see [`secret_weight`]).
    pub fn with_max_bytes(inner: Arc<dyn Store>, max_bytes: u64) -> CachedStore {
        let (by_arn, arn_by_name, doorkeeper) = bounded_caches(max_bytes, SecretBytes);
        CachedStore {
            days: Arc::new(AccessDays::new(inner.clone(), access_days::FLUSH_DELAY)),
            inner,
            by_arn,
            arn_by_name,
            state: Mutex::default(),
            settled: tokio::sync::Notify::new(),
            aliases: Mutex::default(),
            doorkeeper,
        }
    }

    fn aliases(&self) -> std::sync::MutexGuard<'_, Aliases> {
        self.aliases.lock().expect("alias cache lock")
    }

    /// A KMS change through `commit`: the alias cache is emptied before and after it.
    async fn commit_kms_cached<T>(&self, commit: impl Future<Output = T>) -> T {
        self.aliases().changing(true);
        let result = commit.await;
        self.aliases().changing(false);
        result
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("secret cache lock")
    }

    /// `found`, read from the store after the overlay's `epoch`, with its access days not yet
    /// written; `None` if a flush ended during the read (read again).
    fn with_days(&self, mut found: Option<Secret>, epoch: u64) -> Option<Option<Secret>> {
        if let Some(secret) = &mut found
            && !self.days.overlay_since(secret, epoch)
        {
            return None;
        }
        Some(found)
    }

    /// Writes the access days recorded so far, for a read of the store that does not go
    /// through the cache (listing).
    async fn write_days(&self) -> Result<()> {
        if self.days.any() {
            self.days.flush().await?;
        }
        Ok(())
    }

    /// Puts a read's day in the overlay (or, when the overlay is full, writes it to the store
    /// at once) and on the cached entry, if any.
    async fn record_day(
        &self,
        arn: &str,
        version_id: &str,
        day: i64,
        tell: Option<OutboxEntry>,
    ) -> Result<()> {
        let in_overlay = self.days.record(arn, version_id, day, &tell);
        if !in_overlay {
            let read = (arn.to_string(), version_id.to_string(), day);
            self.inner
                .record_accesses(&[read], tell.into_iter().collect())
                .await?;
        }
        let state = self.lock();
        // An entry set aside by a commit in flight gets the days when it is written through.
        if !state.in_flight.contains_key(arn)
            && let Some(entry) = self.by_arn.get(arn)
        {
            let mut secret = Secret::clone(&entry);
            secret.record.last_accessed_day = Some(day);
            if let Some(v) = secret
                .versions
                .iter_mut()
                .find(|v| v.version_id == version_id)
            {
                v.last_accessed_day = Some(day);
            }
            self.days.overlay(&mut secret);
            self.by_arn.insert(arn.to_string(), Arc::new(secret));
        }
        Ok(())
    }

    /// The estimated bytes the cached secrets take now.
    pub fn cached_bytes(&self) -> u64 {
        self.by_arn.weight() + self.arn_by_name.weight()
    }

    /// Caches `secret` (by ARN and by name), with its access days not yet written; the caller
    /// holds the lock.
    fn put(&self, mut secret: Secret) {
        self.days.overlay(&mut secret);
        let r = &secret.record;
        self.arn_by_name
            .insert((r.account_id.clone(), r.name.clone()), r.arn.clone());
        self.by_arn.insert(r.arn.clone(), Arc::new(secret));
    }

    /// A read by name: a hit, or a load from the store (see [`CachedStore::read_missed`]). The
    /// doorkeeper knows the secret by the account and name the reader asked for, so it decides
    /// before the load (a secret read by name and then by ARN is two secrets to it).
    async fn read_by_name(
        &self,
        account_id: &str,
        name: &str,
        versions: Versions,
    ) -> Result<Option<Secret>> {
        let known = self
            .arn_by_name
            .get(&(account_id.to_string(), name.to_string()));
        if let Some(s) = known.as_ref().and_then(|arn| self.by_arn.get(arn)) {
            return Ok(Some(Secret::clone(&s)));
        }
        // A name once seen keeps its ARN (a secret deleted and created again under the name has
        // another ARN, and then what was loaded is not cached: `ReadTicket::finish`).
        let admitted = self.doorkeeper.admit(&(account_id, name));
        self.read_missed(known.as_deref(), admitted, versions, |versions| {
            self.inner.load_by_name(account_id, name, versions)
        })
        .await
    }

    /// A read by ARN: a hit, or a load from the store.
    async fn read_by_arn(&self, arn: &str, versions: Versions) -> Result<Option<Secret>> {
        if let Some(s) = self.by_arn.get(arn) {
            return Ok(Some(Secret::clone(&s)));
        }
        let admitted = self.doorkeeper.admit(arn);
        self.read_missed(Some(arn), admitted, versions, |versions| {
            self.inner.load_by_arn(arn, versions)
        })
        .await
    }

    /// A read that missed the cache loads the secret with `load`. A load the doorkeeper
    /// `admitted` takes every version and is cached ([`ReadTicket`]), whichever `versions` the
    /// reader asked for; any other load takes what the reader asked for and is handed out
    /// only, so a secret with only some of its versions never reaches the cache, where writes
    /// would take it as their base.
    async fn read_missed<F, L>(
        &self,
        known: Option<&str>,
        admitted: bool,
        versions: Versions,
        load: F,
    ) -> Result<Option<Secret>>
    where
        F: Fn(Versions) -> L,
        L: Future<Output = Result<Option<Secret>>>,
    {
        loop {
            let epoch = self.days.epoch();
            let ticket = admitted.then(|| self.start_read(known));
            let found = load(if admitted { Versions::All } else { versions }).await?;
            if let Some(found) = self.with_days(found, epoch) {
                if let Some(ticket) = ticket {
                    ticket.finish(found.as_ref());
                }
                return Ok(found);
            }
        }
    }

    /// A read that missed begins: of the secret `arn` when the caller knows it, else of a
    /// secret not known before the load.
    fn start_read(&self, arn: Option<&str>) -> ReadTicket<'_> {
        let mut state = self.lock();
        let since = match arn {
            Some(arn) => {
                // A commit of the secret already in flight may land during the read and end
                // before it: what the read loads may be the state before it.
                let in_flight = state.in_flight.contains_key(arn);
                let reading = state.reading.entry(arn.to_string()).or_default();
                reading.readers += 1;
                reading.changed |= in_flight;
                Since::Arn(arn.to_string())
            }
            None => Since::Generation(state.generation),
        };
        ReadTicket {
            cache: self,
            since,
            done: false,
        }
    }

    /// Before a commit of `arns`: they leave the cache until [`CachedStore::end_commit`]; their
    /// entries are set aside for the write-through.
    fn begin_commit(&self, arns: &[&str]) -> SetAside {
        let mut state = self.lock();
        state.generation += 1;
        let mut aside = SetAside::new();
        for arn in arns.iter().collect::<HashSet<_>>() {
            if state.in_flight.contains_key(*arn) {
                state.overlapped.insert(arn.to_string());
            }
        }
        for arn in arns {
            *state.in_flight.entry(arn.to_string()).or_default() += 1;
            if let Some(reading) = state.reading.get_mut(*arn) {
                reading.changed = true;
            }
            if let Some((arn, old)) = self.by_arn.remove(*arn) {
                aside.insert(arn, old);
            }
        }
        aside
    }

    /// Ends what [`CachedStore::begin_commit`] began; `arns` may be cached again.
    fn end_in_flight(state: &mut State, arns: &[&str]) {
        state.generation += 1;
        for arn in arns {
            if let Some(n) = state.in_flight.get_mut(*arn) {
                *n -= 1;
                if *n == 0 {
                    state.in_flight.remove(*arn);
                    state.overlapped.remove(*arn);
                }
            }
        }
    }

    /// `changes` committed through `commit`: out of the cache while in flight, then written
    /// through (see [`CachedStore::end_commit`]).
    async fn commit_cached(
        &self,
        changes: Vec<SecretChange>,
        commit: impl Future<Output = Result<()>>,
    ) -> Result<()> {
        let arns: Vec<String> = changes
            .iter()
            .filter_map(|c| change_arn(c).map(str::to_string))
            .collect();
        let arns: Vec<&str> = arns.iter().map(String::as_str).collect();
        let aside = self.begin_commit(&arns);
        let result = commit.await;
        // Dropped even on failure: the outcome of a failed commit is not known for sure.
        self.end_commit(&arns, changes, result.is_ok(), aside);
        self.settled.notify_waiters();
        result
    }

    /// After a commit: every changed secret's entry becomes its committed state (`Ok`), or is
    /// dropped (`Err`, or an entry that was not the state the change was based on).
    fn end_commit(
        &self,
        arns: &[&str],
        changes: Vec<SecretChange>,
        committed: bool,
        mut aside: SetAside,
    ) {
        let mut state = self.lock();
        for change in changes {
            if let Some(arn) = change_arn(&change)
                && state.overlapped.contains(arn)
            {
                // Read from the store again once nothing of it is in flight.
                self.by_arn.remove(arn);
                continue;
            }
            match change {
                SecretChange::Insert {
                    secret,
                    mut versions,
                } if committed => {
                    crate::rows::sort_versions(&mut versions);
                    self.put(Secret {
                        record: secret,
                        versions,
                    });
                }
                SecretChange::Update {
                    secret,
                    expected_row_version,
                    upsert_versions,
                    delete_versions,
                } if committed => {
                    // The entry another commit's write-through put meanwhile, else the one set
                    // aside; either way it must be the state this change was based on.
                    let Some(old) = self
                        .by_arn
                        .remove(&secret.arn)
                        .map(|(_, old)| old)
                        .or_else(|| aside.remove(&secret.arn))
                    else {
                        continue;
                    };
                    if old.record.row_version != expected_row_version {
                        continue;
                    }
                    self.put(updated(old, secret, upsert_versions, &delete_versions));
                }
                SecretChange::Insert { secret: r, .. } | SecretChange::Update { secret: r, .. } => {
                    self.by_arn.remove(&r.arn);
                }
                SecretChange::Delete { arn, .. } => {
                    self.by_arn.remove(&arn);
                }
                SecretChange::RecordDetachment(_) => {}
            }
        }
        // After the write-through, which reads which commits overlapped.
        Self::end_in_flight(&mut state, arns);
    }
}

/// The cached secret a change changes (a promotion's record changes none).
fn change_arn(change: &SecretChange) -> Option<&str> {
    match change {
        SecretChange::Insert { secret, .. } | SecretChange::Update { secret, .. } => {
            Some(&secret.arn)
        }
        SecretChange::Delete { arn, .. } => Some(arn),
        SecretChange::RecordDetachment(_) => None,
    }
}

/// `old` after an `Update`, as the stores apply it: the secret's identity (ARN, account, name,
/// creation time) is never updated; an upserted version that exists keeps its creation time.
/// The entry is taken over rather than copied when nobody else holds it (readers get copies,
/// so that is the usual case): a write to a secret with many versions copies none of them.
fn updated(
    old: Arc<Secret>,
    mut record: crate::SecretRecord,
    upsert: Vec<crate::VersionRecord>,
    delete: &[String],
) -> Secret {
    let old = Arc::unwrap_or_clone(old);
    record.account_id = old.record.account_id;
    record.name = old.record.name;
    record.created_ms = old.record.created_ms;
    let mut versions = old.versions;
    versions.retain(|v| !delete.contains(&v.version_id));
    for mut v in upsert {
        match versions.iter_mut().find(|o| o.version_id == v.version_id) {
            Some(o) => {
                v.created_ms = o.created_ms;
                v.secret_arn.clone_from(&o.secret_arn);
                *o = v;
            }
            None => versions.push(v),
        }
    }
    crate::rows::sort_versions(&mut versions);
    Secret { record, versions }
}

#[async_trait]
impl Store for CachedStore {
    async fn load_by_name(
        &self,
        account_id: &str,
        name: &str,
        versions: Versions,
    ) -> Result<Option<Secret>> {
        self.read_by_name(account_id, name, versions).await
    }

    async fn load_by_arn(&self, arn: &str, versions: Versions) -> Result<Option<Secret>> {
        self.read_by_arn(arn, versions).await
    }

    /// Waits until no commit of `arn` is in flight (at most [`SETTLE_WAIT`]), then reads: the
    /// commit's write-through makes the read a hit.
    async fn load_secret_settled(&self, arn: &str) -> Result<Option<Secret>> {
        let deadline = tokio::time::Instant::now() + SETTLE_WAIT;
        loop {
            let settled = self.settled.notified();
            let mut settled = std::pin::pin!(settled);
            // Registered before the check, so a commit that ends right after it still wakes us.
            settled.as_mut().enable();
            if !self.lock().in_flight.contains_key(arn) {
                break;
            }
            if tokio::time::timeout_at(deadline, settled).await.is_err() {
                break;
            }
        }
        self.load_secret_by_arn(arn).await
    }

    async fn list_secrets(&self, account_id: &str) -> Result<Vec<Secret>> {
        self.write_days().await?;
        self.inner.list_secrets(account_id).await
    }

    async fn list_page(&self, query: &crate::ListQuery<'_>) -> Result<crate::ListPage> {
        self.write_days().await?;
        self.inner.list_page(query).await
    }

    async fn commit_with(
        &self,
        changes: Vec<SecretChange>,
        outbox: Vec<OutboxEntry>,
    ) -> Result<()> {
        let commit = self.inner.commit_with(changes.clone(), outbox);
        self.commit_cached(changes, commit).await
    }

    async fn commit_and_finish(
        &self,
        changes: Vec<SecretChange>,
        finish: &[(&str, &str, &str, i64)],
    ) -> Result<()> {
        let commit = self.inner.commit_and_finish(changes.clone(), finish);
        self.commit_cached(changes, commit).await
    }

    /// Returns once the day is in the overlay: written behind the read ([`access_days`]).
    async fn record_access(&self, arn: &str, version_id: &str, day: i64) -> Result<()> {
        self.record_day(arn, version_id, day, None).await
    }

    /// [`CachedStore::record_access`]; `tell` is written with the day.
    async fn record_access_and_tell(
        &self,
        arn: &str,
        version_id: &str,
        day: i64,
        tell: OutboxEntry,
    ) -> Result<()> {
        self.record_day(arn, version_id, day, Some(tell)).await
    }

    async fn secrets_due_for_purge(&self, now_ms: i64, limit: i64) -> Result<Vec<String>> {
        self.inner.secrets_due_for_purge(now_ms, limit).await
    }

    async fn load_kms_key(&self, key_arn: &str) -> Result<Option<KmsKeyRecord>> {
        self.inner.load_kms_key(key_arn).await
    }

    async fn load_kms_alias(
        &self,
        account_id: &str,
        alias_name: &str,
    ) -> Result<Option<KmsAliasRecord>> {
        let key = (account_id.to_string(), alias_name.to_string());
        let since = {
            let aliases = self.aliases();
            if aliases.in_flight == 0
                && let Some(hit) = aliases.map.get(&key)
            {
                return Ok(Some(hit.clone()));
            }
            aliases.generation
        };
        let found = self.inner.load_kms_alias(account_id, alias_name).await?;
        let mut aliases = self.aliases();
        if let Some(alias) = &found
            && aliases.in_flight == 0
            && aliases.generation == since
        {
            aliases.map.insert(key, alias.clone());
        }
        Ok(found)
    }

    async fn create_kms_key(&self, key: KmsKeyRecord, alias: Option<KmsAliasRecord>) -> Result<()> {
        self.commit_kms_cached(self.inner.create_kms_key(key, alias))
            .await
    }

    async fn list_kms_keys(&self, account_id: Option<&str>) -> Result<Vec<KmsKeyRecord>> {
        self.inner.list_kms_keys(account_id).await
    }

    async fn list_kms_aliases(&self, account_id: &str) -> Result<Vec<KmsAliasRecord>> {
        self.inner.list_kms_aliases(account_id).await
    }

    async fn commit_kms_with(&self, change: KmsChange, outbox: Vec<OutboxEntry>) -> Result<()> {
        self.commit_kms_cached(self.inner.commit_kms_with(change, outbox))
            .await
    }

    async fn record_heads(&self, heads: &[crate::ReplicaHead]) -> Result<()> {
        self.inner.record_heads(heads).await
    }

    async fn replica_heads(&self) -> Result<Vec<crate::ReplicaHead>> {
        self.inner.replica_heads().await
    }

    async fn delete_heads(&self, arns: &[String]) -> Result<()> {
        self.inner.delete_heads(arns).await
    }

    async fn replica_states(&self) -> Result<Vec<(String, String)>> {
        self.inner.replica_states().await
    }

    async fn save_document(&self, key: &str, body: &str, now_ms: i64) -> Result<()> {
        self.inner.save_document(key, body, now_ms).await
    }

    async fn load_documents(&self, prefix: &str) -> Result<Vec<(String, String)>> {
        self.inner.load_documents(prefix).await
    }

    async fn load_detachment(&self, arn: &str) -> Result<Option<crate::Detachment>> {
        self.inner.load_detachment(arn).await
    }

    async fn claim_outbox_to(
        &self,
        now_ms: i64,
        owner: &str,
        lease_ms: i64,
        limit: i64,
        dest_region: Option<&str>,
    ) -> Result<Vec<OutboxRow>> {
        self.inner
            .claim_outbox_to(now_ms, owner, lease_ms, limit, dest_region)
            .await
    }

    async fn finish_outbox(
        &self,
        secret_arn: &str,
        dest_region: &str,
        kind: &str,
        up_to_id: i64,
    ) -> Result<()> {
        self.inner
            .finish_outbox(secret_arn, dest_region, kind, up_to_id)
            .await
    }

    async fn retry_outbox(
        &self,
        id: i64,
        attempts: i64,
        next_attempt_ms: i64,
        first_failure_ms: Option<i64>,
    ) -> Result<()> {
        self.inner
            .retry_outbox(id, attempts, next_attempt_ms, first_failure_ms)
            .await
    }

    async fn outbox_depth(&self) -> Result<Vec<(String, i64)>> {
        self.inner.outbox_depth().await
    }

    async fn replication_depth(&self, source: &str) -> Result<Vec<(String, i64)>> {
        self.inner.replication_depth(source).await
    }

    async fn close(&self) {
        if let Err(e) = self.write_days().await {
            tracing::warn!(error = %e, "could not write the LastAccessedDate of the last reads");
        }
        self.inner.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SecretRecord, SqliteStore};

    fn record(name: &str, row_version: i64, description: &str) -> SecretRecord {
        SecretRecord {
            arn: format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}-abcdef"),
            account_id: "123456789012".into(),
            name: name.into(),
            description: Some(description.into()),
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

    /// The change that makes `r` (at row_version 1) row_version 2 with the description "two".
    fn to_two(r: &SecretRecord) -> SecretChange {
        let mut two = record(&r.name, 2, "two");
        two.arn = r.arn.clone();
        SecretChange::Update {
            secret: two,
            expected_row_version: 1,
            upsert_versions: vec![],
            delete_versions: vec![],
        }
    }

    /// A cache of `max_bytes` over a fresh, empty SQLite store.
    async fn empty(max_bytes: u64) -> (tempfile::TempDir, Arc<dyn Store>, CachedStore) {
        let dir = tempfile::tempdir().unwrap();
        let inner: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("r.db")).await.unwrap());
        let store = CachedStore::with_max_bytes(inner.clone(), max_bytes);
        (dir, inner, store)
    }

    /// A cache over a fresh SQLite store holding one secret (row_version 1), committed through
    /// the cache.
    async fn with_one_secret(
        name: &str,
        description: &str,
    ) -> (tempfile::TempDir, Arc<dyn Store>, CachedStore, SecretRecord) {
        let dir = tempfile::tempdir().unwrap();
        let inner: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("r.db")).await.unwrap());
        let store = CachedStore::new(inner.clone());
        let r = record(name, 1, description);
        store
            .commit(SecretChange::Insert {
                secret: r.clone(),
                versions: vec![],
            })
            .await
            .unwrap();
        (dir, inner, store, r)
    }

    #[tokio::test]
    async fn reads_see_every_committed_change() {
        let (_dir, _, store, r) = with_one_secret("a", "one").await;
        let first = store
            .load_secret_by_name("123456789012", "a")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.record.description.as_deref(), Some("one"));
        store.commit(to_two(&r)).await.unwrap();
        let second = store.load_secret_by_arn(&r.arn).await.unwrap().unwrap();
        assert_eq!(second.record.description.as_deref(), Some("two"));
        let by_name = store
            .load_secret_by_name("123456789012", "a")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(by_name.record.row_version, 2);
        store
            .commit(SecretChange::Delete {
                arn: r.arn.clone(),
                expected_row_version: 2,
            })
            .await
            .unwrap();
        assert!(
            store
                .load_secret_by_name("123456789012", "a")
                .await
                .unwrap()
                .is_none()
        );
    }

    /// Between a commit and its answer to the writer (a group commit answers a whole batch at
    /// once), a reader that already sees the commit's effects (the replication worker that
    /// claimed its outbox row) reads the committed state, never the one before it; the state
    /// before it is not cached meanwhile, and the commit's answer writes the new one through.
    #[tokio::test]
    async fn a_read_during_a_commit_in_flight_is_the_committed_state() {
        let (_dir, inner, store, r) = with_one_secret("a", "one").await;
        let change = to_two(&r);
        // The commit as `commit_with` makes it, stopped after the store committed and before
        // the answer reached the cache.
        let aside = store.begin_commit(&[&r.arn]);
        inner.commit(change.clone()).await.unwrap();
        let during = store.load_secret_by_arn(&r.arn).await.unwrap().unwrap();
        assert_eq!(during.record.row_version, 2);
        assert_eq!(during.record.description.as_deref(), Some("two"));
        assert!(store.by_arn.is_empty(), "nothing is cached while in flight");
        store.end_commit(&[&r.arn], vec![change], true, aside);
        let after = store.by_arn.get(&r.arn).expect("written through");
        assert_eq!(after.record.row_version, 2);
    }

    /// Two commits of one secret overlap: the first has committed but its answer has not yet
    /// reached the cache when the second, based on the first's state, commits and ends. The
    /// first's write-through must not then put its own state back: the store holds the
    /// second's. (A PutSecretValue read back the value before it; the replication property
    /// test's primary kept a replica `InProgress` for ever: its worker built the sync from the
    /// stale entry and settled the newer outbox row with it.)
    #[tokio::test]
    async fn a_late_write_through_never_puts_back_an_older_state() {
        let (_dir, inner, store, r) = with_one_secret("a", "one").await;
        let first = to_two(&r);
        let mut three = record(&r.name, 3, "three");
        three.arn = r.arn.clone();
        let second = SecretChange::Update {
            secret: three,
            expected_row_version: 2,
            upsert_versions: vec![],
            delete_versions: vec![],
        };
        let first_aside = store.begin_commit(&[&r.arn]);
        inner.commit(first.clone()).await.unwrap();
        let second_aside = store.begin_commit(&[&r.arn]);
        inner.commit(second.clone()).await.unwrap();
        store.end_commit(&[&r.arn], vec![second], true, second_aside);
        store.end_commit(&[&r.arn], vec![first], true, first_aside);
        let read = store.load_secret_by_arn(&r.arn).await.unwrap().unwrap();
        assert_eq!(
            (read.record.row_version, read.record.description.as_deref()),
            (3, Some("three")),
            "the cache serves the last committed state"
        );
    }

    fn version(arn: &str, id: &str, created_ms: i64, stages: &[&str]) -> crate::VersionRecord {
        crate::VersionRecord {
            secret_arn: arn.into(),
            version_id: id.into(),
            stages: stages.iter().map(|s| s.to_string()).collect(),
            created_ms,
            last_accessed_day: None,
            kms_key_arn: Some("arn:aws:kms:us-east-1:123456789012:key/k".into()),
            value_kind: crate::ValueKind::String,
            wrapped_data_key: Some(vec![1, 2, 3]),
            ciphertext: Some(id.as_bytes().to_vec()),
        }
    }

    /// Written through: after every commit the cached secret is a hit, equal to what the store
    /// itself loads; an update based on another state than the cached one drops the entry.
    #[tokio::test]
    async fn committed_changes_are_written_through_exactly_as_the_store_applies_them() {
        let dir = tempfile::tempdir().unwrap();
        let inner: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("r.db")).await.unwrap());
        let store = CachedStore::new(inner);
        let r = record("w", 1, "one");
        let arn = r.arn.clone();
        let same_as_store = |what: &'static str| {
            let store = &store;
            let arn = arn.clone();
            async move {
                let cached = store.by_arn.get(&arn);
                let fresh = store.inner.load_secret_by_arn(&arn).await.unwrap();
                assert_eq!(cached.as_deref(), fresh.as_ref(), "{what}");
                assert!(cached.is_some(), "{what}: not cached");
            }
        };
        store
            .commit(SecretChange::Insert {
                secret: r.clone(),
                versions: vec![
                    version(&arn, "v2", 5, &["AWSCURRENT"]),
                    version(&arn, "v1", 5, &[]),
                ],
            })
            .await
            .unwrap();
        same_as_store("insert").await;
        let mut r2 = record("w", 2, "two");
        r2.created_ms = 99; // never updated by the store
        let mut moved = version(&arn, "v2", 77, &["AWSPREVIOUS"]);
        moved.last_accessed_day = Some(3);
        store
            .commit(SecretChange::Update {
                secret: r2,
                expected_row_version: 1,
                upsert_versions: vec![moved, version(&arn, "v3", 7, &["AWSCURRENT"])],
                delete_versions: vec!["v1".into()],
            })
            .await
            .unwrap();
        same_as_store("update").await;
        // A change the cache did not see (another writer): the next update drops the entry.
        store
            .inner
            .commit(SecretChange::Update {
                secret: record("w", 3, "three"),
                expected_row_version: 2,
                upsert_versions: vec![],
                delete_versions: vec![],
            })
            .await
            .unwrap();
        store
            .commit(SecretChange::Update {
                secret: record("w", 4, "four"),
                expected_row_version: 3,
                upsert_versions: vec![],
                delete_versions: vec![],
            })
            .await
            .unwrap();
        assert!(store.by_arn.get(&arn).is_none());
        let loaded = store.load_secret_by_arn(&arn).await.unwrap().unwrap();
        assert_eq!(loaded.record.description.as_deref(), Some("four"));
        // A failed commit (a stale row_version) leaves no entry behind.
        assert!(
            store
                .commit(SecretChange::Update {
                    secret: record("w", 4, "stale"),
                    expected_row_version: 3,
                    upsert_versions: vec![],
                    delete_versions: vec![],
                })
                .await
                .is_err()
        );
        assert!(store.by_arn.get(&arn).is_none());
    }

    #[tokio::test]
    async fn a_read_that_raced_a_write_is_not_cached() {
        let (_dir, _, store, r) = with_one_secret("b", "old").await;
        store.by_arn.clear();
        let ticket = store.start_read(Some(&r.arn));
        let stale = store
            .inner
            .load_secret_by_arn(&r.arn)
            .await
            .unwrap()
            .unwrap();
        // A write lands between the read and the insert.
        let aside = store.begin_commit(&[&r.arn]);
        store.end_commit(&[&r.arn], Vec::new(), true, aside);
        ticket.finish(Some(&stale));
        assert!(store.by_arn.is_empty());
        assert!(store.lock().reading.is_empty(), "the reader left");
        // A read by a name the cache has never seen: any change since counts.
        store.arn_by_name.clear();
        let ticket = store.start_read(None);
        let aside = store.begin_commit(&["arn:some-other-secret"]);
        store.end_commit(&["arn:some-other-secret"], Vec::new(), true, aside);
        ticket.finish(Some(&stale));
        assert!(store.by_arn.is_empty());
    }

    /// A read that begins while a commit of its secret is in flight may load the state before
    /// the commit; once the commit has ended and written its state through, that read must not
    /// put the older state back (the replication worker would send it, and the replica would
    /// stay `InProgress` for good: the replication property test, seed 12648418).
    #[tokio::test]
    async fn a_read_that_began_during_a_commit_does_not_put_back_the_state_before_it() {
        let (_dir, inner, store, r) = with_one_secret("f", "one").await;
        let change = to_two(&r);
        let aside = store.begin_commit(&[&r.arn]);
        let ticket = store.start_read(Some(&r.arn));
        let before = inner.load_secret_by_arn(&r.arn).await.unwrap().unwrap();
        inner.commit(change.clone()).await.unwrap();
        store.end_commit(&[&r.arn], vec![change], true, aside);
        ticket.finish(Some(&before));
        let read = store.load_secret_by_arn(&r.arn).await.unwrap().unwrap();
        assert_eq!(read.record.description.as_deref(), Some("two"));
    }

    /// Under a steady stream of writes to other secrets, a secret that missed is cached again
    /// by its next read (with one counter for every change, a read that overlapped any write
    /// anywhere was never cached, so under load the replication worker and the request path
    /// read the store again and again).
    #[tokio::test]
    async fn writes_to_other_secrets_do_not_keep_a_secret_out_of_the_cache() {
        let (_dir, _, store, r) = with_one_secret("c", "mine").await;
        store.by_arn.clear();
        // Loaded before, so the doorkeeper admits this load.
        store.doorkeeper.admit(&r.arn);
        let ticket = store.start_read(Some(&r.arn));
        let loaded = store
            .inner
            .load_secret_by_arn(&r.arn)
            .await
            .unwrap()
            .unwrap();
        let aside = store.begin_commit(&["arn:another-secret"]);
        store.end_commit(&["arn:another-secret"], Vec::new(), true, aside);
        ticket.finish(Some(&loaded));
        assert_eq!(
            store.by_arn.get(&r.arn).expect("cached").record.row_version,
            1
        );
        // A cancelled read leaves no trace: the next read of the secret is cached as usual.
        store.by_arn.clear();
        drop(store.start_read(Some(&r.arn)));
        assert!(store.lock().reading.is_empty());
        store.load_secret_by_arn(&r.arn).await.unwrap().unwrap();
        assert!(store.by_arn.get(&r.arn).is_some());
    }

    /// A read by label that the doorkeeper does not admit hands out the labelled versions and
    /// caches nothing; the next, admitted, loads every version and caches them, so a write
    /// that takes the cached secret as its base never sees a secret missing versions.
    #[tokio::test]
    async fn a_read_by_label_caches_only_the_whole_secret() {
        let (_dir, inner, store) = empty(1 << 20).await;
        let r = record("labels", 1, "d");
        let versions = vec![
            version(&r.arn, "v1", 1, &[]),
            version(&r.arn, "v2", 2, &["AWSPREVIOUS"]),
            version(&r.arn, "v3", 3, &[]),
            version(&r.arn, "v4", 4, &["AWSCURRENT"]),
        ];
        inner
            .commit_with(
                vec![SecretChange::Insert {
                    secret: r.clone(),
                    versions: versions.clone(),
                }],
                Vec::new(),
            )
            .await
            .unwrap();
        let ids = |s: &Secret| {
            s.versions
                .iter()
                .map(|v| v.version_id.clone())
                .collect::<Vec<_>>()
        };

        let first = store
            .load_by_name("123456789012", "labels", Versions::Labelled)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ids(&first), ["v2", "v4"]);
        assert!(
            store.by_arn.get(&r.arn).is_none(),
            "a partial load is not cached"
        );
        assert_eq!(store.cached_bytes(), 0);

        let second = store
            .load_by_name("123456789012", "labels", Versions::Labelled)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            ids(&second),
            ["v1", "v2", "v3", "v4"],
            "admitted: loaded whole"
        );
        let cached = store.by_arn.get(&r.arn).expect("cached by its second load");
        assert_eq!(cached.versions, versions);
        // A hit hands out the whole secret, whatever the reader asked for.
        let hit = store
            .load_by_arn(&r.arn, Versions::Labelled)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ids(&hit), ["v1", "v2", "v3", "v4"]);

        // By ARN the same: the first load of another secret by ARN is partial, not cached.
        store.by_arn.remove(&r.arn);
        let by_arn = store
            .load_by_arn(&r.arn, Versions::Labelled)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ids(&by_arn), ["v2", "v4"]);
        assert!(store.by_arn.get(&r.arn).is_none());
        let whole = store.load_secret_by_arn(&r.arn).await.unwrap().unwrap();
        assert_eq!(
            whole.versions, versions,
            "a load of every version after a partial one"
        );
    }

    /// A secret a reader loads is cached from its second load, and reads spread over many
    /// secrets, each read once, leave the cache as it was (before the doorkeeper, each such
    /// read was cached and evicted another secret; the cache's memory churned at the rate of
    /// the reads).
    #[tokio::test]
    async fn a_secret_is_cached_from_its_second_load_only() {
        let (_dir, inner, store) = empty(256 * 1024).await;
        let records: Vec<SecretRecord> = (0..2000)
            .map(|i| record(&format!("spread{i}"), 1, "d"))
            .collect();
        let inserts = records
            .iter()
            .map(|r| SecretChange::Insert {
                secret: r.clone(),
                versions: vec![],
            })
            .collect();
        inner.commit_with(inserts, Vec::new()).await.unwrap();

        for r in &records {
            let read = store.load_secret_by_arn(&r.arn).await.unwrap().unwrap();
            assert_eq!(read.record.name, r.name);
        }
        assert_eq!(store.cached_bytes(), 0, "nothing read twice is cached");

        let hot = &records[7];
        for _ in 0..2 {
            let by_name = store
                .load_secret_by_name("123456789012", &hot.name)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(by_name.record.arn, hot.arn);
        }
        let cached = store
            .by_arn
            .get(&hot.arn)
            .expect("cached by its second load");
        assert_eq!(cached.record.name, hot.name);
        assert_eq!(
            store
                .arn_by_name
                .get(&("123456789012".into(), hot.name.clone())),
            Some(hot.arn.clone())
        );
    }

    /// The replication worker's read waits for the secret's commit in flight and is then
    /// served the written-through state from the cache.
    #[tokio::test]
    async fn a_settled_read_waits_for_the_commit_in_flight() {
        let (_dir, _, store, r) = with_one_secret("d", "one").await;
        let store = Arc::new(store);
        let change = to_two(&r);
        let aside = store.begin_commit(&[&r.arn]);
        let reader = {
            let (store, arn) = (store.clone(), r.arn.clone());
            tokio::spawn(async move { store.load_secret_settled(&arn).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!reader.is_finished(), "it waits for the commit");
        // Written through without the store (which still holds "one"): only a read that
        // waited and then hit the cache sees "two".
        store.end_commit(&[&r.arn], vec![change], true, aside);
        store.settled.notify_waiters();
        let read = reader.await.unwrap().unwrap().unwrap();
        assert_eq!(read.record.description.as_deref(), Some("two"));
        // A commit that does not end in time is not waited for past SETTLE_WAIT.
        let _aside = store.begin_commit(&[&r.arn]);
        let started = std::time::Instant::now();
        let read = store.load_secret_settled(&r.arn).await.unwrap().unwrap();
        assert!(started.elapsed() >= SETTLE_WAIT);
        assert_eq!(
            read.record.description.as_deref(),
            Some("one"),
            "the store's state"
        );
    }

    /// An alias is read from the store once, then served from memory until a KMS change;
    /// every KMS change is seen at once (an alias moved to another key, deleted, created).
    #[tokio::test]
    async fn aliases_are_cached_until_a_kms_change() {
        let (_dir, inner, store, _) = with_one_secret("e", "x").await;
        let key = |arn: &str| KmsKeyRecord {
            key_arn: arn.into(),
            account_id: "123456789012".into(),
            key_id: arn.into(),
            wrapped_material: vec![1],
            metadata: "{}".into(),
            created_ms: 1,
        };
        let alias = |target: &str| KmsAliasRecord {
            account_id: "123456789012".into(),
            alias_name: "alias/app".into(),
            target_key_arn: target.into(),
            created_ms: 1,
        };
        store
            .create_kms_key(key("arn:k1"), Some(alias("arn:k1")))
            .await
            .unwrap();
        store.create_kms_key(key("arn:k2"), None).await.unwrap();
        let read = || store.load_kms_alias("123456789012", "alias/app");
        assert_eq!(read().await.unwrap().unwrap().target_key_arn, "arn:k1");
        // Served from memory: a change behind the cache's back is not seen...
        inner
            .commit_kms(KmsChange::UpdateAlias(alias("arn:k2")))
            .await
            .unwrap();
        assert_eq!(read().await.unwrap().unwrap().target_key_arn, "arn:k1");
        // ...and every change through it is.
        store
            .commit_kms(KmsChange::UpdateAlias(alias("arn:k1")))
            .await
            .unwrap();
        assert_eq!(read().await.unwrap().unwrap().target_key_arn, "arn:k1");
        store
            .commit_kms(KmsChange::UpdateAlias(alias("arn:k2")))
            .await
            .unwrap();
        assert_eq!(read().await.unwrap().unwrap().target_key_arn, "arn:k2");
        store
            .commit_kms(KmsChange::DeleteAlias {
                account_id: "123456789012".into(),
                alias_name: "alias/app".into(),
            })
            .await
            .unwrap();
        assert!(read().await.unwrap().is_none());
    }

    /// Memory is bounded by bytes, not by a count of secrets, and a working set larger than
    /// the cache keeps most of the cache full (the cache used to empty itself when it reached
    /// its bound, so every read of a slightly larger working set missed).
    /// A cache over a fresh SQLite store at `path` holding the secret `name` with versions v1
    /// (AWSPREVIOUS) and v2 (AWSCURRENT), whose access days wait `delay` to be written.
    async fn with_versions(
        path: &std::path::Path,
        name: &str,
        delay: Duration,
    ) -> (Arc<dyn Store>, CachedStore, String) {
        let inner: Arc<dyn Store> = Arc::new(SqliteStore::open(path).await.unwrap());
        let mut store = CachedStore::new(inner.clone());
        store.days = Arc::new(AccessDays::new(inner.clone(), delay));
        let r = record(name, 1, "one");
        let arn = r.arn.clone();
        store
            .commit(SecretChange::Insert {
                secret: r,
                versions: vec![
                    version(&arn, "v1", 1, &["AWSPREVIOUS"]),
                    version(&arn, "v2", 2, &["AWSCURRENT"]),
                ],
            })
            .await
            .unwrap();
        (inner, store, arn)
    }

    fn days_of(secret: &Secret) -> (Option<i64>, Vec<Option<i64>>) {
        let versions = secret
            .versions
            .iter()
            .map(|v| v.last_accessed_day)
            .collect();
        (secret.record.last_accessed_day, versions)
    }

    /// The first read of a day returns before its day is written, and every read of this
    /// store sees the day at once: a hit, a miss, a read by name, and a listing (which writes
    /// the days first).
    #[tokio::test]
    async fn a_reads_day_is_seen_at_once_and_written_behind_the_read() {
        let dir = tempfile::tempdir().unwrap();
        let hour = Duration::from_secs(3600);
        let (inner, store, arn) = with_versions(&dir.path().join("r.db"), "a", hour).await;
        assert!(store.by_arn.get(&arn).is_some(), "cached by the insert");
        store.record_access(&arn, "v2", 20_000).await.unwrap();
        let written = |s: &Secret| days_of(s) == (Some(20_000), vec![None, Some(20_000)]);
        let stored = inner.load_secret_by_arn(&arn).await.unwrap().unwrap();
        assert_eq!(
            days_of(&stored),
            (None, vec![None, None]),
            "not yet written"
        );

        let hit = store.load_secret_by_arn(&arn).await.unwrap().unwrap();
        assert!(written(&hit), "a hit: {:?}", days_of(&hit));
        store.by_arn.remove(&arn);
        let miss = store.load_secret_by_arn(&arn).await.unwrap().unwrap();
        assert!(written(&miss), "a miss: {:?}", days_of(&miss));
        // Cached from its second load (`Doorkeeper`).
        store.load_secret_by_arn(&arn).await.unwrap().unwrap();
        assert!(
            store.by_arn.get(&arn).is_some_and(|s| written(&s)),
            "cached with its days"
        );
        store.by_arn.remove(&arn);
        let by_name = store
            .load_secret_by_name("123456789012", "a")
            .await
            .unwrap()
            .unwrap();
        assert!(written(&by_name), "by name: {:?}", days_of(&by_name));

        // Another day, read while no entry is cached, on another version.
        store.by_arn.remove(&arn);
        store.record_access(&arn, "v1", 20_001).await.unwrap();
        let listed = store.list_secrets("123456789012").await.unwrap();
        assert_eq!(
            days_of(&listed[0]),
            (Some(20_001), vec![Some(20_001), Some(20_000)])
        );
        let stored = inner.load_secret_by_arn(&arn).await.unwrap().unwrap();
        assert_eq!(
            days_of(&stored),
            (Some(20_001), vec![Some(20_001), Some(20_000)]),
            "written before the listing read the store"
        );
        assert!(!store.days.any());
    }

    /// A read whose load of the store overlaps the end of a flush is told to read again: the
    /// load may predate the flush's commit while the overlay it looks at no longer has the days.
    #[tokio::test]
    async fn a_read_that_overlaps_a_flush_reads_again() {
        let dir = tempfile::tempdir().unwrap();
        let hour = Duration::from_secs(3600);
        let (inner, _store, arn) = with_versions(&dir.path().join("r.db"), "a", hour).await;
        let days = Arc::new(AccessDays::new(inner.clone(), hour));
        days.record(&arn, "v1", 20_000, &None);
        let before_flush = days.epoch();
        let mut loaded = inner.load_secret_by_arn(&arn).await.unwrap().unwrap();
        assert_eq!(loaded.record.last_accessed_day, None, "not written yet");
        assert!(days.overlay_since(&mut loaded, before_flush));
        assert_eq!(
            loaded.record.last_accessed_day,
            Some(20_000),
            "from the overlay"
        );

        let mut stale = inner.load_secret_by_arn(&arn).await.unwrap().unwrap();
        days.flush().await.unwrap();
        assert!(!days.any());
        assert!(
            !days.overlay_since(&mut stale, before_flush),
            "loaded before the flush, looked at the overlay after it"
        );
        let mut again = inner.load_secret_by_arn(&arn).await.unwrap().unwrap();
        assert!(days.overlay_since(&mut again, days.epoch()));
        assert_eq!(
            again.record.last_accessed_day,
            Some(20_000),
            "from the store"
        );
    }

    /// A replica's first read of the day tells its primary with an outbox row written by the
    /// flush that writes the day: no commit of its own, one row for the reads of a flush.
    #[tokio::test]
    async fn a_replicas_read_tells_its_primary_with_the_days_flush() {
        let dir = tempfile::tempdir().unwrap();
        let hour = Duration::from_secs(3600);
        let (inner, store, arn) = with_versions(&dir.path().join("r.db"), "a", hour).await;
        let tell = OutboxEntry {
            secret_arn: arn.clone(),
            dest_region: "eu-west-1".into(),
            kind: "access".into(),
            payload: r#"{"region":"us-east-1","day":20000}"#.into(),
        };
        store
            .record_access_and_tell(&arn, "v2", 20_000, tell.clone())
            .await
            .unwrap();
        store
            .record_access_and_tell(&arn, "v1", 20_000, tell.clone())
            .await
            .unwrap();
        assert_eq!(
            inner.outbox_depth().await.unwrap(),
            vec![],
            "not yet written"
        );
        store.list_secrets("123456789012").await.unwrap();
        let rows = inner
            .claim_outbox(4_000_000_000_000, "test", 1_000, 10)
            .await
            .unwrap();
        let entries: Vec<_> = rows.into_iter().map(|r| r.entry).collect();
        assert_eq!(entries, vec![tell], "one row, written with the days");
        let stored = inner.load_secret_by_arn(&arn).await.unwrap().unwrap();
        assert_eq!(
            days_of(&stored),
            (Some(20_000), vec![Some(20_000), Some(20_000)])
        );
    }

    /// Past the overlay's bound a read writes its own day before it returns, so reads that come
    /// faster than the writer slow to its pace instead of the overlay growing.
    #[tokio::test]
    async fn a_read_past_a_full_overlay_writes_its_day_itself() {
        let dir = tempfile::tempdir().unwrap();
        let hour = Duration::from_secs(3600);
        let (inner, mut store, first) = with_versions(&dir.path().join("r.db"), "a", hour).await;
        store.days = Arc::new(AccessDays::new(inner.clone(), hour).with_max_pending(1));
        let second = record("b", 1, "one");
        store
            .commit(SecretChange::Insert {
                secret: second.clone(),
                versions: vec![version(&second.arn, "v1", 1, &["AWSCURRENT"])],
            })
            .await
            .unwrap();
        store.record_access(&first, "v2", 20_000).await.unwrap();
        store
            .record_access(&second.arn, "v1", 20_000)
            .await
            .unwrap();
        let stored = |arn: String| {
            let inner = inner.clone();
            async move { inner.load_secret_by_arn(&arn).await.unwrap().unwrap() }
        };
        assert_eq!(
            stored(first.clone()).await.record.last_accessed_day,
            None,
            "waits"
        );
        let written = stored(second.arn.clone()).await;
        assert_eq!(
            days_of(&written),
            (Some(20_000), vec![Some(20_000)]),
            "written at once"
        );
        for arn in [&first, &second.arn] {
            let read = store.load_secret_by_arn(arn).await.unwrap().unwrap();
            assert_eq!(read.record.last_accessed_day, Some(20_000), "{arn}");
        }
    }

    /// Without a listing or a stop, the days are written [`access_days::FLUSH_DELAY`] after the
    /// read; a stop writes the days still waiting.
    #[tokio::test]
    async fn days_are_written_shortly_after_the_read_and_when_the_store_closes() {
        let dir = tempfile::tempdir().unwrap();
        let (inner, store, arn) = with_versions(
            &dir.path().join("soon.db"),
            "soon",
            access_days::FLUSH_DELAY,
        )
        .await;
        store.record_access(&arn, "v2", 20_000).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let stored = inner.load_secret_by_arn(&arn).await.unwrap().unwrap();
            if stored.record.last_accessed_day == Some(20_000) {
                assert_eq!(stored.versions[1].last_accessed_day, Some(20_000));
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "never written");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        store.close().await;

        let path = dir.path().join("stop.db");
        let hour = Duration::from_secs(3600);
        let (_, store, arn) = with_versions(&path, "stop", hour).await;
        store.record_access(&arn, "v1", 20_002).await.unwrap();
        store.close().await;
        let reopened = SqliteStore::open(&path).await.unwrap();
        let stored = reopened.load_secret_by_arn(&arn).await.unwrap().unwrap();
        assert_eq!(days_of(&stored), (Some(20_002), vec![Some(20_002), None]));
        reopened.close().await;
    }

    #[tokio::test]
    async fn the_cache_holds_at_most_its_bytes_and_stays_full_past_them() {
        let max = 256 * 1024;
        let (_dir, _, store) = empty(max).await;
        let long = "d".repeat(2000);
        let mut arns = Vec::new();
        for i in 0..300 {
            let r = record(&format!("big{i}"), 1, &long);
            arns.push(r.arn.clone());
            store
                .commit(SecretChange::Insert {
                    secret: r,
                    versions: vec![],
                })
                .await
                .unwrap();
        }
        for _ in 0..3 {
            for arn in &arns {
                let loaded = store.load_secret_by_arn(arn).await.unwrap().unwrap();
                assert_eq!(loaded.record.description.as_deref(), Some(long.as_str()));
            }
        }
        let each = secret_weight(
            &store
                .inner
                .load_secret_by_arn(&arns[0])
                .await
                .unwrap()
                .unwrap(),
        );
        assert!(
            each > 2000,
            "a secret weighs at least its description: {each}"
        );
        assert!(
            store.cached_bytes() <= max,
            "{} bytes cached, bound {max}",
            store.cached_bytes()
        );
        let fits = (max - max / NAME_SHARE) / each;
        let cached = arns
            .iter()
            .filter(|a| store.by_arn.get(*a).is_some())
            .count() as u64;
        assert!(
            cached * 2 >= fits,
            "{cached} secrets cached of the {fits} that fit"
        );
    }
}
