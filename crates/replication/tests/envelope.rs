//! Behaviour of `coffer_replication::envelope`: sealed, authenticated messages between Regions.

use coffer_kms::RootKey;
use coffer_replication::envelope::{
    EnvelopeError, FORMAT_V1, OVERHEAD, PublicKey, RegionKeyPair, open, seal,
};

const A: &str = "us-east-1";
const B: &str = "eu-west-1";
const C: &str = "ap-south-1";
const KIND: &[u8] = b"replicate-change";
const MESSAGE: &[u8] = br#"{"seq":1,"secret":"SecretString value"}"#;

fn root(byte: u8) -> RootKey {
    RootKey::from_hex(&format!("{byte:02x}").repeat(32)).unwrap()
}

/// Three Regions with their own root keys.
struct Regions {
    a: RegionKeyPair,
    b: RegionKeyPair,
    c: RegionKeyPair,
}

fn regions() -> Regions {
    Regions {
        a: RegionKeyPair::derive(&root(0x41), A),
        b: RegionKeyPair::derive(&root(0x42), B),
        c: RegionKeyPair::derive(&root(0x43), C),
    }
}

fn sealed_a_to_b(r: &Regions) -> Vec<u8> {
    seal(&r.a, A, &r.b.public_key(), B, KIND, MESSAGE)
}

fn assert_does_not_open(result: Result<zeroize::Zeroizing<Vec<u8>>, EnvelopeError>) {
    match result {
        Err(EnvelopeError::Open { .. }) => {}
        Err(other) => panic!("expected EnvelopeError::Open, got {other:?}"),
        Ok(_) => panic!("a message that should not open opened"),
    }
}

#[test]
fn round_trip() {
    let r = regions();
    let sealed = sealed_a_to_b(&r);
    assert_eq!(sealed[0], FORMAT_V1);
    assert_eq!(sealed.len(), MESSAGE.len() + OVERHEAD);
    let opened = open(&r.b, B, &r.a.public_key(), A, KIND, &sealed).unwrap();
    assert_eq!(&opened[..], MESSAGE);
}

#[test]
fn round_trip_of_empty_and_large_messages_and_empty_context() {
    let r = regions();
    let large: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    for plaintext in [&b""[..], &large[..]] {
        for aad in [&b""[..], KIND] {
            let sealed = seal(&r.a, A, &r.b.public_key(), B, aad, plaintext);
            assert_eq!(sealed.len(), plaintext.len() + OVERHEAD);
            let opened = open(&r.b, B, &r.a.public_key(), A, aad, &sealed).unwrap();
            assert_eq!(&opened[..], plaintext);
        }
    }
}

#[test]
fn round_trip_in_both_directions_and_to_self() {
    let r = regions();
    let back = seal(&r.b, B, &r.a.public_key(), A, KIND, MESSAGE);
    assert_eq!(
        &open(&r.a, A, &r.b.public_key(), B, KIND, &back).unwrap()[..],
        MESSAGE
    );
    let to_self = seal(&r.a, A, &r.a.public_key(), A, KIND, MESSAGE);
    assert_eq!(
        &open(&r.a, A, &r.a.public_key(), A, KIND, &to_self).unwrap()[..],
        MESSAGE
    );
}

#[test]
fn sealing_is_randomised_and_hides_the_plaintext() {
    let r = regions();
    let first = sealed_a_to_b(&r);
    let second = sealed_a_to_b(&r);
    assert_ne!(first, second, "a fresh ephemeral key per message");
    assert_ne!(first[1..33], second[1..33]);
    for sealed in [&first, &second] {
        assert!(!sealed.windows(6).any(|w| w == b"Secret"));
        assert_eq!(
            &open(&r.b, B, &r.a.public_key(), A, KIND, sealed).unwrap()[..],
            MESSAGE
        );
    }
}

#[test]
fn wrong_recipient_cannot_open() {
    let r = regions();
    let sealed = sealed_a_to_b(&r);
    // C, under its own name or pretending to be B.
    assert_does_not_open(open(&r.c, C, &r.a.public_key(), A, KIND, &sealed));
    assert_does_not_open(open(&r.c, B, &r.a.public_key(), A, KIND, &sealed));
    // The sender itself cannot open what it sealed for B.
    assert_does_not_open(open(&r.a, B, &r.a.public_key(), A, KIND, &sealed));
    // B's name derived from another root key is another key pair.
    let b_other_root = RegionKeyPair::derive(&root(0x44), B);
    assert_does_not_open(open(&b_other_root, B, &r.a.public_key(), A, KIND, &sealed));
}

