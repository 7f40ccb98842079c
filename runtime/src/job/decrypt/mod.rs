//! Step 4, decrypt: each dataset's sealed image (or LUKS2 image: [`luks2`]) opened with its key
//! and its file decrypted as a stream into memory, then read into an Arrow table (CSV or parquet) or kept as the bytes of a serialized
//! dataset (HDF5, safetensors: [`crate::learn::serialized`] reads them) or of a directory
//! dataset's files (images: [`crate::learn::directory`]). A wrong key, a flipped
//! bit, a truncated, reordered or swapped file is an error naming the file; nothing decrypted
//! touches disk.

pub mod luks2;

use std::io::{self, Read};
use std::sync::Mutex;

use ccr_images::{DatasetKey, FileEntry, Image, ImageError, StreamError};
use ccr_policy::Contract;
use ccr_policy::contract::{Dataset, ImageFormat};
use tracing::info;
use zeroize::Zeroizing;

use super::release::dataset_dir;
use super::{JobConfig, JobError};
use crate::pipeline::{DatasetInput, DatasetKind, Framework, Pipeline};
use crate::tabular::read::FileFormat;
use crate::tabular::{self, Table};

/// What the decrypt step gives the join: the tables, or a one-step pipeline's serialized file.
pub enum Decrypted {
    /// `(table name, table)` per dataset, in the pipeline's order.
    Tables(Vec<(String, Table)>),
    /// A serialized dataset: its file name and plaintext (in memory, zeroized on drop).
    File(String, Zeroizing<Vec<u8>>),
    /// A directory dataset: its folder and each file under it (path in the image, plaintext).
    Files(String, Vec<(String, Zeroizing<Vec<u8>>)>),
    /// `LLM_Finetune`'s text datasets, in the pipeline's order.
    Texts(Vec<TextFile>),
}

/// One text dataset's file (JSONL or CSV), decrypted.
pub struct TextFile {
    /// The dataset's `name` in the pipeline.
    pub dataset: String,
    /// The file's path in its image.
    pub file: String,
    /// The plaintext (zeroized on drop).
    pub bytes: Zeroizing<Vec<u8>>,
}

/// Decrypts every dataset of the join, in the pipeline's order: a ccr sealed image, or a LUKS2
/// image where the contract's key says `image_format` `luks2`.
///
/// # Errors
/// [`JobError::Image`] naming the dataset (and the file and segment), [`JobError::Join`] for
/// CSV or parquet that does not parse, [`JobError::Config`] for a key or file that is missing.
pub fn decrypt(
    cfg: &JobConfig,
    contract: &Contract,
    pipeline: &Pipeline,
    keys: &[(String, DatasetKey)],
) -> Result<Decrypted, JobError> {
    let kind = pipeline.train.dataset_config.kind;
    let datasets = &pipeline.join.config().datasets;
    let luks2_entry = |d: &DatasetInput| {
        contract
            .datasets
            .iter()
            .find(|c| c.id == d.id && c.key.properties.image_format == ImageFormat::Luks2)
    };
    if pipeline.framework == Framework::LlmFinetune {
        // Text datasets: each file whole (records are read and tokenized by the train step).
        let mut texts = Vec::new();
        for d in datasets {
            let bytes = if let Some(c) = luks2_entry(d) {
                let ds = open_luks2(cfg, d, c, keys)?;
                let r = ds.read(&d.file);
                ds.finish(r)?
            } else {
                let (image, key) = open(cfg, d, keys)?;
                read_one(d, &image, key)?
            };
            info!(dataset = %d.id, name = %d.name, file = %d.file, bytes = bytes.len(), "decrypted");
            texts.push(TextFile {
                dataset: d.name.clone(),
                file: d.file.clone(),
                bytes,
            });
        }
        return Ok(Decrypted::Texts(texts));
    }
    if kind != DatasetKind::Tabular {
        // One-step pipelines: one serialized file or one directory.
        let Some(d) = datasets.first() else {
            return Err(JobError::Config("no dataset".into()));
        };
        if let Some(c) = luks2_entry(d) {
            let ds = open_luks2(cfg, d, c, keys)?;
            let r = luks2_one_file_or_folder(d, &ds, kind);
            return ds.finish(r);
        }
        let (image, key) = open(cfg, d, keys)?;
        return one_file_or_folder(d, &image, key, kind);
    }
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
    // Each dataset decrypted and parsed on its own thread: the datasets overlap on the cores.
    let tables: Vec<Result<(String, Table), JobError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = datasets
            .iter()
            .map(|d| {
                let plain_text = &plain_text;
                let luks2 = luks2_entry(d);
                scope.spawn(move || {
                    if let Some(c) = luks2 {
                        let ds = open_luks2(cfg, d, c, keys)?;
                        let r = luks2_table(pipeline, d, &ds, plain_text);
                        return ds.finish(r);
                    }
                    let (image, key) = open(cfg, d, keys)?;
                    table(pipeline, d, &image, key, plain_text)
                })
            })
            .collect();
        handles
            .into_iter()
            .zip(datasets)
            .map(|(h, d)| {
                h.join().unwrap_or_else(|_| {
                    Err(JobError::Config(format!(
                        "dataset `{}` file `{}`: reading it failed unexpectedly (the reader panicked)",
                        d.name, d.file
                    )))
                })
            })
            .collect()
    });
    Ok(Decrypted::Tables(
        tables.into_iter().collect::<Result<_, _>>()?,
    ))
}

