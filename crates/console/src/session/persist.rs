//! Sessions that survive a restart: the session table is kept in a file of the data directory
//! (`console-sessions.json`, owner-only), written when a session starts or ends and at most
//! once a minute for activity, and read back at start. The file holds what the memory table
//! holds — the SHA-256 of each cookie, never the cookie — plus each session's CSRF token and
//! its times as wall-clock milliseconds. Flash messages are not kept.
//!
//! A file that cannot be read is left aside (the console starts with no sessions and says so
//! in the log); one that cannot be written leaves the sessions in memory working.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{Entry, Sessions};

#[derive(Serialize, Deserialize)]
struct Saved {
    /// Hex SHA-256 of the cookie value.
    key: String,
    access_key_id: String,
    csrf: String,
    created_ms: u64,
    last_seen_ms: u64,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Writes the live sessions to `path` (replacing it atomically).
pub fn save(sessions: &Sessions, path: &Path) -> std::io::Result<()> {
    let (now, wall) = (Instant::now(), SystemTime::now());
    let as_ms = |t: Instant| {
        unix_ms(
            wall.checked_sub(now.saturating_duration_since(t))
                .unwrap_or(UNIX_EPOCH),
        )
    };
    let saved: Vec<Saved> = {
        let entries = sessions.entries.lock().expect("sessions lock");
        entries
            .iter()
            .filter(|(_, e)| sessions.live(e, now))
            .map(|(k, e)| Saved {
                key: hex::encode(k),
                access_key_id: e.access_key_id.clone(),
                csrf: e.csrf.clone(),
                created_ms: as_ms(e.created),
                last_seen_ms: as_ms(e.last_seen),
            })
            .collect()
    };
    let body = serde_json::to_vec(&saved).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("json.tmp");
    write_private(&tmp, &body)?;
    std::fs::rename(&tmp, path)
}

#[cfg(unix)]
fn write_private(path: &Path, body: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(body)?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, body: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, body)
}

/// Reads the sessions saved in `path` into `sessions`, leaving out those that ended while the
/// server was down (idle timeout, absolute lifetime); returns how many were restored. A
/// missing file restores none.
pub fn load(sessions: &Sessions, path: &Path) -> std::io::Result<usize> {
    let body = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let saved: Vec<Saved> = serde_json::from_slice(&body).map_err(std::io::Error::other)?;
    let (now, wall_ms) = (Instant::now(), unix_ms(SystemTime::now()));
    // An instant `ms` wall-clock milliseconds ago; `None` before this machine's clock began.
    let at = |ms: u64| now.checked_sub(Duration::from_millis(wall_ms.saturating_sub(ms)));
    let mut entries = sessions.entries.lock().expect("sessions lock");
    let mut restored = 0;
    for s in saved {
        let (Ok(key), Some(created), Some(last_seen)) =
            (hex::decode(&s.key), at(s.created_ms), at(s.last_seen_ms))
        else {
            continue;
        };
        let Ok(key) = <[u8; 32]>::try_from(key) else {
            continue;
        };
        let entry = Entry {
            access_key_id: s.access_key_id,
            csrf: s.csrf,
            created,
            last_seen,
            flash: None,
        };
        if sessions.live(&entry, now) && entries.len() < sessions.capacity {
            entries.insert(key, entry);
            restored += 1;
        }
    }
    Ok(restored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_come_back_from_the_file_with_their_csrf_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console-sessions.json");
        let before = Sessions::new(Duration::from_secs(900));
        let (cookie, session) = before.start("AKIDEXAMPLE", Instant::now());
        let (gone, ended) = before.start("AKIDEXAMPLE", Instant::now());
        before.end(&ended);
        save(&before, &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&cookie), "the file holds no cookie value");
        let after = Sessions::new(Duration::from_secs(900));
        assert_eq!(load(&after, &path).unwrap(), 1);
        let resumed = after.resume(&cookie, Instant::now(), true).expect("kept");
        assert_eq!(resumed.access_key_id, "AKIDEXAMPLE");
        assert_eq!(resumed.csrf, session.csrf);
        assert!(after.resume(&gone, Instant::now(), true).is_none());
    }

    #[test]
    fn sessions_that_went_idle_while_down_are_not_restored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console-sessions.json");
        let saved = vec![Saved {
            key: hex::encode([7u8; 32]),
            access_key_id: "A".into(),
            csrf: "c".into(),
            created_ms: unix_ms(SystemTime::now()) - 3_600_000,
            last_seen_ms: unix_ms(SystemTime::now()) - 1_000_000,
        }];
        std::fs::write(&path, serde_json::to_vec(&saved).unwrap()).unwrap();
        let sessions = Sessions::new(Duration::from_secs(900));
        assert_eq!(load(&sessions, &path).unwrap(), 0);
        assert_eq!(load(&sessions, &dir.path().join("missing")).unwrap(), 0);
    }
}
