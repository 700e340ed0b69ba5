//! What the operations of the Query protocol (IAM and STS) take and give, without the protocol
//! itself: the decoded form members of a request ([`Params`]), an answer's elements in order
//! ([`Node`]), and the error ([`QueryError`]: IAM's code, HTTP status and message). The api
//! crate decodes form bodies, writes the nodes as XML and renders errors.

use std::collections::HashMap;
use std::sync::Arc;

/// The members of a form-encoded request (`UserName`, `Tags.member.1.Key`, ...), decoded.
#[derive(Debug, Default)]
pub struct Params(HashMap<String, String>);

impl Params {
    pub fn new(members: HashMap<String, String>) -> Params {
        Params(members)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A required member, or Coral's "Member must not be null" for `member` (the model's
    /// camelCase name).
    pub fn required(&self, name: &str, member: &str) -> Result<&str> {
        self.get(name).ok_or_else(|| {
            QueryError::validation(format!(
                "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
            ))
        })
    }
}

/// One element of an answer, in the order IAM writes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// `<name>text</name>`.
    Text(&'static str, String),
    /// A policy document, which IAM sends URL-encoded (RFC 3986); the SDKs decode it.
    Document(&'static str, String),
    /// `<name>...</name>` around its children.
    Element(&'static str, Vec<Node>),
}

impl Node {
    pub fn text(name: &'static str, text: impl Into<String>) -> Node {
        Node::Text(name, text.into())
    }
}

/// What an operation's output gives the answer: its `<ActionResult>` elements, or `None` for
/// operations whose answer has no result element (DeleteUser, TagUser, ...).
pub trait QueryOutput {
    fn result(self) -> Option<Vec<Node>>;
}

impl QueryOutput for () {
    fn result(self) -> Option<Vec<Node>> {
        None
    }
}

/// An operation's typed input, read from the request's members. Everything checked here is
/// checked before authorization (a caller without permission still learns what is malformed,
/// as on AWS).
pub trait QueryInput: Sized {
    fn parse(params: &Params) -> Result<Self>;
}

/// An error of an IAM or STS operation: the code AWS uses, its HTTP status and message, and,
/// for a failure of the IAM store, its cause (kept for the HTTP layer's log, never sent).
#[derive(Clone)]
pub struct QueryError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    cause: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

/// Equal when the client would see the same thing: the cause is for the log.
impl PartialEq for QueryError {
    fn eq(&self, other: &QueryError) -> bool {
        (self.status, self.code, &self.message) == (other.status, other.code, &other.message)
    }
}

impl Eq for QueryError {}

/// The cause as its text, as `core::Error` shows it.
impl std::fmt::Debug for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("QueryError");
        d.field("status", &self.status)
            .field("code", &self.code)
            .field("message", &self.message);
        if let Some(cause) = &self.cause {
            d.field("cause", &crate::error::Chain(&**cause).to_string());
        }
        d.finish()
    }
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for QueryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|c| c as &(dyn std::error::Error + 'static))
    }
}

pub type Result<T> = std::result::Result<T, QueryError>;

impl QueryError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> QueryError {
        QueryError {
            status,
            code,
            message: message.into(),
            cause: None,
        }
    }

    pub fn no_such_entity(message: impl Into<String>) -> QueryError {
        QueryError::new(404, "NoSuchEntity", message)
    }

    pub fn validation(message: impl Into<String>) -> QueryError {
        QueryError::new(400, "ValidationError", message)
    }

    /// HTTP 409 errors: EntityAlreadyExists, LimitExceeded, DeleteConflict, ...
    pub fn conflict(code: &'static str, message: impl Into<String>) -> QueryError {
        QueryError::new(409, code, message)
    }

    pub fn service_failure() -> QueryError {
        QueryError::new(
            500,
            "ServiceFailure",
            "The request processing has failed because of an unknown error, exception or failure.",
        )
    }

    /// A failure of the IAM store, answered as ServiceFailure; the store's error is kept as
    /// the cause, which the HTTP layer logs.
    pub fn internal(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> QueryError {
        QueryError {
            cause: Some(Arc::from(e.into())),
            ..QueryError::service_failure()
        }
    }

    /// What the protocol layer needs: status, code, message and the cause to log.
    #[allow(clippy::type_complexity)]
    pub fn into_parts(
        self,
    ) -> (
        u16,
        &'static str,
        String,
        Option<Arc<dyn std::error::Error + Send + Sync>>,
    ) {
        (self.status, self.code, self.message, self.cause)
    }

    /// Coral's validation message, as IAM words it.
    pub fn constraint(value: &str, member: &str, rule: &str) -> QueryError {
        QueryError::validation(format!(
            "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {rule}"
        ))
    }
}
