//! Azure confidential containers (ACI): the `host_data` an SNP report carries for a CCE policy.
//!
//! The container group's confidential computing enforcement (CCE) policy is published base64
//! (the ARM template's `ccePolicy`, `UVM_SECURITY_CONTEXT_DIR/security-policy-base64`); the
//! host sets the SNP report's `HOST_DATA` (32 bytes, report offset 0xC0) to SHA-256 of the
//! base64-decoded policy text, as the Azure tooling (`az confcom acipolicygen`) computes it.
//! A contract can therefore pin the policy itself.

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::MeasureError;

/// `host_data` for a base64 CCE policy (whitespace around it ignored): SHA-256 of the decoded
/// bytes, 32 bytes.
///
/// # Errors
/// [`MeasureError::Format`] when the policy is not base64.
pub fn host_data(policy_base64: &str) -> Result<[u8; 32], MeasureError> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(policy_base64.trim())
        .map_err(|e| MeasureError::Format {
            input: "CCE policy",
            field: "base64".into(),
            reason: e.to_string(),
        })?;
    Ok(Sha256::digest(&decoded).into())
}
