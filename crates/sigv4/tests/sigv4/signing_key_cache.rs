//! The signing-key cache, seen through `Verifier::verify`.

use coffer_sigv4::Verifier;
use std::sync::Arc;
use std::thread;

use crate::common::{SECRET, Signer, at, expect_mismatch, rust_sdk};

const BODY: &[u8] = br#"{"SecretId":"MySecret"}"#;
const ROTATED_SECRET: &str = "9drTJvcXLB89EXAMPLELB8923FB892xMFI";

#[test]
fn cached_signing_key_gives_the_same_result_on_repeat() {
    let time = at("2025-11-06T13:26:08Z");
    let verifier = Verifier::new();
    let good = rust_sdk(time, BODY).sign();
    let mut bad = good.clone();
    bad.body.push(b' ');
    for _ in 0..3 {
        good.verify_with(&verifier, SECRET, time).expect("verifies");
        expect_mismatch(bad.verify_with(&verifier, SECRET, time));
    }
}

#[test]
fn same_access_key_with_rotated_secret_does_not_reuse_a_stale_key() {
    let time = at("2025-11-06T13:26:08Z");
    let verifier = Verifier::new();
    let signed_with_old = rust_sdk(time, BODY).sign();
    let signed_with_new = Signer {
        secret: ROTATED_SECRET,
        ..rust_sdk(time, BODY)
    }
    .sign();

    // Warm the cache with the old secret, then rotate under the same AKID.
    signed_with_old
        .verify_with(&verifier, SECRET, time)
        .expect("old secret verifies");
    signed_with_new
        .verify_with(&verifier, ROTATED_SECRET, time)
        .expect("new secret verifies");
    expect_mismatch(signed_with_old.verify_with(&verifier, ROTATED_SECRET, time));
    expect_mismatch(signed_with_new.verify_with(&verifier, SECRET, time));
}

#[test]
fn keys_for_other_days_and_regions_are_derived_separately() {
    let verifier = Verifier::new();
    for (time, region) in [
        ("2025-11-06T13:26:08Z", "us-east-1"),
        ("2025-11-07T13:26:08Z", "us-east-1"),
        ("2025-11-07T13:26:08Z", "eu-west-1"),
        ("2025-11-06T13:26:08Z", "us-east-1"),
    ] {
        let time = at(time);
        Signer {
            region,
            ..rust_sdk(time, BODY)
        }
        .sign()
        .verify_with(&verifier, SECRET, time)
        .unwrap_or_else(|error| panic!("{region} {time}: {error}"));
    }
}

#[test]
fn one_verifier_serves_many_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Verifier>();

    let time = at("2025-11-06T13:26:08Z");
    let verifier = Arc::new(Verifier::new());
    let handles: Vec<_> = (0..8)
        .map(|index| {
            let verifier = Arc::clone(&verifier);
            thread::spawn(move || {
                let secret = if index % 2 == 0 {
                    SECRET
                } else {
                    ROTATED_SECRET
                };
                let request = Signer {
                    secret,
                    ..rust_sdk(time, BODY)
                }
                .sign();
                for _ in 0..20 {
                    request
                        .verify_with(&verifier, secret, time)
                        .expect("verifies");
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().expect("thread finished");
    }
}
