//! Console sessions and CSRF tokens.
//!
//! A session is a random 256-bit id in an HttpOnly, SameSite=Strict cookie scoped to
//! `/console`. The store keeps only the SHA-256 of each id, so neither a memory dump nor the
//! timing of a map lookup reveals a usable cookie. Each session carries its own CSRF token,
//! which every POST must present (hidden form field or `X-CSRF-Token` header); tokens and keys
//! are compared in constant time. Sessions end after an idle timeout, at an absolute lifetime,
//! at sign-out, or when their access key is no longer accepted.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub mod persist;

pub const COOKIE: &str = "coffer_console";
/// The sign-in form's double-submit token (there is no session yet to bind a CSRF token to).
pub const SIGN_IN_COOKIE: &str = "coffer_console_sign_in";
pub const CSRF_FIELD: &str = "csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A session never outlives this, however active it is.
pub const MAX_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);
/// Sessions kept at most; the oldest goes first when a new one would exceed it.
const MAX_SESSIONS: usize = 10_000;

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
    csrf: String,
    created: Instant,
    last_seen: Instant,
    flash: Option<Flash>,
}

pub struct Sessions {
    idle_timeout: Duration,
    capacity: usize,
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
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn live(&self, entry: &Entry, now: Instant) -> bool {
        now.saturating_duration_since(entry.last_seen) < self.idle_timeout
            && now.saturating_duration_since(entry.created) < MAX_LIFETIME
    }

    /// Starts a session for `access_key_id`; returns the cookie value and the session.
    pub fn start(&self, access_key_id: &str, now: Instant) -> (String, Session) {
        let cookie = random_token();
        let key = key_of(&cookie);
        let csrf = random_token();
        let mut entries = self.entries.lock().expect("sessions lock");
        entries.retain(|_, e| self.live(e, now));
        if entries.len() >= self.capacity
            && let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, e)| e.last_seen)
                .map(|(k, _)| *k)
        {
            entries.remove(&oldest);
        }
        entries.insert(
            key,
            Entry {
                access_key_id: access_key_id.to_string(),
                csrf: csrf.clone(),
                created: now,
                last_seen: now,
                flash: None,
            },
        );
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
        Some(Session {
            key,
            access_key_id: entry.access_key_id.clone(),
            csrf: entry.csrf.clone(),
        })
    }

    pub fn end(&self, session: &Session) {
        self.entries
            .lock()
            .expect("sessions lock")
            .remove(&session.key);
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
        let (cookie, session) = sessions.start("AKIDEXAMPLE", now);
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
        let (c1, s1) = sessions.start("A", now);
        let (c2, s2) = sessions.start("A", now);
        assert_ne!(c1, c2);
        assert_ne!(s1.csrf, s2.csrf);
        assert_ne!(c1, s1.csrf, "the CSRF token is not the cookie");
    }

    #[test]
    fn the_store_keeps_no_cookie_value() {
        let sessions = Sessions::new(IDLE);
        let (cookie, _) = sessions.start("A", Instant::now());
        let entries = sessions.entries.lock().unwrap();
        assert!(entries.keys().all(|k| hex::encode(k) != cookie));
        assert!(entries.contains_key(&key_of(&cookie)));
    }

    #[test]
    fn idle_sessions_expire_and_activity_extends_them() {
        let sessions = Sessions::new(IDLE);
        let t0 = Instant::now();
        let (cookie, _) = sessions.start("A", t0);
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
        let (cookie, _) = sessions.start("A", t0);
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
        let (cookie, _) = sessions.start("A", t0);
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
        let (cookie, session) = sessions.start("A", now);
        sessions.end(&session);
        assert!(sessions.resume(&cookie, now, true).is_none());
    }

    #[test]
    fn csrf_tokens_must_match_exactly() {
        let sessions = Sessions::new(IDLE);
        let (_, session) = sessions.start("A", Instant::now());
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
        let (_, session) = sessions.start("A", Instant::now());
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
    fn the_oldest_session_makes_room() {
        let sessions = Sessions {
            capacity: 50,
            ..Sessions::new(IDLE)
        };
        let t0 = Instant::now();
        let (first, _) = sessions.start("A", t0);
        for i in 1..50 {
            sessions.start("A", t0 + Duration::from_millis(i));
        }
        assert_eq!(sessions.len(), 50);
        sessions.start("A", t0 + Duration::from_secs(20));
        assert_eq!(sessions.len(), 50);
        assert!(
            sessions
                .resume(&first, t0 + Duration::from_secs(20), true)
                .is_none()
        );
    }
}