#[test]
fn forged_sender_is_rejected() {
    let r = regions();
    // A third key pair seals for B while claiming to be A.
    let forged = seal(&r.c, A, &r.b.public_key(), B, KIND, MESSAGE);
    assert_does_not_open(open(&r.b, B, &r.a.public_key(), A, KIND, &forged));
    // A key pair derived for the name A from another root key is no better.
    let impostor = RegionKeyPair::derive(&root(0x44), A);
    let forged = seal(&impostor, A, &r.b.public_key(), B, KIND, MESSAGE);
    assert_does_not_open(open(&r.b, B, &r.a.public_key(), A, KIND, &forged));
    // A genuine message from A does not pass as one from C, under either name.
    let genuine = sealed_a_to_b(&r);
    assert_does_not_open(open(&r.b, B, &r.c.public_key(), C, KIND, &genuine));
    assert_does_not_open(open(&r.b, B, &r.c.public_key(), A, KIND, &genuine));
    assert_does_not_open(open(&r.b, B, &r.a.public_key(), C, KIND, &genuine));
}

#[test]
fn tampered_byte_anywhere_fails() {
    let r = regions();
    let sealed = sealed_a_to_b(&r);
    for i in 0..sealed.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut tampered = sealed.clone();
            tampered[i] ^= mask;
            let result = open(&r.b, B, &r.a.public_key(), A, KIND, &tampered);
            if i == 0 {
                assert!(
                    matches!(result, Err(EnvelopeError::UnsupportedFormat(f)) if f == FORMAT_V1 ^ mask),
                    "byte 0 ^ {mask:#x}: {result:?}"
                );
            } else {
                assert_does_not_open(result);
            }
        }
    }
    // Extra bytes after the tag are tampering too.
    let mut extended = sealed.clone();
    extended.push(0);
    assert_does_not_open(open(&r.b, B, &r.a.public_key(), A, KIND, &extended));
}

#[test]
fn swapped_region_names_fail() {
    let r = regions();
    let sealed = sealed_a_to_b(&r);
    let pk_a = r.a.public_key();
    // Names swapped, or either one replaced, with the right keys.
    assert_does_not_open(open(&r.b, A, &pk_a, B, KIND, &sealed));
    assert_does_not_open(open(&r.b, B, &pk_a, C, KIND, &sealed));
    assert_does_not_open(open(&r.b, C, &pk_a, A, KIND, &sealed));
    assert_does_not_open(open(&r.b, "", &pk_a, A, KIND, &sealed));
    // Shifting characters between the two names is a different pair of names.
    let shifted = seal(
        &r.a,
        "us-east-",
        &r.b.public_key(),
        "1eu-west-1",
        KIND,
        MESSAGE,
    );
    assert_does_not_open(open(&r.b, B, &pk_a, A, KIND, &shifted));
    // Near-identical names are different names.
    assert_does_not_open(open(&r.b, "EU-WEST-1", &pk_a, A, KIND, &sealed));
    assert_does_not_open(open(&r.b, B, &pk_a, "us-east-1 ", KIND, &sealed));
    // The right names still open it.
    assert!(open(&r.b, B, &pk_a, A, KIND, &sealed).is_ok());
}

#[test]
fn different_context_fails() {
    let r = regions();
    let sealed = sealed_a_to_b(&r);
    let pk_a = r.a.public_key();
    for aad in [&b""[..], b"replicate-change ", b"ack", b"REPLICATE-CHANGE"] {
        assert_does_not_open(open(&r.b, B, &pk_a, A, aad, &sealed));
    }
}

#[test]
fn truncated_input_fails() {
    let r = regions();
    let sealed = sealed_a_to_b(&r);
    let pk_a = r.a.public_key();
    assert!(matches!(
        open(&r.b, B, &pk_a, A, KIND, &[]),
        Err(EnvelopeError::Truncated { len: 0 })
    ));
    for len in 1..sealed.len() {
        let result = open(&r.b, B, &pk_a, A, KIND, &sealed[..len]);
        if len < OVERHEAD {
            assert!(
                matches!(result, Err(EnvelopeError::Truncated { len: l }) if l == len),
                "{len}: {result:?}"
            );
        } else {
            assert_does_not_open(result);
        }
    }
    // The tag cut off an empty message's envelope is also too short.
    let empty = seal(&r.a, A, &r.b.public_key(), B, KIND, b"");
    assert_eq!(empty.len(), OVERHEAD);
    assert!(matches!(
        open(&r.b, B, &pk_a, A, KIND, &empty[..OVERHEAD - 1]),
        Err(EnvelopeError::Truncated { .. })
    ));
}

