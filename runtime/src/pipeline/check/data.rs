//! Checks of `dataset_config`: which fields go with which kind of dataset (tabular,
//! serialized, directory), splits, missing values.

use super::*;

/// The serialized-dataset fields of `dataset_config` and whether each is given.
pub(super) fn serialized_fields(dc: &crate::pipeline::DatasetConfig) -> [(&'static str, bool); 4] {
    [
        ("format", dc.format.is_some()),
        ("structure", dc.structure.is_some()),
        ("features_key", dc.features_key.is_some()),
        ("targets_key", dc.targets_key.is_some()),
    ]
}

/// A directory dataset: image files in class folders (`nested`), or in one folder with a
/// labels file (`flat`), as tensors (`image_config.to_tensor`).
pub(super) fn directory(t: &TrainConfig) -> Result<(), PipelineError> {
    let dc = &t.dataset_config;
    let tabular = [
        ("target_variable", dc.target_variable.is_some()),
        ("feature_columns", dc.feature_columns.is_some()),
    ];
    none_given(
        "dataset_config",
        &[&tabular[..], &serialized_fields(dc)[..]].concat(),
        "is not for directory datasets (their labels are class folders or labels_file)",
    )?;
    if dc.data_type.as_deref().is_some_and(|d| d != "image") {
        return Err(at(
            "dataset_config.data_type",
            "directory datasets of images only (`image`): text and audio files are not supported",
        ));
    }
    if let Some(p) = &dc.file_pattern
        && glob::Pattern::new(p).is_err()
    {
        return Err(at("dataset_config.file_pattern", "not a glob pattern"));
    }
    if dc.image_config.is_some_and(|i| !i.to_tensor) {
        return Err(at(
            "dataset_config.image_config.to_tensor",
            "must be true: a sample is the image's tensor",
        ));
    }
    match (
        dc.structure_type.unwrap_or(StructureType::Flat),
        &dc.labels_file,
    ) {
        (StructureType::Paired, _) => Err(at(
            "dataset_config.structure_type",
            "`paired` (input and target files, segmentation) is not supported: use nested (one \
             folder per class) or flat with labels_file",
        )),
        (StructureType::Nested, Some(_)) => Err(at(
            "dataset_config.labels_file",
            "a nested directory's labels are its class folders",
        )),
        (StructureType::Nested, None) if t.task_type == TaskType::Regression => Err(at(
            "dataset_config.structure_type",
            "class folders are labels for classification: a regression needs flat with labels_file",
        )),
        (StructureType::Flat, None) => Err(at(
            "dataset_config.labels_file",
            "a flat directory has no labels (DEPA's flat layout is unlabelled): give labels_file \
             (a CSV with columns file and label), or use structure_type nested",
        )),
        _ => Ok(()),
    }
}

pub(super) fn data(t: &TrainConfig) -> Result<(), PipelineError> {
    let dc = &t.dataset_config;
    match dc.kind {
        DatasetKind::Tabular => {
            if dc.target_variable.is_none() {
                return Err(at(
                    "dataset_config.target_variable",
                    "required for tabular data",
                ));
            }
            none_given(
                "dataset_config",
                &serialized_fields(dc),
                "is for serialized datasets",
            )?;
        }
        DatasetKind::Serialized => {
            if dc.format.is_none() {
                return Err(at(
                    "dataset_config.format",
                    "required for serialized data: hdf5 or safetensors",
                ));
            }
            if dc.target_variable.is_some() || dc.feature_columns.is_some() {
                return Err(at(
                    "dataset_config",
                    "target_variable and feature_columns are for tabular data (serialized data has features_key and targets_key)",
                ));
            }
        }
        DatasetKind::Directory => directory(t)?,
    }
    if dc.kind != DatasetKind::Directory {
        none_given(
            "dataset_config",
            &[
                ("structure_type", dc.structure_type.is_some()),
                ("file_pattern", dc.file_pattern.is_some()),
                ("labels_file", dc.labels_file.is_some()),
                ("image_config", dc.image_config.is_some()),
            ],
            "is for directory datasets",
        )?;
    }
    if dc.kind != DatasetKind::Tabular {
        let pre = dc.preprocessing.as_ref();
        none_given(
            "dataset_config",
            &[
                ("missing_strategy", dc.missing_strategy.is_some()),
                (
                    "preprocessing.categorical_encoding",
                    pre.is_some_and(|p| p.categorical_encoding.is_some()),
                ),
                (
                    "preprocessing.handle_unknown",
                    pre.is_some_and(|p| p.handle_unknown.is_some()),
                ),
            ],
            "is for tabular datasets",
        )?;
    }
    if dc.fill_value.is_some() && dc.missing_strategy != Some(MissingStrategy::Fill) {
        return Err(at(
            "dataset_config.fill_value",
            "goes with missing_strategy fill",
        ));
    }
    if dc.fill_value.is_some_and(|v| !v.is_finite()) {
        return Err(at("dataset_config.fill_value", "must be a finite number"));
    }
    if let Some(d) = &t.device {
        device(d)?;
    }
    let s = &t.dataset_config.splits;
    // DEPA divides each share by their sum (cifar10's add up to 1.05), and so does ccr.
    if !(s.train > 0.0 && s.test > 0.0 && s.val >= 0.0 && (s.train + s.val + s.test).is_finite()) {
        return Err(at(
            "dataset_config.splits",
            "train > 0, test > 0, val >= 0 (each share is divided by their sum)",
        ));
    }
    Ok(())
}
