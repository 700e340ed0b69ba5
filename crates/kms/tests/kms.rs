//! Behaviour of the key service's cryptographic core, through its public API only.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use coffer_kms::password::{self, PasswordError, PasswordRules};
use coffer_kms::{
    DataKey, EncryptionContext, KeyMaterial, KmsError, RootKey, RootKeyFileProblem,
    ciphertext_key_id, decrypt, decrypt_data_key, encrypt, generate_data_key,
};

const KEY_ARN: &str = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const SECRET_ARN: &str = "arn:aws:secretsmanager:us-east-1:111122223333:secret:db-a1b2c3";

fn context(version: &str) -> EncryptionContext {
    EncryptionContext::from([
        ("SecretARN".to_owned(), SECRET_ARN.to_owned()),
        ("SecretVersionId".to_owned(), version.to_owned()),
    ])
}

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "coffer-kms-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn key_path(&self) -> PathBuf {
        self.0.join("keys").join("us-east-1.key")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn write_with_mode(path: &Path, contents: &[u8], mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, contents).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn hex_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------- KMS Encrypt / Decrypt

#[test]
fn encrypt_then_decrypt_returns_the_plaintext() {
    let key = KeyMaterial::generate();
    let blob = encrypt(&key, KEY_ARN, b"hello", &context("v1")).unwrap();
    assert_eq!(&decrypt(&key, &blob, &context("v1")).unwrap()[..], b"hello");
}

#[test]
fn encrypt_accepts_one_to_4096_bytes_only() {
    let key = KeyMaterial::generate();
    let ctx = EncryptionContext::new();
    for len in [1, 4096] {
        let plaintext = vec![0xA5; len];
        let blob = encrypt(&key, KEY_ARN, &plaintext, &ctx).unwrap();
        assert_eq!(&decrypt(&key, &blob, &ctx).unwrap()[..], &plaintext[..]);
    }
    for len in [0, 4097] {
        assert!(matches!(
            encrypt(&key, KEY_ARN, &vec![0; len], &ctx),
            Err(KmsError::InvalidPlaintextLength { len: l }) if l == len
        ));
    }
}

#[test]
fn encrypt_rejects_an_empty_or_overlong_key_id() {
    let key = KeyMaterial::generate();
    let ctx = EncryptionContext::new();
    assert!(matches!(
        encrypt(&key, "", b"x", &ctx),
        Err(KmsError::InvalidKeyId { len: 0 })
    ));
    assert!(matches!(
        encrypt(&key, &"k".repeat(1025), b"x", &ctx),
        Err(KmsError::InvalidKeyId { len: 1025 })
    ));
    assert!(encrypt(&key, &"k".repeat(1024), b"x", &ctx).is_ok());
}

#[test]
fn the_same_plaintext_encrypts_differently_each_time() {
    let key = KeyMaterial::generate();
    let a = encrypt(&key, KEY_ARN, b"same", &context("v1")).unwrap();
    let b = encrypt(&key, KEY_ARN, b"same", &context("v1")).unwrap();
    assert_ne!(a, b);
}

#[test]
fn blob_names_the_key_it_was_made_with() {
    let key = KeyMaterial::generate();
    let blob = encrypt(&key, KEY_ARN, b"hello", &context("v1")).unwrap();
    assert_eq!(ciphertext_key_id(&blob).unwrap(), KEY_ARN);
}

#[test]
fn malformed_blobs_have_no_key_id() {
    let key = KeyMaterial::generate();
    let blob = encrypt(&key, KEY_ARN, b"hello", &context("v1")).unwrap();
    let mut other_version = blob.clone();
    other_version[0] = 3;
    let mut bad_utf8 = blob.clone();
    bad_utf8[3] = 0xFF;
    let mut long_length = blob.clone();
    long_length[1] = 0xFF;
    for malformed in [
        &[][..],
        &[1][..],
        &blob[..3],
        &blob[..3 + KEY_ARN.len() + 32 + 27],
        &other_version,
        &bad_utf8,
        &long_length,
        &[1, 0, 0, 0, 0][..],
    ] {
        assert!(matches!(
            ciphertext_key_id(malformed),
            Err(KmsError::InvalidCiphertext)
        ));
        assert!(matches!(
            decrypt(&key, malformed, &context("v1")),
            Err(KmsError::InvalidCiphertext)
        ));
    }
}

