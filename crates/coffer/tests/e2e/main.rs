//! End-to-end tests: the real `coffer` binary, driven by aws-sdk-secretsmanager.

mod errors;
mod labels_property;
mod lifecycle;
mod replication;
mod replication_property;
mod rotation;
mod secrets;
mod server;
mod tls;
