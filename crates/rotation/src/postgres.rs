//! The PostgreSQL rotators (`coffer-postgresql-single-user`,
//! `coffer-postgresql-alternating-users`). Not part of this build yet: until they are, their
//! names are unknown functions and RotateSecret refuses them with AWS's AccessDeniedException.

use std::sync::Arc;

use crate::Rotator;

pub fn builtins() -> Vec<(String, Arc<dyn Rotator>)> {
    Vec::new()
}