#[test]
fn decrypt_with_a_different_encryption_context_fails() {
    let key = KeyMaterial::generate();
    let blob = encrypt(&key, KEY_ARN, b"hello", &context("v1")).unwrap();
    let mut extra = context("v1");
    extra.insert("Extra".to_owned(), "1".to_owned());
    let mut missing = context("v1");
    missing.remove("SecretVersionId");
    for wrong in [context("v2"), extra, missing, EncryptionContext::new()] {
        assert!(matches!(
            decrypt(&key, &blob, &wrong),
            Err(KmsError::InvalidCiphertext)
        ));
    }
}

#[test]
fn decrypt_with_another_kms_key_fails() {
    let blob = encrypt(&KeyMaterial::generate(), KEY_ARN, b"hello", &context("v1")).unwrap();
    assert!(matches!(
        decrypt(&KeyMaterial::generate(), &blob, &context("v1")),
        Err(KmsError::InvalidCiphertext)
    ));
}

#[test]
fn decrypt_of_a_blob_altered_in_any_byte_fails() {
    let key = KeyMaterial::generate();
    let blob = encrypt(&key, KEY_ARN, b"hello", &context("v1")).unwrap();
    for i in 0..blob.len() {
        let mut tampered = blob.clone();
        tampered[i] ^= 0x01;
        assert!(
            matches!(
                decrypt(&key, &tampered, &context("v1")),
                Err(KmsError::InvalidCiphertext)
            ),
            "flipping byte {i} went unnoticed"
        );
    }
    let mut extended = blob.clone();
    extended.push(0);
    assert!(decrypt(&key, &extended, &context("v1")).is_err());
    assert!(decrypt(&key, &blob[..blob.len() - 1], &context("v1")).is_err());
}

#[test]
fn rewriting_the_key_id_in_a_blob_makes_it_undecryptable() {
    let key = KeyMaterial::generate();
    let blob = encrypt(&key, "key-a", b"hello", &context("v1")).unwrap();
    let mut renamed = blob.clone();
    renamed[3..8].copy_from_slice(b"key-b");
    assert_eq!(ciphertext_key_id(&renamed).unwrap(), "key-b");
    assert!(matches!(
        decrypt(&key, &renamed, &context("v1")),
        Err(KmsError::InvalidCiphertext)
    ));
}

// ---------------------------------------------------------------- data keys

#[test]
fn data_key_round_trips_through_its_blob_and_opens_what_it_sealed() {
    let kms_key = KeyMaterial::generate();
    let (data_key, blob) = generate_data_key(&kms_key, KEY_ARN, &context("v1")).unwrap();
    assert_eq!(ciphertext_key_id(&blob).unwrap(), KEY_ARN);
    let aad = b"us-east-1|arn|v1";
    let sealed = data_key.seal(aad, b"s3cr3t");
    drop(data_key);

    let recovered = decrypt_data_key(&kms_key, &blob, &context("v1")).unwrap();
    assert_eq!(&recovered.open(aad, &sealed).unwrap()[..], b"s3cr3t");
}

#[test]
fn kms_decrypt_of_a_data_key_blob_returns_the_data_key_bytes() {
    let kms_key = KeyMaterial::generate();
    let (data_key, blob) = generate_data_key(&kms_key, KEY_ARN, &context("v1")).unwrap();
    let plaintext = decrypt(&kms_key, &blob, &context("v1")).unwrap();
    assert_eq!(&plaintext[..], &data_key.expose_bytes()[..]);
}

