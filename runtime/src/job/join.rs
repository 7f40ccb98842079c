//! Step 5, join: the decrypted tables joined as the pipeline says (a keyed SQL join, or a
//! union of like-shaped tables), in memory on Arrow and DataFusion ([`crate::tabular`]).

use tracing::info;

use super::JobError;
use super::decrypt::Decrypted;
use crate::pipeline::Pipeline;
use crate::tabular::{self, Table};

/// What training reads: the joined table, or a serialized dataset's file.
pub enum Joined {
    /// Rows and columns.
    Table(Table),
    /// A serialized dataset (one-step pipelines): its file name and plaintext.
    File(String, zeroize::Zeroizing<Vec<u8>>),
    /// A directory dataset (one-step pipelines): its folder and files.
    Files(String, Vec<(String, zeroize::Zeroizing<Vec<u8>>)>),
    /// `LLM_Finetune`'s text datasets (their union is made of their records).
    Texts(Vec<super::decrypt::TextFile>),
}

/// Joins the decrypted tables (a serialized file or a directory's files pass through).
///
/// # Errors
/// [`JobError::Join`].
pub fn join(pipeline: &Pipeline, data: Decrypted) -> Result<Joined, JobError> {
    let tables = match data {
        Decrypted::File(name, bytes) => return Ok(Joined::File(name, bytes)),
        Decrypted::Files(folder, files) => return Ok(Joined::Files(folder, files)),
        Decrypted::Texts(t) => return Ok(Joined::Texts(t)),
        Decrypted::Tables(t) => t,
    };
    let rows_in: Vec<usize> = tables.iter().map(|t| t.1.num_rows()).collect();
    let t = tabular::run(&pipeline.join, tables)?;
    info!(rows_in = ?rows_in, rows = t.num_rows(), columns = t.schema.fields().len(), arrow_bytes = t.memory_size(), "joined");
    Ok(Joined::Table(t))
}