/// The released key of dataset `d`.
fn key_of<'k>(
    d: &DatasetInput,
    keys: &'k [(String, DatasetKey)],
) -> Result<&'k DatasetKey, JobError> {
    Ok(&keys
        .iter()
        .find(|k| k.0 == d.id)
        .ok_or_else(|| JobError::Config(format!("no key for dataset {}", d.id)))?
        .1)
}

/// A dataset's LUKS2 image, opened with its released key file.
fn open_luks2(
    cfg: &JobConfig,
    d: &DatasetInput,
    c: &Dataset,
    keys: &[(String, DatasetKey)],
) -> Result<luks2::Luks2Dataset, JobError> {
    let dir = dataset_dir(cfg, &d.name, &d.mount_path);
    luks2::Luks2Dataset::open(&dir, c, key_of(d, keys)?)
}

/// A tabular dataset's file from a LUKS2 image: CSV streamed from the ext4 file into record
/// batches, parquet (by name or magic) read whole; then as [`table`].
fn luks2_table(
    pipeline: &Pipeline,
    d: &DatasetInput,
    ds: &luks2::Luks2Dataset,
    plain_text: &[String],
) -> Result<(String, Table), JobError> {
    let mut magic = [0u8; 4];
    let n = read_prefix(&mut ds.stream(&d.file)?, &mut magic)
        .map_err(|e| ds.stream_error(&d.file, &e))?;
    let parquet =
        FileFormat::detect(&d.file, &[]) == FileFormat::Parquet || (n == 4 && &magic == b"PAR1");
    let t = if parquet {
        let plain = ds.read(&d.file)?;
        tabular::read::read_parquet(&d.name, &d.file, &plain)?
    } else {
        let open = || {
            ds.stream(&d.file)
                .map_err(|e| io::Error::other(e.to_string()))
        };
        tabular::read::read_csv_stream(&d.name, &d.file, open)?
    };
    finish_table(pipeline, d, t, plain_text)
}

/// A one-step pipeline's serialized file, or every file of its directory, from a LUKS2 image.
fn luks2_one_file_or_folder(
    d: &DatasetInput,
    ds: &luks2::Luks2Dataset,
    kind: DatasetKind,
) -> Result<Decrypted, JobError> {
    if kind == DatasetKind::Directory {
        let mut files = Vec::new();
        for f in ds.list(&d.file)? {
            let plain = ds.read(&f.path)?;
            files.push((f.path, plain));
        }
        let bytes: usize = files.iter().map(|f| f.1.len()).sum();
        info!(dataset = %d.id, name = %d.name, files = files.len(), bytes, "decrypted");
        return Ok(Decrypted::Files(d.file.clone(), files));
    }
    let plain = ds.read(&d.file)?;
    info!(dataset = %d.id, name = %d.name, bytes = plain.len(), "decrypted");
    Ok(Decrypted::File(d.file.clone(), plain))
}

/// A dataset's sealed image and key.
fn open<'k>(
    cfg: &JobConfig,
    d: &DatasetInput,
    keys: &'k [(String, DatasetKey)],
) -> Result<(Image, &'k DatasetKey), JobError> {
    let ierr = |source| JobError::Image {
        dataset: d.id.clone(),
        source,
    };
    let key = key_of(d, keys)?;
    let dir = dataset_dir(cfg, &d.name, &d.mount_path);
    let image = Image::load(&dir).map_err(ierr)?;
    image.expect_dataset(&d.id).map_err(ierr)?;
    Ok((image, key))
}

/// Dataset `d`'s file entry in its image.
fn entry_of<'i>(d: &DatasetInput, image: &'i Image) -> Result<&'i FileEntry, JobError> {
    image
        .manifest()
        .files
        .iter()
        .find(|f| f.path == d.file)
        .ok_or_else(|| {
            JobError::Config(format!(
                "dataset `{}`: file `{}` is not in its image",
                d.id, d.file
            ))
        })
}

/// The plaintext of dataset `d`'s file in its image.
fn read_one(
    d: &DatasetInput,
    image: &Image,
    key: &DatasetKey,
) -> Result<Zeroizing<Vec<u8>>, JobError> {
    image
        .read_file(entry_of(d, image)?, &d.id, key)
        .map_err(|source| JobError::Image {
            dataset: d.id.clone(),
            source,
        })
}