#[test]
fn each_data_key_is_fresh() {
    let kms_key = KeyMaterial::generate();
    let (a, _) = generate_data_key(&kms_key, KEY_ARN, &context("v1")).unwrap();
    let (b, _) = generate_data_key(&kms_key, KEY_ARN, &context("v1")).unwrap();
    assert_ne!(a.expose_bytes(), b.expose_bytes());
}

#[test]
fn decrypt_data_key_fails_for_wrong_context_wrong_key_or_non_key_plaintext() {
    let kms_key = KeyMaterial::generate();
    let (_, blob) = generate_data_key(&kms_key, KEY_ARN, &context("v1")).unwrap();
    assert!(matches!(
        decrypt_data_key(&kms_key, &blob, &context("v2")),
        Err(KmsError::InvalidCiphertext)
    ));
    assert!(matches!(
        decrypt_data_key(&KeyMaterial::generate(), &blob, &context("v1")),
        Err(KmsError::InvalidCiphertext)
    ));
    let short = encrypt(&kms_key, KEY_ARN, b"not a key", &context("v1")).unwrap();
    assert!(matches!(
        decrypt_data_key(&kms_key, &short, &context("v1")),
        Err(KmsError::InvalidCiphertext)
    ));
}

#[test]
fn sealed_value_is_nonce_ciphertext_tag() {
    let (data_key, _) =
        generate_data_key(&KeyMaterial::generate(), KEY_ARN, &context("v1")).unwrap();
    assert_eq!(data_key.seal(b"aad", b"12345").len(), 12 + 5 + 16);
    assert_eq!(data_key.seal(b"aad", b"").len(), 12 + 16);
    assert_eq!(
        &data_key.open(b"aad", &data_key.seal(b"aad", b"")).unwrap()[..],
        b""
    );
}

#[test]
fn sealed_value_does_not_open_with_other_aad_other_key_or_altered_bytes() {
    let kms_key = KeyMaterial::generate();
    let (data_key, _) = generate_data_key(&kms_key, KEY_ARN, &context("v1")).unwrap();
    let (other_key, _) = generate_data_key(&kms_key, KEY_ARN, &context("v1")).unwrap();
    let sealed = data_key.seal(b"us-east-1|arn|v1", b"value");
    assert!(matches!(
        data_key.open(b"us-east-1|arn|v2", &sealed),
        Err(KmsError::InvalidCiphertext)
    ));
    assert!(other_key.open(b"us-east-1|arn|v1", &sealed).is_err());
    for i in 0..sealed.len() {
        let mut tampered = sealed.clone();
        tampered[i] ^= 0x80;
        assert!(data_key.open(b"us-east-1|arn|v1", &tampered).is_err());
    }
    assert!(data_key.open(b"us-east-1|arn|v1", &sealed[..27]).is_err());
    assert!(data_key.open(b"us-east-1|arn|v1", &[]).is_err());
}

// ---------------------------------------------------------------- root key: wrapping

#[test]
fn wrapped_key_material_unwraps_to_the_same_key() {
    let root = RootKey::from_hex(&"ab".repeat(32)).unwrap();
    let material = KeyMaterial::generate();
    let wrapped = root.wrap_key_material(KEY_ARN, &material);
    assert_eq!(wrapped.len(), 61);
    assert_eq!(wrapped[0], 1);
    let unwrapped = root.unwrap_key_material(KEY_ARN, &wrapped).unwrap();
    // Same key: what one encrypts, the other decrypts.
    let blob = encrypt(&material, KEY_ARN, b"x", &context("v1")).unwrap();
    assert_eq!(
        &decrypt(&unwrapped, &blob, &context("v1")).unwrap()[..],
        b"x"
    );
}

