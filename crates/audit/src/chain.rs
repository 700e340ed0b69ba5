//! The hash chain and its verification.
//!
//! A line of the log is the record's canonical JSON with two members appended at its end:
//!
//! ```text
//! {...record...,"previousHash":"<64 hex>","hash":"<64 hex>"}
//! ```
//!
//! `hash = SHA-256(previous hash (32 bytes) || canonical record bytes)`, where the canonical
//! bytes are the line without the two chain members (`{...record...}`), and the first record's
//! previous hash is 32 zero bytes. Verification works on the bytes as stored, never on a
//! re-serialisation, so no JSON canonicalisation is involved: changing any byte of a record
//! changes its hash, and removing or moving a record breaks the `previousHash` link of the
//! record after it.

use std::collections::HashMap;
use std::io::BufRead;

use sha2::{Digest, Sha256};

/// The previous hash of the first record.
pub const GENESIS: [u8; 32] = [0; 32];

const PREV: &[u8] = b",\"previousHash\":\"";
const MID: &[u8] = b"\",\"hash\":\"";
const END: &[u8] = b"\"}";
/// Length of the chain members at the end of a line (without the newline).
pub const SUFFIX_LEN: usize = PREV.len() + 64 + MID.len() + 64 + END.len();

pub fn link(previous: &[u8; 32], canonical: &[u8]) -> [u8; 32] {
    Sha256::new()
        .chain_update(previous)
        .chain_update(canonical)
        .finalize()
        .into()
}

/// Appends the line for `canonical` (a JSON object) to `out`, newline included; returns its
/// hash.
pub fn write_line(out: &mut Vec<u8>, previous: &[u8; 32], canonical: &[u8]) -> [u8; 32] {
    let hash = link(previous, canonical);
    let body = canonical.strip_suffix(b"}").unwrap_or(canonical);
    out.extend_from_slice(body);
    out.extend_from_slice(PREV);
    out.extend_from_slice(&hex64(previous));
    out.extend_from_slice(MID);
    out.extend_from_slice(&hex64(&hash));
    out.extend_from_slice(END);
    out.push(b'\n');
    hash
}

/// Lower-case hex of a hash, on the stack.
fn hex64(hash: &[u8; 32]) -> [u8; 64] {
    let mut text = [0u8; 64];
    // The buffer is exactly twice the input's length, so encoding cannot fail.
    let _ = hex::encode_to_slice(hash, &mut text);
    text
}

/// A line split into its canonical record bytes and its chain members.
pub struct Parsed {
    pub canonical: Vec<u8>,
    pub previous: [u8; 32],
    pub hash: [u8; 32],
}

/// Splits a line (without its newline). `Err` says why it is not a chained record.
pub fn parse_line(line: &[u8]) -> Result<Parsed, String> {
    if line.len() < SUFFIX_LEN + 2 || !line.starts_with(b"{") {
        return Err("not an audit record (too short, or not a JSON object)".into());
    }
    let (body, suffix) = line.split_at(line.len() - SUFFIX_LEN);
    let hex_at = |start: usize| -> Result<[u8; 32], String> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(&suffix[start..start + 64], &mut out)
            .map_err(|_| "its chain members are not 64 hex digits".to_string())?;
        Ok(out)
    };
    if !suffix.starts_with(PREV)
        || &suffix[PREV.len() + 64..PREV.len() + 64 + MID.len()] != MID
        || !suffix.ends_with(END)
    {
        return Err("its chain members (previousHash, hash) are missing or malformed".into());
    }
    let previous = hex_at(PREV.len())?;
    let hash = hex_at(PREV.len() + 64 + MID.len())?;
    let mut canonical = body.to_vec();
    canonical.push(b'}');
    Ok(Parsed {
        canonical,
        previous,
        hash,
    })
}

/// An intact log.
#[derive(Debug, PartialEq, Eq)]
pub struct Summary {
    pub records: u64,
    /// The last record's hash ([`GENESIS`] for an empty file): compare it with a copy kept
    /// elsewhere to detect records removed from the end.
    pub head: [u8; 32],
    pub first_time: Option<String>,
    pub last_time: Option<String>,
}

