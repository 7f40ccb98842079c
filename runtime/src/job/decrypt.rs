//! Step 4, decrypt: each dataset's sealed image opened with its key and its CSV file decrypted
//! as a stream into memory, then parsed into a table. A wrong key, a flipped bit, a truncated,
//! reordered or swapped file is an error naming the file; nothing decrypted touches disk.

use ccr_images::{DatasetKey, Image};
use tracing::info;

use super::release::dataset_dir;
use super::{JobConfig, JobError};
use crate::pipeline::Pipeline;
use crate::tabular::{self, Table};

/// Decrypts every dataset of the join, in the pipeline's order: `(table name, table)`.
///
/// # Errors
/// [`JobError::Image`] naming the dataset (and the file and segment), [`JobError::Join`] for
/// CSV that does not parse, [`JobError::Config`] for a key or file that is missing.
pub fn decrypt(
    cfg: &JobConfig,
    pipeline: &Pipeline,
    keys: &[(String, DatasetKey)],
) -> Result<Vec<(String, Table)>, JobError> {
    let mut out = Vec::new();
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
        let mut t = tabular::parse_csv(&d.name, &d.file, &plain)?;
        drop(plain);
        if let Some(sel) = &d.select_variables {
            t = tabular::select_columns(&t, sel, &d.name)?;
        }
        info!(dataset = %d.id, name = %d.name, rows = t.rows.len(), columns = t.columns.len(), "decrypted");
        out.push((d.name.clone(), t));
    }
    Ok(out)
}