#[test]
fn unwrap_for_another_key_arn_fails() {
    let root = RootKey::from_hex(&"ab".repeat(32)).unwrap();
    let wrapped = root.wrap_key_material(KEY_ARN, &KeyMaterial::generate());
    let other_arn = KEY_ARN.replace("us-east-1", "us-west-2");
    let err = root.unwrap_key_material(&other_arn, &wrapped).unwrap_err();
    assert!(matches!(&err, KmsError::UnwrapKeyMaterial { key_arn } if *key_arn == other_arn));
}

#[test]
fn unwrap_under_another_root_key_or_of_damaged_bytes_fails() {
    let root = RootKey::from_hex(&"ab".repeat(32)).unwrap();
    let other_root = RootKey::from_hex(&"cd".repeat(32)).unwrap();
    let wrapped = root.wrap_key_material(KEY_ARN, &KeyMaterial::generate());
    assert!(other_root.unwrap_key_material(KEY_ARN, &wrapped).is_err());
    for i in 0..wrapped.len() {
        let mut tampered = wrapped.clone();
        tampered[i] ^= 0x01;
        assert!(root.unwrap_key_material(KEY_ARN, &tampered).is_err());
    }
    assert!(root.unwrap_key_material(KEY_ARN, &wrapped[..60]).is_err());
    assert!(root.unwrap_key_material(KEY_ARN, &[]).is_err());
}

#[test]
fn root_key_from_hex_accepts_64_hex_digits_only() {
    assert!(RootKey::from_hex(&"0F".repeat(32)).is_ok());
    assert!(RootKey::from_hex(&format!("{}\n", "0f".repeat(32))).is_ok());
    for bad in [
        String::new(),
        "0f".repeat(31),
        "0f".repeat(33),
        format!("{}zz", "0f".repeat(31)),
    ] {
        assert!(matches!(
            RootKey::from_hex(&bad),
            Err(KmsError::InvalidRootKeyHex)
        ));
    }
}

#[test]
fn root_key_fingerprint_identifies_the_key_without_revealing_it() {
    let hex = "ab".repeat(32);
    let a = RootKey::from_hex(&hex).unwrap();
    let b = RootKey::from_hex(&hex).unwrap();
    let other = RootKey::from_hex(&"cd".repeat(32)).unwrap();
    assert_eq!(a.fingerprint(), b.fingerprint());
    assert_ne!(a.fingerprint(), other.fingerprint());
    assert_eq!(a.fingerprint().len(), 16);
    assert!(!hex.contains(&a.fingerprint()));
}

// ---------------------------------------------------------------- root key: file

#[test]
fn root_key_file_is_created_with_mode_0600_in_a_0700_directory() {
    let tmp = TempDir::new();
    let path = tmp.key_path();
    let (_, created) = RootKey::load_or_create(&path).unwrap();
    assert!(created);
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    let contents = fs::read_to_string(&path).unwrap();
    assert_eq!(contents.len(), 65);
    assert!(contents.ends_with('\n'));
    assert!(contents[..64].bytes().all(|b| b.is_ascii_hexdigit()));
    // No temporary file is left behind.
    assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
}

#[test]
fn root_key_file_is_reused_on_the_second_load() {
    let tmp = TempDir::new();
    let path = tmp.key_path();
    let (first, created) = RootKey::load_or_create(&path).unwrap();
    assert!(created);
    let contents = fs::read(&path).unwrap();
    let (second, created) = RootKey::load_or_create(&path).unwrap();
    assert!(!created);
    assert_eq!(fs::read(&path).unwrap(), contents);
    assert_eq!(first.fingerprint(), second.fingerprint());
    // The same key: material wrapped by the first opens with the second.
    let wrapped = first.wrap_key_material(KEY_ARN, &KeyMaterial::generate());
    assert!(second.unwrap_key_material(KEY_ARN, &wrapped).is_ok());
    assert!(RootKey::load(&path).is_ok());
}

