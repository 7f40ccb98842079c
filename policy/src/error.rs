//! Errors of contracts, signatures and release policies.

/// A policy-crate error. Messages name the document and the field at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A JSON document does not parse or has a field of the wrong type or name.
    #[error("{document}: at `{path}`: {reason}")]
    Json {
        /// `contract`, `release policy`, ...
        document: &'static str,
        /// JSON path of the field (e.g. `datasets[0].key.properties.kid`).
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A contract field is semantically wrong.
    #[error("contract: field `{field}`: {reason}")]
    Contract {
        /// The field's path.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A release policy is structurally wrong.
    #[error("release policy: at `{path}`: {reason}")]
    Release {
        /// The clause's path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A Rego policy does not parse or fails at evaluation (the message gives line and column).
    #[error("Rego: {reason}")]
    Rego {
        /// regorus's message.
        reason: String,
    },
    /// A key (JWK or PEM) is malformed or unsupported.
    #[error("key: {reason}")]
    Key {
        /// What is wrong.
        reason: String,
    },
    /// A JWS is malformed or does not verify.
    #[error("JWS: {reason}")]
    Jws {
        /// What is wrong.
        reason: String,
    },
    /// A party has not signed the contract.
    #[error("contract: party `{party}` has not signed")]
    MissingSignature {
        /// The party's id.
        party: String,
    },
    /// A signature is bad or from a non-party.
    #[error("contract: signature of `{party}`: {reason}")]
    BadSignature {
        /// The party id the signature claims.
        party: String,
        /// What is wrong.
        reason: String,
    },
    /// The contract has expired.
    #[error("contract: expired at {expiry} (expiryTime)")]
    Expired {
        /// Its `expiryTime`.
        expiry: String,
    },
    /// The contract is not yet valid.
    #[error("contract: not valid before {start} (startTime)")]
    NotYetValid {
        /// Its `startTime`.
        start: String,
    },
    /// The pipeline config's digest differs from the contract's `pipelineDigest`.
    #[error("pipeline config digest {found} differs from the contract's pipelineDigest {expected}")]
    PipelineDigest {
        /// The contract's value.
        expected: String,
        /// The config's digest.
        found: String,
    },
}
