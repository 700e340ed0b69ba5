//! The one error type of Secrets Manager semantics. The HTTP layer turns it into the AWS shape
//! (`{"__type": code, "Message": text}` + `x-amzn-ErrorType`) in one place.

use std::fmt;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    ResourceNotFound,
    InvalidParameter,
    InvalidRequest,
    ResourceExists,
    Validation,
    AccessDenied,
    DecryptionFailure,
    EncryptionFailure,
    LimitExceeded,
    MalformedPolicyDocument,
    PublicPolicy,
    InvalidNextToken,
    Serialization,
    UnknownOperation,
    InternalServiceError,
    // KMS (TrentService) errors, see `crate::kms`.
    KmsNotFound,
    KmsDisabled,
    KmsInvalidState,
    KmsAlreadyExists,
    KmsInvalidAliasName,
    KmsInvalidCiphertext,
    KmsIncorrectKey,
    KmsInvalidMarker,
    KmsTag,
    KmsUnsupportedOperation,
    KmsInternal,
    KmsLimitExceeded,
}

impl ErrorCode {
    /// The `__type` AWS sends.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ResourceNotFound => "ResourceNotFoundException",
            ErrorCode::InvalidParameter => "InvalidParameterException",
            ErrorCode::InvalidRequest => "InvalidRequestException",
            ErrorCode::ResourceExists => "ResourceExistsException",
            ErrorCode::Validation => "ValidationException",
            ErrorCode::AccessDenied => "AccessDeniedException",
            ErrorCode::DecryptionFailure => "DecryptionFailure",
            ErrorCode::EncryptionFailure => "EncryptionFailure",
            ErrorCode::LimitExceeded => "LimitExceededException",
            ErrorCode::MalformedPolicyDocument => "MalformedPolicyDocumentException",
            ErrorCode::PublicPolicy => "PublicPolicyException",
            ErrorCode::InvalidNextToken => "InvalidNextTokenException",
            ErrorCode::Serialization => "SerializationException",
            ErrorCode::UnknownOperation => "UnknownOperationException",
            ErrorCode::InternalServiceError => "InternalServiceError",
            ErrorCode::KmsNotFound => "NotFoundException",
            ErrorCode::KmsDisabled => "DisabledException",
            ErrorCode::KmsInvalidState => "KMSInvalidStateException",
            ErrorCode::KmsAlreadyExists => "AlreadyExistsException",
            ErrorCode::KmsInvalidAliasName => "InvalidAliasNameException",
            ErrorCode::KmsInvalidCiphertext => "InvalidCiphertextException",
            ErrorCode::KmsIncorrectKey => "IncorrectKeyException",
            ErrorCode::KmsInvalidMarker => "InvalidMarkerException",
            ErrorCode::KmsTag => "TagException",
            ErrorCode::KmsUnsupportedOperation => "UnsupportedOperationException",
            ErrorCode::KmsInternal => "KMSInternalException",
            ErrorCode::KmsLimitExceeded => "LimitExceededException",
        }
    }

    /// Every client error is 400 on AWS, `ResourceNotFoundException` included (spec §1.3).
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InternalServiceError | ErrorCode::KmsInternal => 500,
            _ => 400,
        }
    }
}

/// An AWS-shaped error: the code and message the client gets, and, for a failure of the server
/// (a store that failed, a stored record Coffer cannot read), its cause, which the client never
/// sees: the HTTP layer logs it once, with the request, at the level the status deserves
/// (`api::serve_api`). Neither the message nor the cause ever contains a secret value.
#[derive(Clone)]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
    /// Shared, so the error stays `Clone` (a batch answers several callers with one failure).
    cause: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

/// Two errors are equal when the client would see the same thing: the cause is for the log.
impl PartialEq for Error {
    fn eq(&self, other: &Error) -> bool {
        self.code == other.code && self.message == other.message
    }
}

impl Eq for Error {}

/// The cause as its text chain ([`Chain`]): the `Debug` of a driver's error can carry more
/// than its message says, and nothing of that is needed to read a failure.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("code", &self.code).field("message", &self.message);
        if let Some(cause) = &self.cause {
            d.field("cause", &Chain(&**cause).to_string());
        }
        d.finish()
    }
}

