//! Errors of key release.

/// A key-broker error (client or server side).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The broker could not be reached or the connection failed (after the bounded retries).
    #[error("broker {url}: {reason}")]
    Transport {
        /// The URL.
        url: String,
        /// What failed (connect refused, timeout, TLS pin mismatch, ...).
        reason: String,
    },
    /// The broker answered 401: no session, an expired session, a replayed nonce, or evidence
    /// that did not verify. Redo the handshake.
    #[error("broker refused the session: {0}")]
    Unauthorized(String),
    /// The broker answered 403: the release policy or the contract denied the key.
    #[error("key release denied: {0}")]
    Denied(String),
    /// The broker answered 409: the request conflicts with what is recorded (a run reported
    /// twice, an approver deciding twice, an approval for another report).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The broker answered 404: no such key.
    #[error("unknown key: {0}")]
    NotFound(String),
    /// Another error status.
    #[error("broker answered {status}: {detail}")]
    Remote {
        /// HTTP status.
        status: u16,
        /// The problem's detail.
        detail: String,
    },
    /// A protocol message or field is malformed.
    #[error("protocol: `{field}`: {reason}")]
    Protocol {
        /// The field.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A cloud key service (MAA, Key Vault, IMDS, GCP STS or KMS) refused, failed or could not
    /// be reached; the text names the service and says why.
    #[error("{0}")]
    Cloud(String),
    /// A cryptographic operation failed (wrong key, tampered JWE).
    #[error("crypto: {0}")]
    Crypto(String),
    /// A nonce is unknown, already used, or expired.
    #[error("nonce unknown, already used or expired")]
    Nonce,
    /// The broker's database failed (its SQLite error kept as the source).
    #[error("store: {0}")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync>),
}