#[test]
fn root_key_file_holds_the_same_key_as_its_hex() {
    let tmp = TempDir::new();
    let path = tmp.key_path();
    let (from_file, _) = RootKey::load_or_create(&path).unwrap();
    let from_env = RootKey::from_hex(&fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(from_file.fingerprint(), from_env.fingerprint());
}

#[test]
fn root_key_file_written_by_an_operator_is_accepted_without_newline_and_in_uppercase() {
    let tmp = TempDir::new();
    let path = tmp.key_path();
    write_with_mode(&path, "AB".repeat(32).as_bytes(), 0o400);
    let (key, created) = RootKey::load_or_create(&path).unwrap();
    assert!(!created);
    assert_eq!(
        key.fingerprint(),
        RootKey::from_hex(&"ab".repeat(32)).unwrap().fingerprint()
    );
}

#[test]
fn root_key_file_readable_by_others_is_refused_and_left_untouched() {
    let tmp = TempDir::new();
    let path = tmp.key_path();
    let contents = format!("{}\n", "ab".repeat(32));
    for bad_mode in [0o644, 0o640, 0o604, 0o620, 0o602] {
        write_with_mode(&path, contents.as_bytes(), bad_mode);
        let err = RootKey::load_or_create(&path).unwrap_err();
        assert!(matches!(
            &err,
            KmsError::RootKeyFile { path: p, problem: RootKeyFileProblem::InsecureMode { mode } }
                if *p == path && *mode == bad_mode
        ));
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains(&format!("{bad_mode:04o}")), "{message}");
        assert!(message.contains("chmod 600"), "{message}");
        assert!(!message.contains(&"ab".repeat(32)), "{message}");
        assert_eq!(fs::read_to_string(&path).unwrap(), contents);
        assert_eq!(mode(&path), bad_mode);
    }
}

#[test]
fn root_key_file_truncated_or_garbage_is_refused_and_left_untouched() {
    let tmp = TempDir::new();
    let path = tmp.key_path();
    let valid = format!("{}\n", "ab".repeat(32));
    let cases: Vec<Vec<u8>> = vec![
        Vec::new(),
        valid.as_bytes()[..40].to_vec(),
        format!("{}zz\n", "ab".repeat(31)).into_bytes(),
        format!("{valid}\n").into_bytes(),
        format!(" {}", "ab".repeat(32)).into_bytes(),
        vec![0x42; 32], // raw bytes are not the documented format
        vec![b'a'; 10_000],
    ];
    for contents in cases {
        write_with_mode(&path, &contents, 0o600);
        let err = RootKey::load_or_create(&path).unwrap_err();
        assert!(
            matches!(
                &err,
                KmsError::RootKeyFile { problem: RootKeyFileProblem::InvalidContents { len }, .. }
                    if *len == contents.len() as u64
            ),
            "{err}"
        );
        assert!(err.to_string().contains(&path.display().to_string()));
        assert_eq!(fs::read(&path).unwrap(), contents);
    }
}

#[test]
fn root_key_path_that_is_a_directory_is_refused() {
    let tmp = TempDir::new();
    let path = tmp.key_path();
    fs::create_dir_all(&path).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).unwrap();
    assert!(matches!(
        RootKey::load_or_create(&path),
        Err(KmsError::RootKeyFile {
            problem: RootKeyFileProblem::NotARegularFile,
            ..
        })
    ));
}

#[test]
fn root_key_load_does_not_create_a_missing_file() {
    let tmp = TempDir::new();
    let path = tmp.key_path();
    assert!(matches!(
        RootKey::load(&path),
        Err(KmsError::RootKeyIo { source, .. }) if source.kind() == std::io::ErrorKind::NotFound
    ));
    assert!(!path.exists());
}

#[test]
fn concurrent_first_starts_agree_on_one_root_key() {
    let tmp = TempDir::new();
    let path = tmp.key_path();
    let results: Vec<(String, bool)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    let (key, created) = RootKey::load_or_create(&path).unwrap();
                    (key.fingerprint(), created)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results.iter().filter(|(_, created)| *created).count(), 1);
    assert!(results.iter().all(|(fp, _)| *fp == results[0].0));
}

