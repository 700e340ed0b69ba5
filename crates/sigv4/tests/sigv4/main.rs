//! The crate's single integration-test binary.
//!
//! * `aws_test_suite`: the official AWS SigV4 vectors, verified.
//! * `round_trip`: requests signed by `aws-sigv4` (the signer inside
//!   aws-sdk-rust) shaped like each SDK's, verified, then tampered with.
//! * `errors`: every failure's AWS code and exact message.
//! * `signing_key_cache`: cache behaviour seen from the outside.

mod aws_test_suite;
mod common;
mod errors;
mod round_trip;
mod signing_key_cache;
