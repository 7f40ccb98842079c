//! `dataset_config`: how the joined table, a serialized file or a directory of images becomes
//! features and labels (DEPA's field names), with its splits and preprocessing.

use serde::{Deserialize, Serialize};

/// How the joined table (or a one-step pipeline's dataset file) becomes features and labels.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
    /// `tabular` (default), `serialized` (HDF5 or safetensors tensors) or `directory`.
    #[serde(rename = "type", default)]
    pub kind: DatasetKind,
    /// The label column (tabular).
    #[serde(default)]
    pub target_variable: Option<String>,
    /// Feature columns (default: every column but the target, identifiers and dropped ones).
    #[serde(default)]
    pub feature_columns: Option<Vec<String>>,
    /// Train/val/test split.
    #[serde(default)]
    pub splits: Splits,
    /// Preprocessing (default: a standard scaler for tabular data, none for tensors, as
    /// DEPA's `preprocessing` absent means no scaler).
    #[serde(default)]
    pub preprocessing: Option<Preprocessing>,
    /// DEPA's `data_type` (`tensor`, `numpy`): how its trainer holds rows; ccr's are tensors
    /// either way.
    #[serde(default)]
    pub data_type: Option<String>,
    /// Missing values: `drop` the row (default), `fill` with `fill_value`, or the training
    /// split's `mean`, `median` or `most_frequent` value.
    #[serde(default)]
    pub missing_strategy: Option<MissingStrategy>,
    /// `missing_strategy` `fill`: the number put in each missing cell (default 0).
    #[serde(default)]
    pub fill_value: Option<f64>,
    /// Serialized: `hdf5` or `safetensors`.
    #[serde(default)]
    pub format: Option<SerializedFormat>,
    /// Serialized: how features and targets are laid out (`list_of_tuples`, `dict`,
    /// `separate_tensors`: each a features array `[N, ...]` and a targets array `[N]`).
    #[serde(default)]
    pub structure: Option<Structure>,
    /// Serialized: the features' key (default `features`).
    #[serde(default)]
    pub features_key: Option<String>,
    /// Serialized: the targets' key (default `targets`).
    #[serde(default)]
    pub targets_key: Option<String>,
    /// Directory: how the files are laid out (DEPA's `structure_type`): `nested` (one folder
    /// per class, classes in sorted order of name, DEPA's ImageFolder-like layout) or `flat`
    /// with `labels_file`; `paired` (input/target files, segmentation) is refused.
    #[serde(default)]
    pub structure_type: Option<StructureType>,
    /// Directory: which files are samples, a glob on the file name (DEPA's `file_pattern`,
    /// default `*`).
    #[serde(default)]
    pub file_pattern: Option<String>,
    /// Directory, `flat`: a CSV inside the folder with columns `file` and `label` (ccr's; DEPA's
    /// flat layout has no labels).
    #[serde(default)]
    pub labels_file: Option<String>,
    /// Directory images: how a file becomes a tensor (DEPA's `image_config`).
    #[serde(default)]
    pub image_config: Option<ImageConfig>,
    /// DEPA's `transforms` (`normalize`, `augment`): DEPA's trainer applies none (its
    /// `_setup_transforms` is a placeholder), and ccr applies none either; the run report
    /// says so.
    #[serde(default)]
    pub transforms: Option<Transforms>,
}

impl DatasetConfig {
    /// `preprocessing.categorical_encoding`, default `auto`.
    pub fn categorical_encoding(&self) -> CategoricalEncoding {
        self.preprocessing
            .as_ref()
            .and_then(|p| p.categorical_encoding)
            .unwrap_or_default()
    }

    /// `preprocessing.handle_unknown`, default `error`.
    pub fn handle_unknown(&self) -> HandleUnknown {
        self.preprocessing
            .as_ref()
            .and_then(|p| p.handle_unknown)
            .unwrap_or_default()
    }

    /// The scaler: `preprocessing.scaler`, else standard for tabular data and none otherwise.
    pub fn scaler(&self) -> ScalerKind {
        match (&self.preprocessing, self.kind) {
            (Some(p), _) => p.scaler,
            (None, DatasetKind::Tabular) => ScalerKind::Standard,
            (None, _) => ScalerKind::Identity,
        }
    }
}

/// The dataset's kind (`dataset_config.type`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatasetKind {
    /// Rows and columns (CSV).
    #[default]
    Tabular,
    /// Tensors in one file (HDF5, safetensors).
    Serialized,
    /// Files in folders (images).
    Directory,
}

/// A serialized dataset's file format (`dataset_config.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SerializedFormat {
    /// HDF5 (h5py), datasets `features_key` and `targets_key`.
    Hdf5,
    /// safetensors, tensors `features_key` and `targets_key`.
    Safetensors,
}

/// A serialized dataset's layout (`dataset_config.structure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Structure {
    /// Sample i is `(features[i], targets[i])`.
    ListOfTuples,
    /// As `list_of_tuples`.
    Dict,
    /// As `list_of_tuples`.
    SeparateTensors,
}