// ---------------------------------------------------------------- Debug hygiene

#[test]
fn debug_output_of_keys_reveals_no_key_bytes() {
    let hex = "5a".repeat(32);
    let root = RootKey::from_hex(&hex).unwrap();
    assert_eq!(format!("{root:?}"), "RootKey(..)");
    assert_eq!(format!("{root:#?}"), "RootKey(..)");

    let material = KeyMaterial::generate();
    assert_eq!(format!("{material:?}"), "KeyMaterial(..)");

    let (data_key, _): (DataKey, _) =
        generate_data_key(&material, KEY_ARN, &context("v1")).unwrap();
    let debug = format!("{data_key:?}");
    assert_eq!(debug, "DataKey(..)");
    assert!(!debug.contains(&hex_bytes(data_key.expose_bytes())));
}

#[test]
fn error_messages_reveal_no_plaintext() {
    let key = KeyMaterial::generate();
    let blob = encrypt(&key, KEY_ARN, b"TOP-SECRET", &context("v1")).unwrap();
    let err = decrypt(&key, &blob, &context("v2")).unwrap_err();
    assert!(!format!("{err} {err:?}").contains("TOP-SECRET"));
}

// ---------------------------------------------------------------- GetRandomPassword

const PUNCTUATION: &str = r##"!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~"##;

fn classes_in(password: &str) -> [bool; 5] {
    [
        password.bytes().any(|c| c.is_ascii_uppercase()),
        password.bytes().any(|c| c.is_ascii_lowercase()),
        password.bytes().any(|c| c.is_ascii_digit()),
        password
            .bytes()
            .any(|c| PUNCTUATION.as_bytes().contains(&c)),
        password.contains(' '),
    ]
}

#[test]
fn punctuation_class_is_the_32_aws_characters() {
    assert_eq!(password::PUNCTUATION, PUNCTUATION);
    assert_eq!(PUNCTUATION.len(), 32);
    assert!(PUNCTUATION.bytes().all(|c| c.is_ascii_punctuation()));
}

#[test]
fn default_password_is_32_characters_of_every_type() {
    let rules = PasswordRules::default();
    assert_eq!(rules.length, 32);
    assert!(rules.require_each_included_type);
    assert!(!rules.include_space);
    for _ in 0..200 {
        let password = password::generate(&rules).unwrap();
        assert_eq!(password.len(), 32);
        assert_eq!(classes_in(&password), [true, true, true, true, false]);
    }
}

#[test]
fn password_has_exactly_the_requested_length() {
    for length in [1, 2, 4, 5, 17, 120, 4096] {
        let rules = PasswordRules {
            length,
            require_each_included_type: length >= 4,
            ..PasswordRules::default()
        };
        assert_eq!(password::generate(&rules).unwrap().len() as u64, length);
    }
}

#[test]
fn password_of_4096_characters_contains_every_type() {
    let rules = PasswordRules {
        length: 4096,
        ..PasswordRules::default()
    };
    let password = password::generate(&rules).unwrap();
    assert_eq!(password.len(), 4096);
    assert_eq!(classes_in(&password), [true, true, true, true, false]);
}

#[test]
fn password_of_120_characters_never_contains_excluded_characters() {
    // Recorded against AWS (spec §4.14): length 120, ExcludeCharacters "xyzDje@?!.".
    let rules = PasswordRules {
        length: 120,
        exclude_characters: "xyzDje@?!.".to_owned(),
        ..PasswordRules::default()
    };
    for _ in 0..200 {
        let password = password::generate(&rules).unwrap();
        assert_eq!(password.len(), 120);
        assert!(
            !password.chars().any(|c| "xyzDje@?!.".contains(c)),
            "{}",
            &*password
        );
    }
}

