//! Model graphs in DEPA-Training's `model_config` grammar, built as Burn modules and trained
//! with or without DP-SGD.
//!
//! - [`spec`]: the grammar parsed and checked (classes, params, ops, names, DEPA's limits);
//! - [`ops`]: the parameterless functions, their shapes and their Burn implementations;
//! - [`net`]: the Burn module, its forward pass, shape checking, `state_dict` names;
//! - [`per_sample`]: per-sample gradients from layer inputs and output gradients (DP-SGD);
//! - [`step`]: one batch's gradients, plain or clipped per sample.
//!
//! Supported layers: `nn.Linear`, `nn.Conv1d`, `nn.Conv2d`, `nn.ConvTranspose2d`,
//! `nn.BatchNorm1d`, `nn.BatchNorm2d` (not under DP), `nn.GroupNorm`, `nn.LayerNorm`,
//! `nn.Embedding`, and the parameterless [`ops::SUPPORTED_STATELESS_LAYERS`]; functions:
//! [`ops::SUPPORTED_FUNCTIONS`]; submodules with `$name` placeholders.

mod dense;
mod error;
pub mod net;
pub mod ops;
mod params;
pub mod per_sample;
pub mod spec;
pub mod step;

pub use net::{GraphNet, NamedTensor, check_shapes};
pub use spec::{GraphSpec, SpecError};

#[cfg(test)]
mod tests;