const INTERNAL_MESSAGE: &str = "An error occurred on the server side.";

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Error {
        Error {
            code,
            message: message.into(),
            cause: None,
        }
    }

    /// The same error with `cause` as its [`source`](std::error::Error::source).
    pub fn caused_by(
        mut self,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Error {
        self.cause = Some(Arc::from(cause.into()));
        self
    }

    pub fn not_found() -> Error {
        Error::new(
            ErrorCode::ResourceNotFound,
            "Secrets Manager can't find the specified secret.",
        )
    }

    pub fn invalid_parameter(message: impl Into<String>) -> Error {
        Error::new(ErrorCode::InvalidParameter, message)
    }

    pub fn invalid_request(message: impl Into<String>) -> Error {
        Error::new(ErrorCode::InvalidRequest, message)
    }

    pub fn validation(message: impl Into<String>) -> Error {
        Error::new(ErrorCode::Validation, message)
    }

    /// [S] recorded for TagResource/UntagResource; [F] for GetSecretValue.
    pub fn marked_for_deletion() -> Error {
        Error::invalid_request(
            "You can't perform this operation on the secret because it was marked for deletion.",
        )
    }

    /// [S] recorded on a raw POST without a token.
    pub fn missing_token() -> Error {
        Error::invalid_request(
            "You must provide a ClientRequestToken value. We recommend a UUID-type value.",
        )
    }

    /// [V] a token already used by a version with a different value.
    pub fn token_in_use(token: &str, arn: &str) -> Error {
        Error::new(
            ErrorCode::ResourceExists,
            format!(
                "You can't use ClientRequestToken {token} because that value is already in use for a version of secret {arn}."
            ),
        )
    }

    /// [F] confirmed on real AWS for DeleteSecret and PutResourcePolicy on a replica.
    pub fn replica_read_only() -> Error {
        Error::invalid_parameter(
            "Operation not permitted on a replica secret. Call must be made in primary secret's region.",
        )
    }

    /// A failure of the server: the client sees AWS's generic text; `context`, what failed,
    /// becomes the cause, for the log.
    pub fn internal(context: impl Into<String>) -> Error {
        Error::new(ErrorCode::InternalServiceError, INTERNAL_MESSAGE)
            .caused_by(Internal::new(context.into(), None))
    }

    /// A failure of the server with what failed (`context`) and the error that made it fail.
    pub fn internal_from(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Error {
        Error::new(ErrorCode::InternalServiceError, INTERNAL_MESSAGE)
            .caused_by(Internal::new(context.into(), Some(source.into())))
    }

    /// Whether the server, not the request, failed (HTTP 5xx): the HTTP layer logs these as
    /// errors, with their cause.
    pub fn is_server_error(&self) -> bool {
        self.code.http_status() >= 500
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|c| c as &(dyn std::error::Error + 'static))
    }
}

/// A store failure is the server's: the client gets the generic text, the store's error is
/// kept as the cause (its own source, the driver's error, behind it).
impl From<coffer_store::StoreError> for Error {
    fn from(err: coffer_store::StoreError) -> Error {
        Error::new(ErrorCode::InternalServiceError, INTERNAL_MESSAGE).caused_by(err)
    }
}

/// What failed inside the server, in words, and the error that made it fail, if any.
#[derive(Debug)]
struct Internal {
    context: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Internal {
    fn new(context: String, source: Option<Box<dyn std::error::Error + Send + Sync>>) -> Internal {
        Internal { context, source }
    }
}

impl fmt::Display for Internal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.context)
    }
}

impl std::error::Error for Internal {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|c| c as &(dyn std::error::Error + 'static))
    }
}

/// An error and its causes on one line, `outer: cause: its cause`, for logs and messages to
/// operators. A cause whose text the line already holds is skipped: some errors (the store's)
/// write their cause into their own message and also return it as `source()`.
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut line = self.0.to_string();
        let mut next = self.0.source();
        while let Some(cause) = next {
            let text = cause.to_string();
            if !text.is_empty() && !line.contains(&text) {
                line.push_str(": ");
                line.push_str(&text);
            }
            next = cause.source();
        }
        f.write_str(&line)
    }
}

/// The causes of an error without the error itself (`cause: its cause`), or `None`: what the
/// log adds to a client-facing error whose own text says nothing of why.
pub fn causes(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    err.source().map(|c| Chain(c).to_string())
}

pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn a_store_failure_keeps_its_cause_and_tells_the_client_nothing_of_it() {
        let store = coffer_store::StoreError::Backend("the disk is full".into());
        let err = Error::from(store);
        // What the client gets is unchanged: AWS's generic text, HTTP 500.
        assert_eq!(err.code, ErrorCode::InternalServiceError);
        assert_eq!(err.code.http_status(), 500);
        assert_eq!(err.message, "An error occurred on the server side.");
        assert_eq!(
            err.to_string(),
            "InternalServiceError: An error occurred on the server side."
        );
        assert!(err.is_server_error());
        // The cause is kept, for the log.
        let cause = err.source().expect("the store's error is the source");
        assert_eq!(cause.to_string(), "storage error: the disk is full");
        assert_eq!(
            causes(&err).as_deref(),
            Some("storage error: the disk is full")
        );
        assert!(format!("{err:?}").contains("the disk is full"));
        // Equal to the same error without a cause: the cause is not what the client sees.
        assert_eq!(
            err,
            Error::new(
                ErrorCode::InternalServiceError,
                "An error occurred on the server side."
            )
        );
    }

    #[test]
    fn internal_errors_carry_what_failed_and_why() {
        let io = std::io::Error::other("no space left on device");
        let err = Error::internal_from("stored KMS key metadata is not valid", io);
        assert_eq!(err.message, "An error occurred on the server side.");
        assert_eq!(
            Chain(&err).to_string(),
            "InternalServiceError: An error occurred on the server side.: stored KMS key \
             metadata is not valid: no space left on device"
        );
        let err = Error::internal("replica kept changing while applying");
        assert_eq!(
            causes(&err).as_deref(),
            Some("replica kept changing while applying")
        );
        // A client error has no cause.
        assert_eq!(causes(&Error::not_found()), None);
        assert!(!Error::not_found().is_server_error());
    }

    #[test]
    fn a_chain_names_a_cause_its_error_already_quotes_once() {
        #[derive(Debug)]
        struct Quoting(std::io::Error);
        impl fmt::Display for Quoting {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "storage error: {}", self.0)
            }
        }
        impl std::error::Error for Quoting {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let err = Quoting(std::io::Error::other("disk I/O error"));
        assert_eq!(Chain(&err).to_string(), "storage error: disk I/O error");
    }
}
