//! Serialized datasets (`dataset_config.type` `serialized`), as DEPA's preprocess scripts write
//! them: a features array `[N, ...]` and a targets array `[N]` under `features_key` and
//! `targets_key` (default `features`, `targets`), in HDF5 (h5py, `mnist`) or safetensors
//! (`cifar10`). Sample i is `(features[i], targets[i])` (DEPA's `list_of_tuples`; `dict` and
//! `separate_tensors` are the same arrays). Read from the decrypted bytes in memory.
//!
//! Features may be f32, f64, f16/bf16 (safetensors) or 8-bit/16-bit/32-bit integers (pixels);
//! targets integers (classes, indexed in ascending order of value) or floats (regression).

use super::TrainError;
use super::data::Prepared;
use crate::pipeline::{SerializedFormat, TaskType, TrainConfig};

fn data_err(file: &str, what: impl std::fmt::Display) -> TrainError {
    TrainError::Data(format!("dataset file `{file}`: {what}"))
}

/// An array: its shape and values.
struct Array {
    shape: Vec<usize>,
    values: Vec<f64>,
}

/// Features and labels from a serialized dataset file.
///
/// # Errors
/// [`TrainError::Data`] naming the file and the key: not the format, a key missing, features
/// and targets of different lengths, an element type that is not numeric, fewer than ten
/// samples or two classes.
pub fn prepare(bytes: &[u8], file: &str, cfg: &TrainConfig) -> Result<Prepared, TrainError> {
    let dc = &cfg.dataset_config;
    let fk = dc.features_key.as_deref().unwrap_or("features");
    let tk = dc.targets_key.as_deref().unwrap_or("targets");
    let (features, targets) = match dc.format {
        Some(SerializedFormat::Hdf5) => (hdf5(bytes, file, fk)?, hdf5(bytes, file, tk)?),
        Some(SerializedFormat::Safetensors) => {
            let st = safetensors::SafeTensors::deserialize(bytes)
                .map_err(|e| data_err(file, format!("not safetensors: {e}")))?;
            (tensor(&st, file, fk)?, tensor(&st, file, tk)?)
        }
        None => return Err(data_err(file, "dataset_config.format is required")),
    };
    let n = features.shape.first().copied().unwrap_or(0);
    if targets.shape.first().copied() != Some(n) || targets.values.len() != n {
        return Err(data_err(
            file,
            format!(
                "`{fk}` has shape {:?} and `{tk}` {:?}: one target per sample is needed",
                features.shape, targets.shape
            ),
        ));
    }
    if n < 10 {
        return Err(data_err(file, format!("only {n} samples")));
    }
    let sample_shape: Vec<usize> = features.shape[1..].to_vec();
    if sample_shape.is_empty() || sample_shape.len() > 3 {
        return Err(data_err(
            file,
            format!(
                "`{fk}` of shape {:?}: samples of 1 to 3 dimensions",
                features.shape
            ),
        ));
    }
    let (y, classes) = match cfg.task_type {
        TaskType::Classification => {
            let mut values: Vec<f64> = targets.values.clone();
            values.sort_by(f64::total_cmp);
            values.dedup();
            if values.len() < 2 {
                return Err(data_err(
                    file,
                    format!("`{tk}` holds fewer than two classes"),
                ));
            }
            let y = targets
                .values
                .iter()
                .map(|v| values.partition_point(|c| c < v) as f32)
                .collect();
            (y, values.iter().map(|v| format!("{v}")).collect())
        }
        TaskType::Regression => (
            targets.values.iter().map(|&v| v as f32).collect(),
            Vec::new(),
        ),
    };
    Ok(Prepared {
        features: Vec::new(),
        x: features.values.iter().map(|&v| v as f32).collect(),
        y,
        classes,
        ids: (0..n).map(|i| i.to_string()).collect(),
        sample_shape,
    })
}

