//! # ccr-keybroker: key release to attested runtimes
//!
//! - [`server`]: the local broker, `ccr keybroker serve`: the KBS protocol (request,
//!   challenge, attestation, response) over HTTPS with rustls, keys, nonces and an audit log in
//!   SQLite ([`store`]).
//! - [`client`]: the runtime's side of the same protocol, with a pinned certificate, bounded
//!   retries and timeouts.
//! - [`akv`]: Azure Key Vault Secure Key Release: unwrapping the released key
//!   (`CKM_RSA_AES_KEY_WRAP`, RFC 5649) and deriving the DEK from an `RSA-HSM` key.
//! - [`azure`]: MAA attestation, Key Vault release (with the release JWS verified against its
//!   x5c chain and the vault's host name) and IMDS managed identity tokens.
//! - [`cloud_http`]: HTTPS to cloud key services with one deadline per call, bounded retries
//!   (429, 5xx, connection errors; `Retry-After` honoured) and errors naming the service.
//! - [`gcp`]: Confidential Space token → STS federated token → Cloud KMS decrypt of the
//!   wrapped DEK; the workload identity attribute condition.
//! - [`jwe`]: the runtime key and the wrapping of released keys to it (flattened JWE,
//!   `ECDH-ES+A256KW` + `A256GCM`, or `RSA-OAEP-256`).
//!
//! Policy evaluation is delegated to `ccr-policy`, evidence verification to `ccr-attest`.

#![forbid(unsafe_code)]

pub mod akv;
pub mod azure;
pub mod client;
pub mod cloud_http;
pub mod error;
pub mod gcp;
pub mod jwe;
pub mod runs;
pub mod server;
pub mod store;

pub use client::KbsClient;
pub use error::BrokerError;
pub use jwe::RuntimeKey;