#[test]
fn password_at_minimum_length_contains_each_required_type_every_time() {
    let rules = PasswordRules {
        length: 5,
        include_space: true,
        ..PasswordRules::default()
    };
    let mut space_positions = std::collections::HashSet::new();
    for _ in 0..1000 {
        let password = password::generate(&rules).unwrap();
        assert_eq!(classes_in(&password), [true; 5], "{:?}", &*password);
        space_positions.insert(password.find(' ').unwrap());
    }
    // The guaranteed characters are shuffled, not placed at fixed positions.
    assert_eq!(space_positions.len(), 5);
}

#[test]
fn password_contains_space_only_when_asked_to() {
    let without = PasswordRules {
        length: 200,
        ..PasswordRules::default()
    };
    let with = PasswordRules {
        include_space: true,
        ..without.clone()
    };
    for _ in 0..100 {
        assert!(!password::generate(&without).unwrap().contains(' '));
        assert!(password::generate(&with).unwrap().contains(' '));
    }
    let space_excluded = PasswordRules {
        exclude_characters: " ".to_owned(),
        ..with.clone()
    };
    assert!(!password::generate(&space_excluded).unwrap().contains(' '));
}

#[test]
fn excluded_types_never_appear() {
    let cases = [
        (
            PasswordRules {
                exclude_numbers: true,
                ..PasswordRules::default()
            },
            [true, true, false, true, false],
        ),
        (
            PasswordRules {
                exclude_punctuation: true,
                ..PasswordRules::default()
            },
            [true, true, true, false, false],
        ),
        (
            PasswordRules {
                exclude_uppercase: true,
                exclude_lowercase: true,
                ..PasswordRules::default()
            },
            [false, false, true, true, false],
        ),
        (
            PasswordRules {
                exclude_numbers: true,
                exclude_punctuation: true,
                exclude_uppercase: true,
                ..PasswordRules::default()
            },
            [false, true, false, false, false],
        ),
    ];
    for (rules, expected) in cases {
        for _ in 0..100 {
            assert_eq!(classes_in(&password::generate(&rules).unwrap()), expected);
        }
    }
}

#[test]
fn a_type_emptied_by_excluded_characters_counts_as_excluded() {
    // All digits excluded character by character: three types remain, so length 3 suffices
    // with RequireEachIncludedType.
    let rules = PasswordRules {
        length: 3,
        exclude_characters: "0123456789".to_owned(),
        ..PasswordRules::default()
    };
    for _ in 0..200 {
        let password = password::generate(&rules).unwrap();
        assert_eq!(classes_in(&password), [true, true, false, true, false]);
    }
    // Only one punctuation character left: it must appear every time.
    let one_left = PasswordRules {
        length: 4,
        exclude_characters: PUNCTUATION.replace('#', ""),
        ..PasswordRules::default()
    };
    for _ in 0..200 {
        assert!(password::generate(&one_left).unwrap().contains('#'));
    }
}

#[test]
fn excluding_every_type_is_an_error() {
    let all_flags = PasswordRules {
        exclude_numbers: true,
        exclude_punctuation: true,
        exclude_uppercase: true,
        exclude_lowercase: true,
        ..PasswordRules::default()
    };
    assert_eq!(
        password::generate(&all_flags).unwrap_err(),
        PasswordError::NoCharacterTypes
    );
    let all_characters = PasswordRules {
        exclude_characters: format!(
            "{}{}{}{} ",
            password::UPPERCASE,
            password::LOWERCASE,
            password::NUMBERS,
            PUNCTUATION
        ),
        include_space: true,
        ..PasswordRules::default()
    };
    let err = password::generate(&all_characters).unwrap_err();
    assert_eq!(err, PasswordError::NoCharacterTypes);
    assert!(err.to_string().contains("at least one character type"));
}

#[test]
fn only_space_left_gives_a_password_of_spaces() {
    let rules = PasswordRules {
        length: 3,
        exclude_numbers: true,
        exclude_punctuation: true,
        exclude_uppercase: true,
        exclude_lowercase: true,
        include_space: true,
        ..PasswordRules::default()
    };
    assert_eq!(&*password::generate(&rules).unwrap(), "   ");
}