/// A tabular dataset: its file decrypted, read into an Arrow table, `select_variables` applied.
/// CSV goes from the decrypting reader into record batches (no whole plaintext in memory);
/// parquet, which is read from its footer, is decrypted into memory first.
fn table(
    pipeline: &Pipeline,
    d: &DatasetInput,
    image: &Image,
    key: &DatasetKey,
    plain_text: &[String],
) -> Result<(String, Table), JobError> {
    let entry = entry_of(d, image)?;
    let image_err = |source| JobError::Image {
        dataset: d.id.clone(),
        source,
    };
    // Parquet by its name, or by its magic at the start of the plaintext.
    let mut magic = [0u8; 4];
    let n = image
        .open_file(entry, &d.id, key)
        .and_then(|mut r| {
            read_prefix(&mut r, &mut magic).map_err(|e| stream_error(image, entry, e))
        })
        .map_err(image_err)?;
    let parquet =
        FileFormat::detect(&d.file, &[]) == FileFormat::Parquet || (n == 4 && &magic == b"PAR1");
    let t = if parquet {
        let plain = read_one(d, image, key)?;
        tabular::read::read_parquet(&d.name, &d.file, &plain)?
    } else {
        // The first stream error (a failed segment) is kept to be reported as such, not as the
        // CSV error the parser makes of it.
        let failed: Mutex<Option<ImageError>> = Mutex::new(None);
        let keep = |e: ImageError| {
            let msg = e.to_string();
            if let Ok(mut f) = failed.lock() {
                f.get_or_insert(e);
            }
            io::Error::other(msg)
        };
        let open = || match image.open_file(entry, &d.id, key) {
            Ok(r) => Ok(Recording {
                r,
                image,
                entry,
                keep: &keep,
            }),
            Err(e) => Err(keep(e)),
        };
        let read = tabular::read::read_csv_stream(&d.name, &d.file, open);
        if let Some(e) = failed.lock().ok().and_then(|mut f| f.take()) {
            return Err(image_err(e));
        }
        read?
    };
    finish_table(pipeline, d, t, plain_text)
}

/// Text columns to dictionaries and `select_variables` applied, as every dataset table gets.
fn finish_table(
    pipeline: &Pipeline,
    d: &DatasetInput,
    mut t: Table,
    plain_text: &[String],
) -> Result<(String, Table), JobError> {
    t = tabular::read::dictionaries(&d.name, &d.file, t, plain_text)?;
    if let Some(sel) = &d.select_variables {
        t = select(t, sel, pipeline, &d.name)?;
    }
    info!(dataset = %d.id, name = %d.name, rows = t.num_rows(), columns = t.schema.fields().len(), arrow_bytes = t.memory_size(), "decrypted");
    Ok((d.name.clone(), t))
}

/// Reads up to `buf.len()` bytes from the start of a stream.
fn read_prefix(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The image error of a failed read (a failed segment names its file).
fn stream_error(image: &Image, entry: &FileEntry, e: io::Error) -> ImageError {
    match StreamError::from_io(&e) {
        Some(s) => image.file_error(entry, s),
        None => image.file_error(entry, StreamError::Io(e.to_string())),
    }
}

/// A decrypting reader that hands its first failure to `keep` (see [`table`]).
struct Recording<'a, R, K: Fn(ImageError) -> io::Error> {
    r: R,
    image: &'a Image,
    entry: &'a FileEntry,
    keep: &'a K,
}

impl<R: Read, K: Fn(ImageError) -> io::Error> Read for Recording<'_, R, K> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.r
            .read(buf)
            .map_err(|e| (self.keep)(stream_error(self.image, self.entry, e)))
    }
}

/// A one-step pipeline's serialized file, or every file of its directory.
fn one_file_or_folder(
    d: &DatasetInput,
    image: &Image,
    key: &DatasetKey,
    kind: DatasetKind,
) -> Result<Decrypted, JobError> {
    if kind == DatasetKind::Directory {
        // Every file under the folder (the image's root when `file` is empty).
        let prefix = match d.file.trim_matches('/') {
            "" => String::new(),
            f => format!("{f}/"),
        };
        let mut files = Vec::new();
        for entry in image.manifest().files.iter() {
            if entry.path.starts_with(&prefix) {
                let plain =
                    image
                        .read_file(entry, &d.id, key)
                        .map_err(|source| JobError::Image {
                            dataset: d.id.clone(),
                            source,
                        })?;
                files.push((entry.path.clone(), plain));
            }
        }
        let bytes: usize = files.iter().map(|f| f.1.len()).sum();
        info!(dataset = %d.id, name = %d.name, files = files.len(), bytes, "decrypted");
        return Ok(Decrypted::Files(d.file.clone(), files));
    }
    let plain = read_one(d, image, key)?;
    info!(dataset = %d.id, name = %d.name, bytes = plain.len(), "decrypted");
    Ok(Decrypted::File(d.file.clone(), plain))
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
