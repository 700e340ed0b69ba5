//! Console sessions and CSRF tokens.
//!
//! A session is a random 256-bit id in an HttpOnly, SameSite=Strict cookie scoped to
//! `/console`. The store keeps only the SHA-256 of each id, so neither a memory dump nor the
//! timing of a map lookup reveals a usable cookie. Each session carries its own CSRF token,
//! which every POST must present (hidden form field or `X-CSRF-Token` header); tokens and keys
//! are compared in constant time. Sessions end after an idle timeout, at an absolute lifetime,
//! at sign-out, or when their access key is no longer accepted.
//!
//! Each principal (IAM user or root) has at most `per_principal` sessions: a new one evicts
//! only that principal's least recently used, so no access key can sign anyone else out. With a
//! file (`<data-dir>/console-sessions.json`, mode 0600), sessions survive a restart: it holds
//! the hashed ids, never a cookie value, and is written when a session starts or ends and when
//! a session's activity is more than a minute newer than what the file says.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const COOKIE: &str = "coffer_console";
/// The sign-in form's double-submit token (there is no session yet to bind a CSRF token to).
pub const SIGN_IN_COOKIE: &str = "coffer_console_sign_in";
pub const CSRF_FIELD: &str = "csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A session never outlives this, however active it is.
pub const MAX_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);
/// Sessions of one principal at most, unless configured (`console_max_sessions_per_principal`).
pub const DEFAULT_PER_PRINCIPAL: usize = 10;
/// Sessions kept at most (a bound on memory): past it the principal with the most sessions
/// loses its least recently used one.
const MAX_SESSIONS: usize = 100_000;
/// How stale the file's record of a session's activity may get before it is written again.
const PERSIST_ACTIVITY_EVERY: Duration = Duration::from_secs(60);

/// A one-shot message shown on the next page (after a redirect).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flash {
    pub error: bool,
    pub text: String,
}

/// What a request learns about its session.
#[derive(Clone)]
pub struct Session {
    key: [u8; 32],
    pub access_key_id: String,
    pub csrf: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Whether `presented` is this session's CSRF token (constant time).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        tokens_match(&self.csrf, presented)
    }
}

struct Entry {
    access_key_id: String,
    principal: String,
    csrf: String,
    created: Instant,
    last_seen: Instant,
    /// `last_seen` as the file has it.
    persisted_seen: Instant,
    flash: Option<Flash>,
}

/// A session as the file holds it (times in Unix milliseconds).
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    id_sha256: String,
    access_key_id: String,
    principal: String,
    csrf: String,
    created_ms: u64,
    last_seen_ms: u64,
}

pub struct Sessions {
    idle_timeout: Duration,
    capacity: usize,
    per_principal: usize,
    file: Option<PathBuf>,
    /// An instant and the wall-clock time it was, to store `Instant`s.
    epoch: (Instant, SystemTime),
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

/// 256 random bits from the operating system's generator, as 64 hex digits.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn key_of(cookie_value: &str) -> [u8; 32] {
    Sha256::digest(cookie_value.as_bytes()).into()
}

/// Constant-time equality of two secrets of any length: their SHA-256 digests are compared,
/// so neither the content nor the length leaks through timing.
pub fn tokens_match(expected: &str, presented: &str) -> bool {
    let a: [u8; 32] = Sha256::digest(expected.as_bytes()).into();
    let b: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    !expected.is_empty() && bool::from(a.ct_eq(&b))
}

