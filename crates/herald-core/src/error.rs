//! The one error a value constructor can return.

/// A value failed validation; `field` names the offending input so the API
/// edge can point at it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// Name of the field as the client spelled it (camelCase).
    pub field: String,
    /// Human readable reason, lowercase, no trailing period.
    pub message: String,
}

impl ValidationError {
    /// Builds an error for `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error reported under another field name (a value type does
    /// not know which field it was parsed for).
    pub fn at(mut self, field: impl Into<String>) -> Self {
        self.field = field.into();
        self
    }
}
