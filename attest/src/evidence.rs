//! The evidence envelope sent to a broker (the KBS `tee-evidence.primary_evidence` value).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::error::AttestError;
use crate::snp::{SnpReport, SnpRoots};
use crate::{Platform, VerifiedEvidence};

/// SNP-layout evidence (`snp` and `sim`): the report and the VCEK/VLEK certificate that signed
/// it, both base64 (standard alphabet, padded).
///
/// ```json
/// {"report": "<base64 of 1184 bytes>", "vek": "<base64 of the DER certificate>"}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnpEvidence {
    /// The attestation report, 1184 bytes, base64.
    pub report: String,
    /// The VCEK or VLEK certificate, DER, base64.
    pub vek: String,
}

impl SnpEvidence {
    /// Builds the envelope from raw bytes.
    pub fn new(report: &[u8], vek_der: &[u8]) -> Self {
        Self {
            report: STANDARD.encode(report),
            vek: STANDARD.encode(vek_der),
        }
    }

    /// Parses the envelope from JSON.
    ///
    /// # Errors
    /// [`AttestError::Evidence`] naming the field.
    pub fn from_json(v: &serde_json::Value) -> Result<Self, AttestError> {
        serde_json::from_value(v.clone()).map_err(|e| AttestError::Evidence {
            field: "primary_evidence".into(),
            reason: e.to_string(),
        })
    }

    /// Decodes and verifies the evidence against `roots`, yielding claims for `platform`.
    ///
    /// # Errors
    /// [`AttestError::Evidence`] for bad base64; otherwise as [`SnpReport::parse`] and
    /// [`SnpRoots::verify`].
    pub fn verify(
        &self,
        roots: &SnpRoots,
        platform: Platform,
    ) -> Result<VerifiedEvidence, AttestError> {
        let report = STANDARD
            .decode(&self.report)
            .map_err(|e| AttestError::Evidence {
                field: "report".into(),
                reason: format!("not base64: {e}"),
            })?;
        let vek = STANDARD
            .decode(&self.vek)
            .map_err(|e| AttestError::Evidence {
                field: "vek".into(),
                reason: format!("not base64: {e}"),
            })?;
        let report = SnpReport::parse(&report)?;
        roots.verify(&report, &vek, platform)
    }
}