/// A directory dataset's layout (`dataset_config.structure_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StructureType {
    /// Files in one folder, labelled by `labels_file`.
    Flat,
    /// One folder per class.
    Nested,
    /// Input and target files (segmentation masks): refused.
    Paired,
}

/// How an image file becomes a tensor (DEPA's `image_config`): decoded (PNG or JPEG), then
/// torchvision's `ToTensor` (`[C, H, W]`, values / 255).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageConfig {
    /// One channel, PIL's `convert("L")` (ITU-R 601-2 luma; default false).
    #[serde(default)]
    pub grayscale: bool,
    /// Must be true (the default): a sample is the image's tensor.
    #[serde(default = "yes")]
    pub to_tensor: bool,
    /// Values above `binarize_threshold` become 1, others 0 (default false).
    #[serde(default)]
    pub binarize: bool,
    /// `binarize`'s threshold on the [0, 1] values (default 0).
    #[serde(default)]
    pub binarize_threshold: f64,
    /// Read as OpenCV does: channels in BGR order (default false: PIL's RGB).
    #[serde(default)]
    pub use_cv2: bool,
    /// With `use_cv2`, a PIL image made from OpenCV's array (the values do not change).
    #[serde(default)]
    pub convert_to_pil: bool,
}

impl Default for ImageConfig {
    fn default() -> Self {
        Self {
            grayscale: false,
            to_tensor: true,
            binarize: false,
            binarize_threshold: 0.0,
            use_cv2: false,
            convert_to_pil: false,
        }
    }
}

fn yes() -> bool {
    true
}

/// DEPA's `transforms`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transforms {
    /// `normalize` (DEPA applies nothing).
    #[serde(default)]
    pub normalize: bool,
    /// `augment` (DEPA applies nothing).
    #[serde(default)]
    pub augment: bool,
}

/// What to do with a missing value (`dataset_config.missing_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingStrategy {
    /// Drop the row.
    Drop,
    /// Put `fill_value` in the cell.
    Fill,
    /// The column's mean over the training split (text columns: the most frequent value).
    Mean,
    /// The column's median over the training split (text columns: the most frequent value).
    Median,
    /// The column's most frequent value over the training split.
    MostFrequent,
}

impl MissingStrategy {
    /// The name in the pipeline config.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Drop => "drop",
            Self::Fill => "fill",
            Self::Mean => "mean",
            Self::Median => "median",
            Self::MostFrequent => "most_frequent",
        }
    }
}

/// Split fractions (summing to 1), the seed, and whether to stratify by label.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Splits {
    /// Training fraction.
    pub train: f64,
    /// Validation fraction (may be 0).
    #[serde(default)]
    pub val: f64,
    /// Held-out test fraction.
    pub test: f64,
    /// Seed of the split, the initialisation and the batch order.
    #[serde(default)]
    pub random_state: u64,
    /// Stratify the split by label (classification only).
    #[serde(default)]
    pub stratify: bool,
}

impl Default for Splits {
    fn default() -> Self {
        Self {
            train: 0.8,
            val: 0.0,
            test: 0.2,
            random_state: 0,
            stratify: true,
        }
    }
}

/// Preprocessing of the features.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preprocessing {
    /// The feature scaler, fitted on the training split only.
    #[serde(default)]
    pub scaler: ScalerKind,
    /// How text (categorical) columns become features (default `auto`).
    #[serde(default)]
    pub categorical_encoding: Option<CategoricalEncoding>,
    /// A category that the training split does not have (default `error`).
    #[serde(default)]
    pub handle_unknown: Option<HandleUnknown>,
}

impl Default for Preprocessing {
    fn default() -> Self {
        Self {
            scaler: ScalerKind::Standard,
            categorical_encoding: None,
            handle_unknown: None,
        }
    }
}

/// `preprocessing.categorical_encoding`: categories are learned on the training split.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CategoricalEncoding {
    /// DEPA's rule: one-hot when a column has at most `max(2, 1% of the rows)` categories,
    /// else ordinal.
    #[default]
    Auto,
    /// One `0/1` column per category (pandas' `get_dummies`).
    OneHot,
    /// The category's index in sorted order (scikit-learn's `OrdinalEncoder`).
    Ordinal,
}

/// `preprocessing.handle_unknown`, as scikit-learn's encoders name it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HandleUnknown {
    /// An error naming the column (scikit-learn's default).
    #[default]
    Error,
    /// All zeros (one-hot) or `-1` (ordinal).
    Ignore,
}

/// The feature scaler (`preprocessing.scaler`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScalerKind {
    /// Zero mean, unit variance.
    #[default]
    Standard,
    /// To [0, 1].
    MinMax,
    /// Divided by the largest absolute value.
    MaxAbs,
    /// Median removed, divided by the interquartile range (scikit-learn's `RobustScaler`,
    /// quantiles 25 and 75 interpolated linearly as numpy's `percentile`).
    Robust,
    /// Unscaled.
    #[serde(rename = "none")]
    Identity,
}
