//! The one error type of Secrets Manager semantics. The HTTP layer turns it into the AWS shape
//! (`{"__type": code, "Message": text}` + `x-amzn-ErrorType`) in one place.

use std::fmt;

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

/// An AWS-shaped error. The message never contains a secret value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
}

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Error {
        Error {
            code,
            message: message.into(),
        }
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

    pub fn internal(context: &str) -> Error {
        // The detail goes to the log of the caller; the client sees AWS's generic text.
        tracing::error!(context, "Internal error");
        Error::new(
            ErrorCode::InternalServiceError,
            "An error occurred on the server side.",
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for Error {}

impl From<coffer_store::StoreError> for Error {
    fn from(err: coffer_store::StoreError) -> Error {
        tracing::error!(error = %err, "Store failed");
        Error::new(
            ErrorCode::InternalServiceError,
            "An error occurred on the server side.",
        )
    }
}

pub type Result<T> = std::result::Result<T, Error>;
