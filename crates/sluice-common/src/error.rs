//! Runtime error kinds. Each error says whose fault it is (user input, an external service, or a bug in
//! sluice), whether retrying may help, and which operator raised it.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorDomain {
    /// Bad SQL, bad options, malformed records: the user must change something.
    User,
    /// A file, broker or database failed or could not be reached.
    External,
    /// A bug in sluice.
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub struct SluiceError {
    pub domain: ErrorDomain,
    pub retryable: bool,
    /// The operator or connector that raised the error, e.g. `source 'clicks'`.
    pub operator: Option<String>,
    pub message: String,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl SluiceError {
    pub fn user(message: impl Into<String>) -> Self {
        Self::new(ErrorDomain::User, message)
    }
    pub fn external(message: impl Into<String>) -> Self {
        let mut e = Self::new(ErrorDomain::External, message);
        e.retryable = true;
        e
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorDomain::Internal, message)
    }
    fn new(domain: ErrorDomain, message: impl Into<String>) -> Self {
        SluiceError { domain, retryable: false, operator: None, message: message.into(), source: None }
    }
    pub fn in_operator(mut self, operator: impl Into<String>) -> Self {
        if self.operator.is_none() {
            self.operator = Some(operator.into());
        }
        self
    }
    /// Hides the table's `${VAR}` values in the message (see [`crate::TableSpec::redact`]).
    pub fn redacted(mut self, table: &crate::TableSpec) -> Self {
        self.message = table.redact(&self.message);
        self
    }

    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }
}

impl fmt::Display for SluiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(op) = &self.operator {
            write!(f, "{op}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl From<arrow::error::ArrowError> for SluiceError {
    fn from(e: arrow::error::ArrowError) -> Self {
        SluiceError::internal(format!("arrow: {e}"))
    }
}
