//! What leaves the CCR besides the metrics: the model in the formats the contract allows
//! (`allowedModelFormats`: [`safetensors`] for PyTorch, [`onnx`] for ONNX runtimes;
//! `learn::xgb` writes XGBoost's JSON) and the loss chart ([`chart`]).

pub mod chart;
pub mod safetensors;

pub use crate::learn::onnx::export as onnx;