#[test]
fn unknown_format_is_rejected() {
    let r = regions();
    let mut sealed = sealed_a_to_b(&r);
    for format in [0u8, 2, 0xff] {
        sealed[0] = format;
        assert!(matches!(
            open(&r.b, B, &r.a.public_key(), A, KIND, &sealed),
            Err(EnvelopeError::UnsupportedFormat(f)) if f == format
        ));
    }
}

#[test]
fn low_order_encapsulated_key_fails_cleanly() {
    let r = regions();
    let mut sealed = sealed_a_to_b(&r);
    // u = 0 and u = 1 are points of low order: the ephemeral Diffie-Hellman result is all zeros.
    for u in [0u8, 1] {
        sealed[1..33].fill(0);
        sealed[1] = u;
        assert_does_not_open(open(&r.b, B, &r.a.public_key(), A, KIND, &sealed));
    }
}

#[test]
fn derive_is_deterministic_per_root_and_region() {
    let a1 = RegionKeyPair::derive(&root(0x41), A);
    let a2 = RegionKeyPair::derive(&root(0x41), A);
    assert_eq!(a1.public_key(), a2.public_key());
    // Sealed with one derivation, opened with another: same key pair.
    let b = RegionKeyPair::derive(&root(0x42), B);
    let sealed = seal(&a1, A, &b.public_key(), B, KIND, MESSAGE);
    let b_again = RegionKeyPair::derive(&root(0x42), B);
    assert_eq!(
        &open(&b_again, B, &a2.public_key(), A, KIND, &sealed).unwrap()[..],
        MESSAGE
    );
}

#[test]
fn derive_differs_across_regions_and_roots() {
    let same_root = root(0x41);
    let keys = [
        RegionKeyPair::derive(&same_root, A).public_key(),
        RegionKeyPair::derive(&same_root, B).public_key(),
        RegionKeyPair::derive(&same_root, "").public_key(),
        RegionKeyPair::derive(&same_root, "US-EAST-1").public_key(),
        RegionKeyPair::derive(&root(0x42), A).public_key(),
    ];
    for (i, x) in keys.iter().enumerate() {
        for y in &keys[i + 1..] {
            assert_ne!(x, y);
        }
    }
}

