//! The model graph's error: a JSON path below `model_config` and the reason.

/// A model_config error, naming the JSON path below `model_config`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("model_config: `{path}`: {reason}")]
pub struct SpecError {
    /// JSON path, such as `forward[2].ops[0]`.
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

pub(crate) fn err(path: impl Into<String>, reason: impl Into<String>) -> SpecError {
    SpecError {
        path: path.into(),
        reason: reason.into(),
    }
}