impl Sessions {
    pub fn new(idle_timeout: Duration) -> Sessions {
        Sessions {
            idle_timeout,
            capacity: MAX_SESSIONS,
            per_principal: DEFAULT_PER_PRINCIPAL,
            file: None,
            epoch: (Instant::now(), SystemTime::now()),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// At most `per_principal` sessions per principal (at least 1).
    pub fn with_per_principal(mut self, per_principal: usize) -> Sessions {
        self.per_principal = per_principal.max(1);
        self
    }

    /// Sessions kept in `file` (loaded now: those still live survive a restart).
    pub fn with_file(mut self, file: PathBuf) -> Sessions {
        let now = Instant::now();
        if let Ok(text) = std::fs::read_to_string(&file) {
            match serde_json::from_str::<Vec<Stored>>(&text) {
                Ok(stored) => {
                    let mut entries = self.entries.lock().expect("sessions lock");
                    for s in stored {
                        let Ok(key) = hex::decode(&s.id_sha256) else {
                            continue;
                        };
                        let Ok(key) = <[u8; 32]>::try_from(key) else {
                            continue;
                        };
                        let (Some(created), Some(last_seen)) = (
                            self.instant_of(s.created_ms),
                            self.instant_of(s.last_seen_ms),
                        ) else {
                            continue;
                        };
                        let entry = Entry {
                            access_key_id: s.access_key_id,
                            principal: s.principal,
                            csrf: s.csrf,
                            created,
                            last_seen,
                            persisted_seen: last_seen,
                            flash: None,
                        };
                        if self.live(&entry, now) {
                            entries.insert(key, entry);
                        }
                    }
                    tracing::info!(sessions = entries.len(), file = %file.display(), "Console sessions restored");
                }
                Err(e) => {
                    tracing::warn!(file = %file.display(), error = %e, "Console sessions file unreadable; starting without sessions")
                }
            }
        }
        self.file = Some(file);
        self
    }

    fn unix_ms(&self, t: Instant) -> u64 {
        let wall = match t.checked_duration_since(self.epoch.0) {
            Some(after) => self.epoch.1 + after,
            None => self.epoch.1 - self.epoch.0.duration_since(t),
        };
        wall.duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default()
    }

    /// The `Instant` of a stored time (`None` if it is before this process could express).
    fn instant_of(&self, ms: u64) -> Option<Instant> {
        let wall = UNIX_EPOCH + Duration::from_millis(ms);
        match wall.duration_since(self.epoch.1) {
            Ok(after) => self.epoch.0.checked_add(after),
            Err(e) => self.epoch.0.checked_sub(e.duration()),
        }
    }

    /// Writes every session to the file (if any); called with the lock held.
    fn persist(&self, entries: &mut HashMap<[u8; 32], Entry>) {
        let Some(file) = &self.file else { return };
        let stored: Vec<Stored> = entries
            .iter_mut()
            .map(|(key, e)| {
                e.persisted_seen = e.last_seen;
                Stored {
                    id_sha256: hex::encode(key),
                    access_key_id: e.access_key_id.clone(),
                    principal: e.principal.clone(),
                    csrf: e.csrf.clone(),
                    created_ms: self.unix_ms(e.created),
                    last_seen_ms: self.unix_ms(e.last_seen),
                }
            })
            .collect();
        let text = serde_json::to_string(&stored).unwrap_or_else(|_| "[]".into());
        if let Err(e) = write_private(file, &text) {
            tracing::warn!(file = %file.display(), error = %e, "Cannot write the console sessions file");
        }
    }

    fn live(&self, entry: &Entry, now: Instant) -> bool {
        now.saturating_duration_since(entry.last_seen) < self.idle_timeout
            && now.saturating_duration_since(entry.created) < MAX_LIFETIME
    }

    /// Starts a session for `access_key_id` of `principal`; returns the cookie value and the
    /// session. Past the principal's cap, its least recently used session ends.
    pub fn start(&self, access_key_id: &str, principal: &str, now: Instant) -> (String, Session) {
        let cookie = random_token();
        let key = key_of(&cookie);
        let csrf = random_token();
        let mut entries = self.entries.lock().expect("sessions lock");
        entries.retain(|_, e| self.live(e, now));
        let oldest_of = |entries: &HashMap<[u8; 32], Entry>, principal: &str| {
            entries
                .iter()
                .filter(|(_, e)| e.principal == principal)
                .min_by_key(|(_, e)| e.last_seen)
                .map(|(k, _)| *k)
        };
        let own = entries
            .values()
            .filter(|e| e.principal == principal)
            .count();
        if own >= self.per_principal {
            if let Some(k) = oldest_of(&entries, principal) {
                entries.remove(&k);
            }
        } else if entries.len() >= self.capacity {
            let mut counts: HashMap<&str, usize> = HashMap::new();
            for e in entries.values() {
                *counts.entry(e.principal.as_str()).or_default() += 1;
            }
            let busiest = counts
                .into_iter()
                .max_by_key(|(_, n)| *n)
                .map(|(p, _)| p.to_string());
            if let Some(k) = busiest.and_then(|p| oldest_of(&entries, &p)) {
                entries.remove(&k);
            }
        }
        entries.insert(
            key,
            Entry {
                access_key_id: access_key_id.to_string(),
                principal: principal.to_string(),
                csrf: csrf.clone(),
                created: now,
                last_seen: now,
                persisted_seen: now,
                flash: None,
            },
        );
        self.persist(&mut entries);
        (
            cookie,
            Session {
                key,
                access_key_id: access_key_id.to_string(),
                csrf,
            },
        )
    }

    /// The live session of `cookie`. `touch` counts the request as activity; the replication
    /// section's periodic refresh does not, so an open page does not keep a session alive.
    pub fn resume(&self, cookie: &str, now: Instant, touch: bool) -> Option<Session> {
        let key = key_of(cookie);
        let mut entries = self.entries.lock().expect("sessions lock");
        let entry = entries.get_mut(&key)?;
        if !self.live(entry, now) {
            entries.remove(&key);
            return None;
        }
        if touch {
            entry.last_seen = now;
        }
        let session = Session {
            key,
            access_key_id: entry.access_key_id.clone(),
            csrf: entry.csrf.clone(),
        };
        if now.saturating_duration_since(entry.persisted_seen) > PERSIST_ACTIVITY_EVERY {
            self.persist(&mut entries);
        }
        Some(session)
    }

    pub fn end(&self, session: &Session) {
        let mut entries = self.entries.lock().expect("sessions lock");
        if entries.remove(&session.key).is_some() {
            self.persist(&mut entries);
        }
    }

    pub fn set_flash(&self, session: &Session, flash: Flash) {
        if let Some(e) = self
            .entries
            .lock()
            .expect("sessions lock")
            .get_mut(&session.key)
        {
            e.flash = Some(flash);
        }
    }

    pub fn take_flash(&self, session: &Session) -> Option<Flash> {
        self.entries
            .lock()
            .expect("sessions lock")
            .get_mut(&session.key)
            .and_then(|e| e.flash.take())
    }

    pub fn len(&self) -> usize {
        self.entries.lock().expect("sessions lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Writes `contents` to `path` whole (a temporary file renamed into place), mode 0600.
fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(contents.as_bytes())?;
    std::fs::rename(&tmp, path)
}

/// The values of cookie `name` in a `Cookie` header (a browser may send several).
pub fn cookie_values<'a>(header: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    header.split(';').filter_map(move |pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k.trim() == name).then(|| v.trim())
    })
}

/// `Set-Cookie` for a console cookie: HttpOnly, SameSite=Strict, only under /console.
pub fn set_cookie(name: &str, value: &str) -> String {
    format!("{name}={value}; Path=/console; HttpOnly; SameSite=Strict")
}

/// `Set-Cookie` that removes a console cookie.
pub fn clear_cookie(name: &str) -> String {
    format!("{name}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(15 * 60);

    #[test]
    fn a_started_session_resumes_with_its_cookie_only() {
        let sessions = Sessions::new(IDLE);
        let now = Instant::now();
        let (cookie, session) =
            sessions.start("AKIDEXAMPLE", "arn:aws:iam::123456789012:user/a", now);
        assert_eq!(cookie.len(), 64, "256 bits as hex");
        let resumed = sessions.resume(&cookie, now, true).expect("live");
        assert_eq!(resumed.access_key_id, "AKIDEXAMPLE");
        assert_eq!(resumed.csrf, session.csrf);
        assert!(sessions.resume("not-a-session", now, true).is_none());
        let mut other = cookie.clone();
        other.replace_range(0..1, if cookie.starts_with('0') { "1" } else { "0" });
        assert!(sessions.resume(&other, now, true).is_none());
    }

    #[test]
    fn each_session_gets_its_own_id_and_csrf_token() {
        let sessions = Sessions::new(IDLE);
        let now = Instant::now();
        let (c1, s1) = sessions.start("A", "arn:aws:iam::123456789012:user/a", now);
        let (c2, s2) = sessions.start("A", "arn:aws:iam::123456789012:user/a", now);
        assert_ne!(c1, c2);
        assert_ne!(s1.csrf, s2.csrf);
        assert_ne!(c1, s1.csrf, "the CSRF token is not the cookie");
    }

    #[test]
    fn the_store_keeps_no_cookie_value() {
        let sessions = Sessions::new(IDLE);
        let (cookie, _) = sessions.start("A", "arn:aws:iam::123456789012:user/a", Instant::now());
        let entries = sessions.entries.lock().unwrap();
        assert!(entries.keys().all(|k| hex::encode(k) != cookie));
        assert!(entries.contains_key(&key_of(&cookie)));
    }

    #[test]
    fn idle_sessions_expire_and_activity_extends_them() {
        let sessions = Sessions::new(IDLE);
        let t0 = Instant::now();
        let (cookie, _) = sessions.start("A", "arn:aws:iam::123456789012:user/a", t0);
        let t1 = t0 + Duration::from_secs(10 * 60);
        assert!(sessions.resume(&cookie, t1, true).is_some());
        // 20 minutes after the start but only 10 after the last activity: still live.
        let t2 = t0 + Duration::from_secs(20 * 60);
        assert!(sessions.resume(&cookie, t2, true).is_some());
        // 15 minutes without activity: gone for good.
        let t3 = t2 + IDLE;
        assert!(sessions.resume(&cookie, t3, true).is_none());
        assert!(
            sessions.resume(&cookie, t2, true).is_none(),
            "removed, not hidden"
        );
        assert!(sessions.is_empty());
    }

    #[test]
    fn background_refreshes_do_not_keep_a_session_alive() {
        let sessions = Sessions::new(IDLE);
        let t0 = Instant::now();
        let (cookie, _) = sessions.start("A", "arn:aws:iam::123456789012:user/a", t0);
        for minute in 1..15 {
            let t = t0 + Duration::from_secs(minute * 60);
            assert!(sessions.resume(&cookie, t, false).is_some());
        }
        assert!(sessions.resume(&cookie, t0 + IDLE, false).is_none());
    }

    #[test]
    fn no_session_outlives_its_absolute_lifetime() {
        let sessions = Sessions::new(IDLE);
        let t0 = Instant::now();
        let (cookie, _) = sessions.start("A", "arn:aws:iam::123456789012:user/a", t0);
        let mut t = t0;
        while t + Duration::from_secs(600) < t0 + MAX_LIFETIME {
            t += Duration::from_secs(600);
            assert!(sessions.resume(&cookie, t, true).is_some());
        }
        assert!(sessions.resume(&cookie, t0 + MAX_LIFETIME, true).is_none());
    }

    #[test]
    fn sign_out_ends_the_session() {
        let sessions = Sessions::new(IDLE);
        let now = Instant::now();
        let (cookie, session) = sessions.start("A", "arn:aws:iam::123456789012:user/a", now);
        sessions.end(&session);
        assert!(sessions.resume(&cookie, now, true).is_none());
    }

    #[test]
    fn csrf_tokens_must_match_exactly() {
        let sessions = Sessions::new(IDLE);
        let (_, session) = sessions.start("A", "arn:aws:iam::123456789012:user/a", Instant::now());
        let token = session.csrf.clone();
        assert!(session.csrf_matches(&token));
        assert!(!session.csrf_matches(""));
        assert!(!session.csrf_matches(&token[..63]));
        assert!(!session.csrf_matches(&format!("{token}0")));
        assert!(!session.csrf_matches(&token.to_uppercase()));
    }

    #[test]
    fn an_empty_expected_secret_never_matches() {
        assert!(!tokens_match("", ""));
        assert!(tokens_match("abc", "abc"));
        assert!(!tokens_match("abc", "abd"));
    }

    #[test]
    fn flashes_are_shown_once() {
        let sessions = Sessions::new(IDLE);
        let (_, session) = sessions.start("A", "arn:aws:iam::123456789012:user/a", Instant::now());
        sessions.set_flash(
            &session,
            Flash {
                error: false,
                text: "Saved".into(),
            },
        );
        assert_eq!(sessions.take_flash(&session).unwrap().text, "Saved");
        assert!(sessions.take_flash(&session).is_none());
    }

    #[test]
    fn cookies_are_found_among_others() {
        let header = "a=1; coffer_console=abc ; coffer_console_sign_in=xyz";
        assert_eq!(cookie_values(header, COOKIE).collect::<Vec<_>>(), ["abc"]);
        assert_eq!(
            cookie_values(header, SIGN_IN_COOKIE).collect::<Vec<_>>(),
            ["xyz"]
        );
        assert_eq!(cookie_values("", COOKIE).count(), 0);
    }

    #[test]
    fn cookies_are_http_only_strict_and_scoped_to_the_console() {
        let c = set_cookie(COOKIE, "v");
        assert!(c.contains("HttpOnly"));
        assert!(c.contains("SameSite=Strict"));
        assert!(c.contains("Path=/console"));
        assert!(clear_cookie(COOKIE).contains("Max-Age=0"));
    }

    #[test]
    fn a_principal_past_its_cap_loses_only_its_own_oldest_session() {
        let sessions = Sessions::new(IDLE).with_per_principal(3);
        let t0 = Instant::now();
        let (admin, _) = sessions.start("ADMIN", "arn:aws:iam::1:root", t0);
        let (first, _) = sessions.start("OTHER", "arn:aws:iam::1:user/o", t0);
        for i in 1..10_050u64 {
            sessions.start(
                "OTHER",
                "arn:aws:iam::1:user/o",
                t0 + Duration::from_micros(i),
            );
        }
        let later = t0 + Duration::from_secs(1);
        assert_eq!(
            sessions.len(),
            4,
            "3 of the other principal, 1 of the admin"
        );
        assert!(sessions.resume(&first, later, true).is_none());
        assert!(sessions.resume(&admin, later, true).is_some());
    }

    #[test]
    fn sessions_in_a_file_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("console-sessions.json");
        let now = Instant::now();
        let (cookie, _) =
            Sessions::new(IDLE)
                .with_file(file.clone())
                .start("A", "arn:aws:iam::1:root", now);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // The file holds no cookie value.
        assert!(!std::fs::read_to_string(&file).unwrap().contains(&cookie));
        let restarted = Sessions::new(IDLE).with_file(file.clone());
        let session = restarted.resume(&cookie, Instant::now(), true).unwrap();
        assert_eq!(session.access_key_id, "A");
        restarted.end(&session);
        let again = Sessions::new(IDLE).with_file(file);
        assert!(again.resume(&cookie, Instant::now(), true).is_none());
    }
}