/// Pins the key derivation and the wire format, so nodes running different versions keep
/// understanding each other. The expected values come from an independent implementation (Python,
/// `cryptography`'s X25519 and AES-GCM, HKDF and RFC 9180's key schedule written out by hand, and
/// checked against RFC 9180's Auth-mode test vectors), not from this crate.
#[test]
fn matches_independent_implementation_of_v1() {
    let a = RegionKeyPair::derive(&root(0x41), A);
    let b = RegionKeyPair::derive(&root(0x42), B);
    assert_eq!(
        a.public_key().to_base64(),
        "wrm0aLabdyaeQWVSJvmLfEq0KyI0b+hXdwpxYBW1qzI="
    );
    assert_eq!(
        b.public_key().to_base64(),
        "HGFLKK4XgEWKff0q8LNma9rqzzc5ZqThuFkk06Hlbws="
    );
    // Sealed from A to B, context "replicate-change", with the ephemeral private key 0x45 * 32.
    let sealed = hex_decode(
        "013286894cd2845a6db6a28fbf0677605f80e5a62385bf4e10a790ae5fde36736b\
         1f82a339b345752ae5d030e1997fc0b30676f84d1eb96ee8c5",
    );
    let opened = open(&b, B, &a.public_key(), A, b"replicate-change", &sealed).unwrap();
    assert_eq!(&opened[..], br#"{"seq":1}"#);
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn public_key_base64_round_trip() {
    let r = regions();
    for pair in [&r.a, &r.b, &r.c] {
        let pk = pair.public_key();
        let text = pk.to_base64();
        assert_eq!(text.len(), 44);
        assert!(text.ends_with('='));
        assert_eq!(PublicKey::from_base64(&text).unwrap(), pk);
        assert_eq!(text.parse::<PublicKey>().unwrap(), pk);
        assert_eq!(pk.to_string(), text);
        assert_eq!(PublicKey::from_bytes(*pk.as_bytes()).unwrap(), pk);
        // A trailing newline (from a file or an environment variable) is tolerated.
        assert_eq!(PublicKey::from_base64(&format!(" {text}\n")).unwrap(), pk);
        // And through serde, as a peer's configuration would hold it.
        let json = serde_json::to_string(&pk).unwrap();
        assert_eq!(json, format!("\"{text}\""));
        assert_eq!(serde_json::from_str::<PublicKey>(&json).unwrap(), pk);
    }
}

#[test]
fn public_key_rejects_bad_input() {
    let good = regions().a.public_key().to_base64();
    let unpadded = good.trim_end_matches('=').to_owned();
    let url_safe = "_-".repeat(21) + "A=";
    let non_canonical = {
        // The last character before the padding carries 2 unused bits: set them.
        let mut s = good.clone().into_bytes();
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let i = alphabet.iter().position(|&c| c == s[42]).unwrap();
        s[42] = alphabet[i | 0b11];
        String::from_utf8(s).unwrap()
    };
    let cases = [
        String::new(),
        "not a key".to_owned(),
        unpadded,
        format!("{good}="),
        format!("{good}AAAA"),
        good[..40].to_owned(),
        format!("{}==", &good[..42]),
        format!("{}!{}", &good[..10], &good[11..]),
        format!("{} {}", &good[..10], &good[11..]),
        url_safe,
        non_canonical.clone(),
        hex_encode(&[7u8; 32]),
        // 33 bytes.
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        // Points of low order: u = 0 and u = 1.
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".to_owned(),
        "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".to_owned(),
    ];
    assert_ne!(non_canonical, good);
    for case in &cases {
        let result = PublicKey::from_base64(case);
        assert!(
            matches!(result, Err(EnvelopeError::InvalidPublicKey(_))),
            "{case:?} gave {result:?}"
        );
        assert!(case.parse::<PublicKey>().is_err());
    }
    assert!(serde_json::from_str::<PublicKey>("\"AAAA\"").is_err());
    assert!(serde_json::from_str::<PublicKey>("42").is_err());
    assert!(matches!(
        PublicKey::from_bytes([0u8; 32]),
        Err(EnvelopeError::InvalidPublicKey(_))
    ));
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn debug_redaction() {
    let root = root(0x41);
    let pair = RegionKeyPair::derive(&root, A);
    let secret = root.derive_subkey("coffer replication x25519 v1\0us-east-1");
    let shown = format!("{pair:?} {pair:#?}");
    assert!(shown.contains("RegionKeyPair"));
    assert!(shown.contains(&pair.public_key().to_base64()));
    assert!(shown.contains(".."));
    assert!(!shown.contains(&hex_encode(&secret[..])));
    let decimal = format!("{:?}", &secret[..]);
    assert!(!shown.contains(&decimal[1..decimal.len() - 1]));
    // Nor any 4-byte run of the secret (clamping changes only the first and last byte).
    for window in secret[1..31].windows(4) {
        assert!(!shown.contains(&format!("{window:?}")[1..]));
        assert!(!shown.contains(&hex_encode(window)));
    }
}

#[test]
fn errors_carry_no_secret_material() {
    let r = regions();
    let sealed = sealed_a_to_b(&r);
    let errors = [
        open(&r.c, C, &r.a.public_key(), A, KIND, &sealed).unwrap_err(),
        open(&r.b, B, &r.a.public_key(), A, KIND, &sealed[..10]).unwrap_err(),
        open(&r.b, B, &r.a.public_key(), A, KIND, &[9]).unwrap_err(),
        PublicKey::from_base64("nope").unwrap_err(),
    ];
    for error in &errors {
        let text = format!("{error} {error:?}");
        assert!(!text.contains("Secret"), "{text}");
        assert!(!text.contains(&hex_encode(&sealed[33..41])), "{text}");
    }
    assert_eq!(
        errors[0].to_string(),
        "sealed replication message from Region \"us-east-1\" to Region \"ap-south-1\" did not \
         open: wrong keys, Region names or message kind, or damaged"
    );
}
