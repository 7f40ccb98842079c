//! Step 5, join: the decrypted tables joined as the pipeline says (a keyed SQL join, or a
//! union of like-shaped tables), in memory ([`crate::tabular`]).

use tracing::info;

use super::JobError;
use crate::pipeline::Pipeline;
use crate::tabular::{self, Table};

/// Joins the decrypted tables.
///
/// # Errors
/// [`JobError::Join`].
pub fn join(pipeline: &Pipeline, tables: Vec<(String, Table)>) -> Result<Table, JobError> {
    let rows_in: Vec<usize> = tables.iter().map(|t| t.1.rows.len()).collect();
    let t = tabular::run(&pipeline.join, tables)?;
    info!(rows_in = ?rows_in, rows = t.rows.len(), columns = t.columns.len(), "joined");
    Ok(t)
}
