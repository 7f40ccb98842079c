//! The proof-of-check type: a contract whose signatures and validity were verified, and the
//! checks of a pipeline and an output against it.

use serde_json::Value;

use super::{Contract, pipeline_digest};
use crate::error::PolicyError;

/// A contract whose signatures and validity were checked at some time. Only
/// [`Contract::verify`] makes one.
#[derive(Debug, Clone)]
pub struct VerifiedContract {
    pub(super) contract: Contract,
    pub(super) digest: [u8; 32],
}

impl VerifiedContract {
    /// The contract.
    pub fn contract(&self) -> &Contract {
        &self.contract
    }

    /// Its digest (what the parties signed).
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// Checks that `pipeline` (the parsed pipeline config) has the contract's digest, that its
    /// training steps (`pipeline[].name` starting with `Train_`) are among
    /// `allowedFrameworks`, and that a step reading a dataset whose privacy constraint has
    /// `dp_required` trains privately (`config.is_private: true`).
    ///
    /// # Errors
    /// [`PolicyError::PipelineDigest`] with both digests; [`PolicyError::Contract`] naming the
    /// pipeline field and the contract field it breaks.
    pub fn check_pipeline(&self, pipeline: &Value) -> Result<(), PolicyError> {
        let found = pipeline_digest(pipeline);
        if found != self.contract.pipeline_digest {
            return Err(PolicyError::PipelineDigest {
                expected: self.contract.pipeline_digest.clone(),
                found,
            });
        }
        let steps = pipeline
            .get("pipeline")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let datasets: Vec<&str> = steps
            .iter()
            .filter_map(|s| s.pointer("/config/datasets").and_then(Value::as_array))
            .flatten()
            .filter_map(|d| d.get("id").and_then(Value::as_str))
            .collect();
        for (i, s) in steps.iter().enumerate() {
            let name = s.get("name").and_then(Value::as_str).unwrap_or("");
            if !super::FRAMEWORKS.contains(&name) {
                continue;
            }
            if let Some(allowed) = &self.contract.allowed_frameworks
                && !allowed.iter().any(|a| a == name)
            {
                return Err(PolicyError::Contract {
                    field: format!("pipeline[{i}].name"),
                    reason: format!(
                        "`{name}` is not in the contract's allowedFrameworks ({})",
                        allowed.join(", ")
                    ),
                });
            }
            let private = s.pointer("/config/is_private").and_then(Value::as_bool) == Some(true);
            if private {
                continue;
            }
            if let Some(d) = datasets
                .iter()
                .find(|d| self.contract.privacy_for(d).is_some_and(|p| p.dp_required))
            {
                return Err(PolicyError::Contract {
                    field: format!("pipeline[{i}].config.is_private"),
                    reason: format!(
                        "dataset `{d}` requires DP (constraints privacy dp_required) and this step trains without it"
                    ),
                });
            }
        }
        Ok(())
    }

    /// Checks that the output may carry `format` (one of [`super::MODEL_FORMATS`]).
    ///
    /// # Errors
    /// [`PolicyError::Contract`] naming `allowedModelFormats`.
    pub fn check_model_format(&self, format: &str) -> Result<(), PolicyError> {
        match &self.contract.allowed_model_formats {
            Some(allowed) if !allowed.iter().any(|a| a == format) => Err(PolicyError::Contract {
                field: "allowedModelFormats".into(),
                reason: format!(
                    "the output carries {format}, which the contract does not allow ({})",
                    allowed.join(", ")
                ),
            }),
            _ => Ok(()),
        }
    }
}
