//! Why a rotation failed. The text recorded as the rotation's last error, and logged by the
//! replication worker, is the whole chain ([`Error::report`]): `setSecret failed: could not log
//! in to PostgreSQL at ...`. No variant ever holds a secret value.

/// A rotation step's failure, with what caused it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// One of the four steps failed; the step's own error is the source.
    #[error("{step} failed")]
    Step {
        step: &'static str,
        #[source]
        source: Box<Error>,
    },
    /// What was being done when `source` failed ("cannot read the master secret ...").
    #[error("{context}")]
    Context {
        context: String,
        #[source]
        source: Box<Error>,
    },
    /// A Secrets Manager operation the rotator called refused or failed: its code and message,
    /// a failure of the server with its own cause behind it.
    #[error(transparent)]
    Api(#[from] coffer_core::Error),
    /// A configured function (kind `http`) could not be called or did not answer in time.
    #[error("{context}")]
    Function {
        context: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// PostgreSQL refused or did not answer. Only its answer's text is kept, with every secret
    /// redacted from it: the driver's error itself is not, as a server message may quote a
    /// statement, password included.
    #[error("{0}")]
    Database(String),
    /// The secret, its values or its tags do not allow the rotation (a value that is not the
    /// JSON a rotator reads, a version that is not AWSPENDING, a step that does not exist).
    #[error("{0}")]
    Refused(String),
}

impl Error {
    /// The error and its causes on one line: what the rotation records and logs.
    pub fn report(&self) -> String {
        coffer_core::error::Chain(self).to_string()
    }

    pub(crate) fn context(self, context: impl Into<String>) -> Error {
        Error::Context {
            context: context.into(),
            source: Box::new(self),
        }
    }
}

/// A reason in words, for rotators written outside this crate.
impl From<String> for Error {
    fn from(reason: String) -> Error {
        Error::Refused(reason)
    }
}

impl From<&str> for Error {
    fn from(reason: &str) -> Error {
        Error::Refused(reason.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_is_the_step_and_every_cause_in_order() {
        let login = Error::Database("could not log in to PostgreSQL at db:5432 as app".into());
        let step = Error::Step {
            step: "testSecret",
            source: Box::new(login.context("the new credentials do not work")),
        };
        assert_eq!(
            step.report(),
            "testSecret failed: the new credentials do not work: could not log in to \
             PostgreSQL at db:5432 as app"
        );
        // An API failure of the server: its code and message, then the cause behind them.
        let store = coffer_store::StoreError::Backend("the disk is full".into());
        assert_eq!(
            Error::Api(coffer_core::Error::from(store)).report(),
            "InternalServiceError: An error occurred on the server side.: storage error: the \
             disk is full"
        );
    }
}
