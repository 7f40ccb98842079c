//! # ccr-runtime: the `ccr-init` entrypoint and the `ccr` tool
//!
//! The main job ([`job`]): verify the contract and pipeline, attest, get keys released, decrypt
//! the sealed datasets in memory, join them ([`join`]), train with Burn ([`train`]), and seal the
//! model, metrics and run report with the output key. [`pipeline`] documents every field of the
//! pipeline config that ccr reads.
//!
//! Attestation formats live in `ccr-attest`, broker protocols in `ccr-keybroker`, contracts and
//! policies in `ccr-policy`, the sealed-image format in `ccr-images`.

#![forbid(unsafe_code)]

pub mod cloud;
pub mod dp;
pub mod dpsgd;
pub mod init;
pub mod job;
pub mod join;
pub mod logging;
pub mod onnx;
pub mod pipeline;
pub mod train;
pub mod xgb;

/// The pipeline digest as the contract writes it (`sha256:<hex>` of the config's JCS form).
pub fn pipeline_digest_of(v: &serde_json::Value) -> String {
    ccr_policy::pipeline_digest(v)
}
