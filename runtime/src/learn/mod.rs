//! Everything that learns: from the joined table to a fitted model, its metrics and its files.
//!
//! One module per concern, in the order a run uses them:
//! - [`features`]: features and labels from the joined table (missing values, categorical
//!   encoding, the fitted preprocessing);
//! - [`data`]: prepared data of any kind, the split, the scaler;
//! - [`model`]: the network (Burn), its forward pass and the device;
//! - [`loss`]: each sample's loss and its gradient (cross-entropy, MSE, L1, Huber, SmoothL1);
//! - [`fit`]: the training loop, plain or DP-SGD, with the learning-rate [`schedule`];
//! - [`dp`]: DP-SGD's per-sample clipping and noise ([`dp::sgd`]), the RDP accountant
//!   ([`dp::accountant`]) and the run's privacy plan ([`dp::plan`]);
//! - [`xgb`]: gradient-boosted trees (`Train_XGB`), and [`xgb_dp`] their DP variant;
//! - [`metrics`]: accuracy, ROC AUC, F1, MSE on the held-out split;
//! - [`export`]: what leaves the CCR: `model.safetensors`, `model.onnx`, the loss chart.
//!
//! Nothing here knows about contracts, keys or the job's steps: `job::train` calls it.

pub mod data;
pub mod directory;
pub mod dp;
pub mod export;
pub mod features;
pub mod fit;
pub mod graph;
pub mod llm;
pub mod loss;
pub mod metrics;
pub mod model;
pub mod onnx;
pub mod schedule;
pub mod serialized;
pub mod solver;
pub mod target;
pub mod xgb;
pub mod xgb_dp;

#[cfg(test)]
pub(crate) mod testing;

pub use data::{Prepared, Scaler, Split, split};
pub use fit::{EpochLog, Trained, train};
pub use model::{Net, device, predict};

/// A training error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// A configured column is missing from the joined table.
    #[error("{field}: column `{column}` is not in the joined table (columns: {available})")]
    Column {
        /// The config field.
        field: &'static str,
        /// The column.
        column: String,
        /// Available columns.
        available: String,
    },
    /// A feature column holds neither numbers nor text.
    #[error(
        "feature column `{column}` holds {kind}: only numbers and text (categories) are features"
    )]
    ColumnType {
        /// The column.
        column: String,
        /// Its type.
        kind: String,
    },
    /// A categorical feature has values in held-out rows that the training split does not
    /// have (`preprocessing.handle_unknown` `error`). The values are not named: they are data.
    #[error(
        "feature column `{column}`: categories not in the training split ({val} validation rows, {test} test rows); set dataset_config.preprocessing.handle_unknown to \"ignore\" to encode them as unknown"
    )]
    UnseenCategory {
        /// The column.
        column: String,
        /// Validation rows with such a value.
        val: usize,
        /// Test rows with such a value.
        test: usize,
    },
    /// Too few rows or classes.
    #[error("data: {0}")]
    Data(String),
    /// The tensor backend failed.
    #[error("training backend: {0}")]
    Backend(String),
}