fn hdf5(bytes: &[u8], file: &str, key: &str) -> Result<Array, TrainError> {
    use hdf5_reader::{Datatype, Hdf5File};
    let f = Hdf5File::from_bytes(bytes).map_err(|e| data_err(file, format!("not HDF5: {e}")))?;
    let ds = f
        .dataset(key)
        .map_err(|e| data_err(file, format!("no dataset `{key}`: {e}")))?;
    let shape: Vec<usize> = ds.shape().iter().map(|&d| d as usize).collect();
    let read_err = |e: hdf5_reader::error::Error| data_err(file, format!("`{key}`: {e}"));
    let values: Vec<f64> = match ds.dtype() {
        Datatype::FloatingPoint { size: 4, .. } => ds
            .read_array::<f32>()
            .map_err(read_err)?
            .iter()
            .map(|&v| f64::from(v))
            .collect(),
        Datatype::FloatingPoint { size: 8, .. } => ds
            .read_array::<f64>()
            .map_err(read_err)?
            .iter()
            .copied()
            .collect(),
        Datatype::FixedPoint { size, signed, .. } => match (size, signed) {
            (1, false) => ds
                .read_array::<u8>()
                .map_err(read_err)?
                .iter()
                .map(|&v| f64::from(v))
                .collect(),
            (1, true) => ds
                .read_array::<i8>()
                .map_err(read_err)?
                .iter()
                .map(|&v| f64::from(v))
                .collect(),
            (2, false) => ds
                .read_array::<u16>()
                .map_err(read_err)?
                .iter()
                .map(|&v| f64::from(v))
                .collect(),
            (2, true) => ds
                .read_array::<i16>()
                .map_err(read_err)?
                .iter()
                .map(|&v| f64::from(v))
                .collect(),
            (4, false) => ds
                .read_array::<u32>()
                .map_err(read_err)?
                .iter()
                .map(|&v| f64::from(v))
                .collect(),
            (4, true) => ds
                .read_array::<i32>()
                .map_err(read_err)?
                .iter()
                .map(|&v| f64::from(v))
                .collect(),
            (8, false) => ds
                .read_array::<u64>()
                .map_err(read_err)?
                .iter()
                .map(|&v| v as f64)
                .collect(),
            (8, true) => ds
                .read_array::<i64>()
                .map_err(read_err)?
                .iter()
                .map(|&v| v as f64)
                .collect(),
            _ => return Err(data_err(file, format!("`{key}`: integers of {size} bytes"))),
        },
        other => {
            return Err(data_err(
                file,
                format!("`{key}` holds {other:?}, not numbers"),
            ));
        }
    };
    Ok(Array { shape, values })
}

fn tensor(st: &safetensors::SafeTensors<'_>, file: &str, key: &str) -> Result<Array, TrainError> {
    use safetensors::Dtype;
    let t = st
        .tensor(key)
        .map_err(|_| data_err(file, format!("no tensor `{key}`")))?;
    let b = t.data();
    let values: Vec<f64> = match t.dtype() {
        Dtype::F32 => b
            .chunks_exact(4)
            .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        Dtype::F64 => b
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect(),
        Dtype::F16 => b
            .chunks_exact(2)
            .map(|c| f64::from(half_to_f32(u16::from_le_bytes([c[0], c[1]]))))
            .collect(),
        Dtype::BF16 => b
            .chunks_exact(2)
            .map(|c| {
                f64::from(f32::from_bits(
                    u32::from(u16::from_le_bytes([c[0], c[1]])) << 16,
                ))
            })
            .collect(),
        Dtype::U8 => b.iter().map(|&v| f64::from(v)).collect(),
        Dtype::I8 => b.iter().map(|&v| f64::from(v as i8)).collect(),
        Dtype::I16 => b
            .chunks_exact(2)
            .map(|c| f64::from(i16::from_le_bytes([c[0], c[1]])))
            .collect(),
        Dtype::I32 => b
            .chunks_exact(4)
            .map(|c| f64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        Dtype::I64 => b
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f64)
            .collect(),
        other => {
            return Err(data_err(
                file,
                format!("`{key}` holds {other:?}, not numbers"),
            ));
        }
    };
    Ok(Array {
        shape: t.shape().to_vec(),
        values,
    })
}

/// IEEE 754 half precision to f32.
fn half_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let frac = u32::from(h & 0x3ff);
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // Subnormal: normalise.
            let mut e = 127 - 15 + 1;
            let mut f = f;
            while f & 0x400 == 0 {
                f <<= 1;
                e -= 1;
            }
            sign | ((e as u32) << 23) | ((f & 0x3ff) << 13)
        }
        (0x1f, f) => sign | 0x7f80_0000 | (f << 13),
        (e, f) => sign | ((e + 127 - 15) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}
