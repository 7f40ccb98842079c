//! # ccr-runtime: the `ccr-init` entrypoint's library
//!
//! The main job ([`job`]), one module per step in the order they run: [`job::inputs`]
//! (contract, pipeline, base model, privacy plan), [`job::attest`], [`job::release`],
//! [`job::decrypt`], [`job::join`], [`job::train`], [`job::seal`] (with the run report,
//! [`job::report`]). Everything that learns is in [`learn`] (data preparation, the model,
//! fitting, DP-SGD and the accountant, metrics, exporters, XGBoost); the tables and their join
//! in [`tabular`]; every field of the pipeline config that ccr reads in [`pipeline`].
//!
//! Attestation formats live in `ccr-attest`, key release and broker protocols in
//! `ccr-keybroker`, contracts and policies in `ccr-policy`, the sealed-image format in
//! `ccr-images`. The parties' tool `ccr` is the package `ccr-cli` (`runtime/cli/`), so that
//! `ccr-init` links none of the broker server's code.

#![forbid(unsafe_code)]

pub mod init;
pub mod job;
pub mod learn;
pub mod logging;
pub mod pipeline;
pub mod tabular;
