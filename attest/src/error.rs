//! Errors of evidence production and verification.

/// An attestation error. Messages name the structure and field at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttestError {
    /// A structure has the wrong length (truncated or oversized input).
    #[error("{what}: {got} bytes, expected {expected}")]
    Length {
        /// The structure.
        what: &'static str,
        /// Expected length in bytes.
        expected: usize,
        /// Length received.
        got: usize,
    },
    /// A field holds a value that is not supported or not allowed.
    #[error("field {field}: {reason}")]
    Field {
        /// The field, by its spec name.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A certificate could not be parsed.
    #[error("{which} certificate: {reason}")]
    Certificate {
        /// Which certificate (ARK, ASK, VCEK, ...).
        which: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The certificate chain does not verify (ARK → ASK → VCEK/VLEK).
    #[error("certificate chain does not verify: {reason}")]
    Chain {
        /// The failing link.
        reason: String,
    },
    /// A signature does not verify.
    #[error("{what}: {reason}")]
    Signature {
        /// What was signed.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// The evidence envelope (JSON) is malformed.
    #[error("evidence: field `{field}`: {reason}")]
    Evidence {
        /// The JSON field.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// `report_data` does not bind the expected nonce and runtime key.
    #[error("report_data does not bind the nonce and runtime key of this session")]
    ReportDataMismatch,
    /// The requested platform is not available on this machine.
    #[error("platform {platform} unavailable: {reason}")]
    Unavailable {
        /// The platform.
        platform: String,
        /// Why.
        reason: String,
    },
    /// The sim authority's state folder could not be read or written.
    #[error("sim state {}: {source}", path.display())]
    State {
        /// The path concerned.
        path: std::path::PathBuf,
        /// What failed (an I/O, DER, PEM, key or certificate-builder error, or a reason).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}