#[test]
fn length_below_the_number_of_required_types_is_too_short() {
    let rules = PasswordRules {
        length: 3,
        ..PasswordRules::default()
    };
    let err = password::generate(&rules).unwrap_err();
    assert_eq!(
        err,
        PasswordError::TooShort {
            length: 3,
            required: 4
        }
    );
    assert_eq!(
        err.to_string(),
        "Password length is too short based on the required types."
    );
    let with_space = PasswordRules {
        length: 4,
        include_space: true,
        ..PasswordRules::default()
    };
    assert!(matches!(
        password::generate(&with_space),
        Err(PasswordError::TooShort { required: 5, .. })
    ));
}

#[test]
fn without_require_each_type_any_length_from_one_works() {
    let rules = PasswordRules {
        length: 1,
        require_each_included_type: false,
        ..PasswordRules::default()
    };
    for _ in 0..100 {
        assert_eq!(password::generate(&rules).unwrap().len(), 1);
    }
}

#[test]
fn out_of_range_lengths_are_errors_not_panics() {
    for length in [0, 4097, u64::MAX] {
        let rules = PasswordRules {
            length,
            require_each_included_type: false,
            ..PasswordRules::default()
        };
        assert_eq!(
            password::generate(&rules).unwrap_err(),
            PasswordError::InvalidLength { length }
        );
    }
}

#[test]
fn non_ascii_excluded_characters_are_ignored() {
    let rules = PasswordRules {
        exclude_characters: "é€😀".to_owned(),
        ..PasswordRules::default()
    };
    assert_eq!(password::generate(&rules).unwrap().len(), 32);
}

#[test]
fn keys_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<RootKey>();
    assert_send_sync::<KeyMaterial>();
    assert_send_sync::<DataKey>();
    assert_send_sync::<KmsError>();
}

#[test]
fn key_material_rebuilt_from_its_bytes_decrypts_what_the_original_encrypted() {
    // A multi-Region replica key is the primary's material, carried as bytes to another Region.
    let original = KeyMaterial::generate();
    let blob = encrypt(&original, KEY_ARN, b"everywhere", &context("v1")).unwrap();
    let copy = KeyMaterial::from_bytes(original.expose_bytes()).unwrap();
    assert_eq!(
        &decrypt(&copy, &blob, &context("v1")).unwrap()[..],
        b"everywhere"
    );
    assert!(KeyMaterial::from_bytes(&[7u8; 31]).is_none());
    assert!(KeyMaterial::from_bytes(&[7u8; 33]).is_none());
    assert!(KeyMaterial::from_bytes(&[]).is_none());
}

#[test]
fn a_material_id_is_64_hex_digits_the_same_for_the_same_material_and_differs_for_another() {
    let key = KeyMaterial::generate();
    let id = key.id();
    assert_eq!(id.len(), 64);
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    let copy = KeyMaterial::from_bytes(key.expose_bytes()).unwrap();
    assert_eq!(copy.id(), id);
    assert_ne!(KeyMaterial::generate().id(), id);
}

#[test]
fn a_previous_material_opens_only_under_the_current_material_and_key_id_it_was_sealed_with() {
    let current = KeyMaterial::generate();
    let previous = KeyMaterial::generate();
    let sealed = current.seal_previous("key-1", &previous);
    let opened = current.open_previous("key-1", &sealed).unwrap();
    assert_eq!(opened.id(), previous.id());
    assert!(current.open_previous("key-2", &sealed).is_err());
    assert!(
        KeyMaterial::generate()
            .open_previous("key-1", &sealed)
            .is_err()
    );
    let mut altered = sealed.clone();
    altered[20] ^= 1;
    assert!(current.open_previous("key-1", &altered).is_err());
}