/// The first record that breaks the chain.
#[derive(Debug, PartialEq, Eq)]
pub struct Broken {
    /// 1-based line number in the file.
    pub line: u64,
    pub reason: String,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// Checks a whole log. Two passes over the lines: the first indexes every line's stored hash
/// (so a broken link can say where the expected predecessor went), the second walks the chain.
pub fn verify(reader: impl BufRead) -> std::io::Result<Result<Summary, Broken>> {
    let mut lines: Vec<Vec<u8>> = Vec::new();
    for line in reader.split(b'\n') {
        lines.push(line?);
    }
    Ok(verify_lines(&lines))
}

fn event_time(canonical: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(canonical).ok()?;
    v.get("eventTime")?.as_str().map(str::to_string)
}

pub fn verify_lines(lines: &[Vec<u8>]) -> Result<Summary, Broken> {
    let parsed: Vec<Result<Parsed, String>> = lines.iter().map(|l| parse_line(l)).collect();
    let mut position: HashMap<[u8; 32], u64> = HashMap::new();
    for (i, p) in parsed.iter().enumerate() {
        if let Ok(p) = p {
            position.entry(p.hash).or_insert(i as u64 + 1);
        }
    }
    let mut previous = GENESIS;
    let mut summary = Summary {
        records: 0,
        head: GENESIS,
        first_time: None,
        last_time: None,
    };
    for (i, p) in parsed.iter().enumerate() {
        let line = i as u64 + 1;
        let broken = |reason: String| Err(Broken { line, reason });
        let p = match p {
            Ok(p) => p,
            Err(why) => return broken(format!("altered: {why}")),
        };
        if link(&p.previous, &p.canonical) != p.hash {
            return broken("altered: the record's contents do not match its hash".to_string());
        }
        if serde_json::from_slice::<serde_json::Value>(&p.canonical).is_err() {
            return broken("altered: the record is not valid JSON".to_string());
        }
        if p.previous != previous {
            let reason = if line == 1 {
                "removed: the first record(s) of the log are missing (this record's previousHash is not the start of a chain)".to_string()
            } else {
                match position.get(&p.previous) {
                    Some(&at) if at > line => format!(
                        "reordered: this record follows line {at}, which comes after it in the file"
                    ),
                    Some(&at) => format!(
                        "removed or reordered: this record follows line {at}, not line {}; the records between are missing or were moved",
                        line - 1
                    ),
                    None => format!(
                        "removed: the record before this one is missing (its previousHash matches no record; line {} was altered or a record after it was deleted)",
                        line - 1
                    ),
                }
            };
            return broken(reason);
        }
        previous = p.hash;
        summary.records += 1;
        let time = event_time(&p.canonical);
        if summary.first_time.is_none() {
            summary.first_time = time.clone();
        }
        summary.last_time = time;
    }
    summary.head = previous;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(n: usize) -> Vec<Vec<u8>> {
        let mut prev = GENESIS;
        let mut out = Vec::new();
        for i in 0..n {
            let mut buf = Vec::new();
            let canonical = format!(r#"{{"eventName":"Op{i}","eventTime":"t{i}"}}"#);
            prev = write_line(&mut buf, &prev, canonical.as_bytes());
            buf.pop();
            out.push(buf);
        }
        out
    }

    #[test]
    fn an_intact_chain_verifies() {
        let lines = log(5);
        let s = verify_lines(&lines).unwrap();
        assert_eq!(s.records, 5);
        assert_eq!(s.first_time.as_deref(), Some("t0"));
        assert_eq!(s.last_time.as_deref(), Some("t4"));
        assert_eq!(s.head, parse_line(&lines[4]).unwrap().hash);
        assert_eq!(verify_lines(&[]).unwrap().records, 0);
        // Every line is valid JSON with the chain members.
        let v: serde_json::Value = serde_json::from_slice(&lines[2]).unwrap();
        assert_eq!(v["eventName"], "Op2");
        assert_eq!(v["hash"].as_str().unwrap().len(), 64);
    }

    #[test]
    fn an_edited_record_is_named() {
        let mut lines = log(5);
        lines[2] = String::from_utf8(lines[2].clone())
            .unwrap()
            .replace("Op2", "Op9")
            .into_bytes();
        let b = verify_lines(&lines).unwrap_err();
        assert_eq!(b.line, 3);
        assert!(b.reason.starts_with("altered"), "{b}");
    }

    #[test]
    fn an_edited_record_with_a_recomputed_hash_breaks_the_next_link() {
        let mut lines = log(5);
        let p = parse_line(&lines[2]).unwrap();
        let edited = String::from_utf8(p.canonical)
            .unwrap()
            .replace("Op2", "Op9");
        let mut buf = Vec::new();
        write_line(&mut buf, &p.previous, edited.as_bytes());
        buf.pop();
        lines[2] = buf;
        let b = verify_lines(&lines).unwrap_err();
        assert_eq!(b.line, 4);
        assert!(b.reason.starts_with("removed"), "{b}");
    }

    #[test]
    fn a_deleted_record_is_named() {
        let mut lines = log(5);
        lines.remove(2);
        let b = verify_lines(&lines).unwrap_err();
        assert_eq!(b.line, 3);
        assert!(b.reason.starts_with("removed"), "{b}");
        let mut lines = log(5);
        lines.remove(0);
        let b = verify_lines(&lines).unwrap_err();
        assert_eq!(b.line, 1);
        assert!(b.reason.contains("first record"), "{b}");
    }

    #[test]
    fn a_reordered_record_is_named() {
        let mut lines = log(5);
        lines.swap(1, 2);
        let b = verify_lines(&lines).unwrap_err();
        assert_eq!(b.line, 2);
        assert!(b.reason.starts_with("reordered"), "{b}");
        assert!(b.reason.contains("line 3"), "{b}");
    }

    #[test]
    fn garbage_and_truncated_lines_are_named() {
        let mut lines = log(3);
        lines[1].truncate(40);
        assert_eq!(verify_lines(&lines).unwrap_err().line, 2);
        let mut lines = log(3);
        lines.insert(1, b"{\"eventName\":\"forged\"}".to_vec());
        assert_eq!(verify_lines(&lines).unwrap_err().line, 2);
    }
}
