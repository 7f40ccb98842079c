//! What leaves the CCR besides the metrics: the model in the formats the contract allows
//! (`allowedModelFormats`: [`safetensors`] for PyTorch, [`onnx`] for ONNX runtimes;
//! `learn::xgb` writes XGBoost's JSON); the charts are drawn from the metrics at seal time
//! (`job::report::charts`).

pub mod safetensors;

pub use crate::learn::onnx::export as onnx;
