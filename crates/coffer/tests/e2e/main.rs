//! End-to-end tests: the real `coffer` binary, driven by aws-sdk-secretsmanager.

mod errors;
mod lifecycle;
mod secrets;
mod server;
