//! # ccr-policy: contracts, signatures and release policies
//!
//! - [`contract`]: `contract.json` in DEPA-Training's shape plus the parties' keys, the pipeline
//!   digest, the output key and the release policy; its digest and validity checks.
//! - [`sign`]: each party's detached JWS (Ed25519 or ES256) over the contract digest.
//! - [`release`]: the release-policy grammar of Azure Key Vault (`anyOf`/`allOf`,
//!   `claim`/`equals`), evaluated over claims with the failing clause named on deny.
//!
//! - [`depa`]: DEPA-Training's own `policy.rego` over the input its runner gives it.
//!
//! This crate does no I/O beyond parsing the bytes it is given.

#![forbid(unsafe_code)]

pub mod contract;
pub mod depa;
pub mod error;
pub mod reference;
pub mod rego;
pub mod release;
pub mod schema;
pub mod sign;

pub use contract::{Contract, VerifiedContract, pipeline_digest};
pub use error::PolicyError;
pub use rego::{RegoPolicy, to_rego};
pub use release::{Allow, Decision, ReleasePolicy};
