//! ONNX: a base model's graph imported into ccr's model graph ([`import`], as PyTorch's
//! `torch.onnx.export` writes it, opsets 11–17), and a trained graph exported ([`export`],
//! operator set 17) with the scaler in front.

pub mod export;
pub mod import;
pub mod proto;
mod read;

#[cfg(test)]
mod tests;
