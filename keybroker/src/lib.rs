//! # ccr-keybroker: key release to attested runtimes, the runtime's side
//!
//! - [`mod@release`]: the one entry point the runtime calls: the contract's key references, the
//!   platform's attester and the runtime key in, every released key out, whatever the source
//!   (the ccr broker over KBS, Azure Key Vault SKR, GCP Cloud KMS).
//! - [`client`]: the KBS protocol (request, challenge, attestation, response) against the local
//!   broker, with a pinned certificate, bounded retries and timeouts.
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
//! - [`runs`]: the run plan a runtime names, the signed run report and the parties' signed
//!   requests about a run (shared with the broker).
//!
//! The broker server (`ccr keybroker serve`: HTTP handlers, SQLite store, TLS setup, admin
//! token) is the separate crate `ccr-keybroker-server` under `keybroker/server/`, so that
//! `ccr-init` never links it. Policy evaluation is delegated to `ccr-policy`, evidence
//! verification to `ccr-attest`.

#![forbid(unsafe_code)]

pub mod akv;
pub mod azure;
pub mod client;
pub mod cloud_http;
pub mod error;
pub mod gcp;
pub mod jwe;
pub mod release;
pub mod runs;
pub mod threshold;

pub use client::KbsClient;
pub use error::BrokerError;
pub use jwe::RuntimeKey;
pub use release::{ReleaseError, Released, release};
