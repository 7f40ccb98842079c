//! Step 4, decrypt: each dataset's sealed image opened with its key and its file decrypted as a
//! stream into memory, then read into an Arrow table (CSV or parquet) or kept as the bytes of a serialized
//! dataset (HDF5, safetensors: [`crate::learn::serialized`] reads them) or of a directory
//! dataset's files (images: [`crate::learn::directory`]). A wrong key, a flipped
//! bit, a truncated, reordered or swapped file is an error naming the file; nothing decrypted
//! touches disk.

use ccr_images::{DatasetKey, Image};
use tracing::info;
use zeroize::Zeroizing;

use super::release::dataset_dir;
use super::{JobConfig, JobError};
use crate::pipeline::{DatasetKind, Pipeline};
use crate::tabular::{self, Table};

/// What the decrypt step gives the join: the tables, or a one-step pipeline's serialized file.
pub enum Decrypted {
    /// `(table name, table)` per dataset, in the pipeline's order.
    Tables(Vec<(String, Table)>),
    /// A serialized dataset: its file name and plaintext (in memory, zeroized on drop).
    File(String, Zeroizing<Vec<u8>>),
    /// A directory dataset: its folder and each file under it (path in the image, plaintext).
    Files(String, Vec<(String, Zeroizing<Vec<u8>>)>),
}

/// Decrypts every dataset of the join, in the pipeline's order.
///
/// # Errors
/// [`JobError::Image`] naming the dataset (and the file and segment), [`JobError::Join`] for
/// CSV or parquet that does not parse, [`JobError::Config`] for a key or file that is missing.
pub fn decrypt(
    cfg: &JobConfig,
    pipeline: &Pipeline,
    keys: &[(String, DatasetKey)],
) -> Result<Decrypted, JobError> {
    let kind = pipeline.train.dataset_config.kind;
    let serialized = kind == DatasetKind::Serialized;
    let mut out = Vec::new();
    // Text columns the join matches on or names as identifiers stay plain text; other text
    // columns are categories (Arrow dictionaries).
    let plain_text: Vec<String> = pipeline
        .join
        .config()
        .joined_dataset
        .as_ref()
        .map(|j| {
            j.joining_key
                .iter()
                .chain(&j.identifiers)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    for d in &pipeline.join.config().datasets {
        let ierr = |source| JobError::Image {
            dataset: d.id.clone(),
            source,
        };
        let key = &keys
            .iter()
            .find(|k| k.0 == d.id)
            .ok_or_else(|| JobError::Config(format!("no key for dataset {}", d.id)))?
            .1;
        let dir = dataset_dir(cfg, &d.name, &d.mount_path);
        let image = Image::load(&dir).map_err(ierr)?;
        image.expect_dataset(&d.id).map_err(ierr)?;
        if kind == DatasetKind::Directory {
            // Every file under the folder (the image's root when `file` is empty).
            let prefix = match d.file.trim_matches('/') {
                "" => String::new(),
                f => format!("{f}/"),
            };
            let mut files = Vec::new();
            for entry in image.manifest().files.iter() {
                if entry.path.starts_with(&prefix) {
                    let plain = image.read_file(entry, &d.id, key).map_err(ierr)?;
                    files.push((entry.path.clone(), plain));
                }
            }
            let bytes: usize = files.iter().map(|f| f.1.len()).sum();
            info!(dataset = %d.id, name = %d.name, files = files.len(), bytes, "decrypted");
            return Ok(Decrypted::Files(d.file.clone(), files));
        }
        let entry = image
            .manifest()
            .files
            .iter()
            .find(|f| f.path == d.file)
            .ok_or_else(|| {
                JobError::Config(format!(
                    "dataset `{}`: file `{}` is not in image {}",
                    d.id,
                    d.file,
                    dir.display()
                ))
            })?;
        let plain = image.read_file(entry, &d.id, key).map_err(ierr)?;
        if serialized {
            info!(dataset = %d.id, name = %d.name, bytes = plain.len(), "decrypted");
            return Ok(Decrypted::File(d.file.clone(), plain));
        }
        let mut t = tabular::read::read(&d.name, &d.file, &plain, &plain_text)?;
        drop(plain);
        if let Some(sel) = &d.select_variables {
            t = select(t, sel, pipeline, &d.name)?;
        }
        info!(dataset = %d.id, name = %d.name, rows = t.num_rows(), columns = t.schema.fields().len(), arrow_bytes = t.memory_size(), "decrypted");
        out.push((d.name.clone(), t));
    }
    Ok(Decrypted::Tables(out))
}

/// `select_variables`: the listed columns and the joining key, when every listed name is a
/// column; otherwise every column, as DEPA's SparkJoin (which does not apply the list) reads
/// it, with a warning naming the names that are not columns.
fn select(t: Table, sel: &[String], pipeline: &Pipeline, name: &str) -> Result<Table, JobError> {
    let missing: Vec<&String> = sel.iter().filter(|c| t.column(c).is_none()).collect();
    if !missing.is_empty() {
        tracing::warn!(dataset = %name, missing = ?missing, "select_variables: not columns of the dataset; as DEPA's SparkJoin, every column is kept");
        return Ok(t);
    }
    let mut cols: Vec<String> = sel.to_vec();
    let key = pipeline
        .join
        .config()
        .joined_dataset
        .as_ref()
        .and_then(|j| j.joining_key.clone());
    if let Some(k) = key
        && t.column(&k).is_some()
        && !cols.contains(&k)
    {
        cols.insert(0, k);
    }
    Ok(tabular::select_columns(t, &cols, name)?)
}
