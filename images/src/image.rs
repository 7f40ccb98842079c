//! Sealed images: a folder holding `manifest.json` and one ciphertext per file under `data/`.
//!
//! ```text
//! IMAGE/
//!   manifest.json          the Manifest below (JSON)
//!   data/<relative path>   Tink streaming AEAD ciphertext of that file,
//!                          associated data "<dataset id>/<relative path>"
//! ```
//!
//! The manifest is not secret and not trusted: every value in it is checked against the
//! ciphertext (size, SHA-256), and the dataset id that goes into the associated data comes from
//! the caller (the contract), not from the manifest, so a file swapped in from another dataset
//! or renamed fails authentication.
//!
//! Images are written under a temporary name beside the target and renamed into place, so a
//! failure leaves no half-written image.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{ImageError, StreamError};
use crate::stream::{DatasetKey, OpenReader, SEGMENT_SIZE, SealWriter};

/// The `format` value of manifests written by this version.
pub const FORMAT: &str = "ccr-sealed-image/1";
/// The `aead` value: Tink's key template name for the streaming AEAD used.
pub const AEAD: &str = "AES256_GCM_HKDF_1MB";
/// File name of the manifest inside an image.
pub const MANIFEST: &str = "manifest.json";
/// Folder of the ciphertext files inside an image.
pub const DATA_DIR: &str = "data";

/// `manifest.json` of a sealed image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// The dataset id (the contract's `datasets[].id`, or the output's id).
    pub dataset_id: String,
    /// The key's identifier at its broker (the contract's `key.properties.kid`).
    pub kid: String,
    /// Always [`AEAD`].
    pub aead: String,
    /// Ciphertext segment size in bytes (1048576).
    pub segment_size: u64,
    /// The files, sorted by path.
    pub files: Vec<FileEntry>,
}

/// One file of a sealed image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Relative path with `/` separators; also the ciphertext's path under `data/`.
    pub path: String,
    /// Plaintext size in bytes.
    pub plaintext_size: u64,
    /// Ciphertext size in bytes.
    pub ciphertext_size: u64,
    /// SHA-256 of the ciphertext, lowercase hex (64 characters).
    pub ciphertext_sha256: String,
}

/// The Tink associated data of a file: `<dataset id>/<relative path>`.
pub fn associated_data(dataset_id: &str, relative_path: &str) -> Vec<u8> {
    format!("{dataset_id}/{relative_path}").into_bytes()
}

/// Checks that `p` is a plain relative path (no root, no `..`, no `.`, no empty part).
///
/// # Errors
/// [`ImageError::UnsafePath`].
pub fn check_relative_path(p: &str) -> Result<(), ImageError> {
    let bad = p.is_empty()
        || p.starts_with('/')
        || p.contains('\\')
        || p.split('/').any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        return Err(ImageError::UnsafePath(p.to_string()));
    }
    Ok(())
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ImageError + '_ {
    move |source| ImageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// SHA-256 through `ring` (BoringSSL's assembly, SHA-NI where present): the ciphertext
/// digest is on the hot path of opening an image.
struct Sha256(ring::digest::Context);

impl Sha256 {
    fn new() -> Self {
        Self(ring::digest::Context::new(&ring::digest::SHA256))
    }
    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    fn finish(self) -> Vec<u8> {
        self.0.finish().as_ref().to_vec()
    }
}

/// A writer that hashes and counts what passes through.
struct HashingWriter<W> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes what passes through.
struct HashingReader<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// Builds a sealed image file by file in a temporary folder beside `target`, then renames it
/// into place on [`ImageBuilder::commit`]. Dropped without commit, it removes what it wrote.
pub struct ImageBuilder {
    target: PathBuf,
    tmp: PathBuf,
    dataset_id: String,
    kid: String,
    key: DatasetKey,
    files: Vec<FileEntry>,
    prepared: bool,
    committed: bool,
}

impl ImageBuilder {
    /// Starts an image at `target`, which must not exist.
    ///
    /// # Errors
    /// [`ImageError::Exists`] when `target` exists; [`ImageError::Io`] when the temporary
    /// folder cannot be made.
    pub fn new(
        target: &Path,
        dataset_id: &str,
        kid: &str,
        key: &DatasetKey,
    ) -> Result<Self, ImageError> {
        if target.exists() {
            return Err(ImageError::Exists(target.to_path_buf()));
        }
        let name = target
            .file_name()
            .ok_or_else(|| ImageError::UnsafePath(target.display().to_string()))?
            .to_string_lossy()
            .into_owned();
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
        }
        fs::create_dir_all(tmp.join(DATA_DIR)).map_err(io_err(&tmp))?;
        Ok(Self {
            target: target.to_path_buf(),
            tmp,
            dataset_id: dataset_id.to_string(),
            kid: kid.to_string(),
            key: key.clone(),
            files: Vec::new(),
            prepared: false,
            committed: false,
        })
    }

    /// Seals everything `reader` yields as the file `relative_path` (with `/` separators).
    ///
    /// # Errors
    /// [`ImageError::UnsafePath`], or [`ImageError::Io`] naming the source (`source_name`) or
    /// the ciphertext file.
    pub fn add_file(
        &mut self,
        relative_path: &str,
        source_name: &Path,
        mut reader: impl Read,
    ) -> Result<&FileEntry, ImageError> {
        check_relative_path(relative_path)?;
        if self.files.iter().any(|f| f.path == relative_path) {
            return Err(ImageError::Manifest {
                path: self.target.join(MANIFEST),
                field: "files[].path".into(),
                reason: format!("duplicate path `{relative_path}`"),
            });
        }
        let ct_path = self.tmp.join(DATA_DIR).join(relative_path);
        if let Some(dir) = ct_path.parent() {
            fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        let file = File::create(&ct_path).map_err(io_err(&ct_path))?;
        let hw = HashingWriter {
            inner: BufWriter::with_capacity(SEGMENT_SIZE, file),
            hash: Sha256::new(),
        };
        let ad = associated_data(&self.dataset_id, relative_path);
        let mut w = SealWriter::new(&self.key, &ad, hw).map_err(io_err(&ct_path))?;
        let mut buf = Zeroizing::new(vec![0u8; 256 * 1024]);
        let mut plaintext_size = 0u64;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err(source_name)(e)),
            };
            plaintext_size += n as u64;
            w.write_all(&buf[..n]).map_err(io_err(&ct_path))?;
        }
        let (hw, ciphertext_size) = w.finish().map_err(io_err(&ct_path))?;
        let HashingWriter { inner, hash } = hw;
        let file = inner
            .into_inner()
            .map_err(|e| io_err(&ct_path)(e.into_error()))?;
        file.sync_all().map_err(io_err(&ct_path))?;
        self.files.push(FileEntry {
            path: relative_path.to_string(),
            plaintext_size,
            ciphertext_size,
            ciphertext_sha256: hex::encode(hash.finish()),
        });
        Ok(self
            .files
            .last()
            .unwrap_or_else(|| unreachable!("just pushed")))
    }

    /// Writes `manifest.json` and syncs it: after this, [`ImageBuilder::commit`] only renames,
    /// which needs no space. Call it before telling anyone the image exists (a full file
    /// system then fails here, with nothing committed).
    ///
    /// # Errors
    /// [`ImageError::Io`] naming `manifest.json`.
    pub fn prepare(&mut self) -> Result<(), ImageError> {
        if self.prepared {
            return Ok(());
        }
        self.files.sort_by(|a, b| a.path.cmp(&b.path));
        let mpath = self.tmp.join(MANIFEST);
        let json = serde_json::to_vec_pretty(&self.manifest())
            .unwrap_or_else(|_| unreachable!("manifest serialises"));
        let mut f = File::create(&mpath).map_err(io_err(&mpath))?;
        f.write_all(&json).map_err(io_err(&mpath))?;
        f.sync_all().map_err(io_err(&mpath))?;
        self.prepared = true;
        Ok(())
    }

    fn manifest(&self) -> Manifest {
        Manifest {
            format: FORMAT.into(),
            dataset_id: self.dataset_id.clone(),
            kid: self.kid.clone(),
            aead: AEAD.into(),
            segment_size: SEGMENT_SIZE as u64,
            files: self.files.clone(),
        }
    }

    /// Writes `manifest.json` (unless [`ImageBuilder::prepare`] did) and renames the image into
    /// place.
    ///
    /// # Errors
    /// [`ImageError::Exists`] if the target appeared meanwhile; [`ImageError::Io`].
    pub fn commit(mut self) -> Result<Manifest, ImageError> {
        self.prepare()?;
        if self.target.exists() {
            return Err(ImageError::Exists(self.target.clone()));
        }
        fs::rename(&self.tmp, &self.target).map_err(io_err(&self.target))?;
        self.committed = true;
        Ok(self.manifest())
    }
}

impl Drop for ImageBuilder {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}

/// Seals a file or a folder (recursively, in path order) into a new image at `target`.
///
/// A single file becomes the image's one file under its own name.
///
/// # Errors
/// As [`ImageBuilder`]; no image is left behind on error.
pub fn seal_path(
    source: &Path,
    target: &Path,
    dataset_id: &str,
    kid: &str,
    key: &DatasetKey,
) -> Result<Manifest, ImageError> {
    let mut files = Vec::new();
    let meta = fs::metadata(source).map_err(io_err(source))?;
    if meta.is_dir() {
        collect_files(source, source, &mut files)?;
    } else {
        let name = source
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| ImageError::UnsafePath(source.display().to_string()))?;
        files.push((name.to_string(), source.to_path_buf()));
    }
    files.sort();
    let mut b = ImageBuilder::new(target, dataset_id, kid, key)?;
    for (rel, path) in files {
        let f = File::open(&path).map_err(io_err(&path))?;
        b.add_file(&rel, &path, BufReader::new(f))?;
    }
    b.commit()
}

fn collect_files(
    root: &Path,
    dir: &Path,
    out: &mut Vec<(String, PathBuf)>,
) -> Result<(), ImageError> {
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let path = entry.path();
        let ft = entry.file_type().map_err(io_err(&path))?;
        if ft.is_dir() {
            collect_files(root, &path, out)?;
        } else if ft.is_file() {
            let rel = path
                .strip_prefix(root)
                .unwrap_or_else(|_| unreachable!("walked from root"));
            let mut parts = Vec::new();
            for c in rel.components() {
                match c {
                    Component::Normal(s) => parts.push(
                        s.to_str()
                            .ok_or_else(|| ImageError::UnsafePath(path.display().to_string()))?,
                    ),
                    _ => return Err(ImageError::UnsafePath(path.display().to_string())),
                }
            }
            out.push((parts.join("/"), path));
        }
    }
    Ok(())
}

/// A sealed image on disk with its parsed, checked manifest.
#[derive(Debug, Clone)]
pub struct Image {
    dir: PathBuf,
    manifest: Manifest,
}

impl Image {
    /// Reads and checks `dir/manifest.json`.
    ///
    /// # Errors
    /// [`ImageError::Io`] when it cannot be read; [`ImageError::Manifest`] naming the field
    /// when it is malformed (unknown format or AEAD, bad segment size, unsafe or duplicate
    /// paths, a digest that is not 64 hex characters).
    pub fn load(dir: &Path) -> Result<Self, ImageError> {
        let mpath = dir.join(MANIFEST);
        let bytes = fs::read(&mpath).map_err(io_err(&mpath))?;
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| ImageError::Manifest {
                path: mpath.clone(),
                field: json_error_field(&e),
                reason: e.to_string(),
            })?;
        let bad = |field: &str, reason: String| ImageError::Manifest {
            path: mpath.clone(),
            field: field.into(),
            reason,
        };
        if manifest.format != FORMAT {
            return Err(bad(
                "format",
                format!("`{}`, expected `{FORMAT}`", manifest.format),
            ));
        }
        if manifest.aead != AEAD {
            return Err(bad(
                "aead",
                format!("`{}`, expected `{AEAD}`", manifest.aead),
            ));
        }
        if manifest.segment_size != SEGMENT_SIZE as u64 {
            return Err(bad(
                "segment_size",
                format!("{}, expected {SEGMENT_SIZE}", manifest.segment_size),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, f) in manifest.files.iter().enumerate() {
            check_relative_path(&f.path)
                .map_err(|_| bad(&format!("files[{i}].path"), format!("unsafe `{}`", f.path)))?;
            if !seen.insert(&f.path) {
                return Err(bad(
                    &format!("files[{i}].path"),
                    format!("duplicate `{}`", f.path),
                ));
            }
            let hex_ok = f.ciphertext_sha256.len() == 64
                && f.ciphertext_sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !hex_ok {
                return Err(bad(
                    &format!("files[{i}].ciphertext_sha256"),
                    "not 64 lowercase hex characters".into(),
                ));
            }
            if crate::stream::ciphertext_len(f.plaintext_size) != f.ciphertext_size {
                return Err(bad(
                    &format!("files[{i}].ciphertext_size"),
                    format!(
                        "{} does not match plaintext_size {}",
                        f.ciphertext_size, f.plaintext_size
                    ),
                ));
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The image folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Checks that the image is for `expected_dataset_id`.
    ///
    /// # Errors
    /// [`ImageError::DatasetMismatch`].
    pub fn expect_dataset(&self, expected_dataset_id: &str) -> Result<(), ImageError> {
        if self.manifest.dataset_id != expected_dataset_id {
            return Err(ImageError::DatasetMismatch {
                path: self.dir.join(MANIFEST),
                found: self.manifest.dataset_id.clone(),
                expected: expected_dataset_id.to_string(),
            });
        }
        Ok(())
    }

    /// Decrypts one file fully into memory (zeroized on drop), checking its size.
    ///
    /// `dataset_id` is the id the caller expects (it goes into the associated data).
    ///
    /// # Errors
    /// [`ImageError::Stream`] naming the file and segment; [`ImageError::Digest`] when the
    /// ciphertext's size differs from the manifest; [`ImageError::Io`]. On error no plaintext is
    /// returned.
    pub fn read_file(
        &self,
        entry: &FileEntry,
        dataset_id: &str,
        key: &DatasetKey,
    ) -> Result<Zeroizing<Vec<u8>>, ImageError> {
        let cap = usize::try_from(entry.plaintext_size)
            .unwrap_or(0)
            .min(1 << 30);
        let mut out = Zeroizing::new(Vec::with_capacity(cap));
        self.stream_file(entry, dataset_id, key, |chunk| {
            out.extend_from_slice(chunk);
            Ok(())
        })?;
        Ok(out)
    }

    /// Decrypts one file as a stream, calling `sink` with each verified chunk of plaintext
    /// (at most one segment, 1 MiB, is held). The caller must discard what it received if this
    /// returns an error: the end of the stream is authenticated only with the last segment.
    ///
    /// # Errors
    /// As [`Image::read_file`], plus what `sink` returns.
    pub fn stream_file(
        &self,
        entry: &FileEntry,
        dataset_id: &str,
        key: &DatasetKey,
        mut sink: impl FnMut(&[u8]) -> Result<(), ImageError>,
    ) -> Result<(), ImageError> {
        let mut r = self.open_file(entry, dataset_id, key)?;
        loop {
            match r.next_segment() {
                Ok(Some(chunk)) => sink(chunk)?,
                Ok(None) => break,
                Err(source) => return Err(self.file_error(entry, source)),
            }
        }
        Ok(())
    }

    /// Opens one file for streaming decryption: an `io::Read` of its plaintext (and
    /// [`OpenReader::next_segment`]). A read that fails returns an `io::Error` carrying the
    /// [`StreamError`] ([`StreamError::from_io`]; [`Image::file_error`] names the file). The
    /// caller must discard what it read if a read fails: the end of the stream is
    /// authenticated only with the last segment.
    ///
    /// # Errors
    /// As [`Image::read_file`], for the checks made before the first byte.
    pub fn open_file(
        &self,
        entry: &FileEntry,
        dataset_id: &str,
        key: &DatasetKey,
    ) -> Result<OpenReader<BufReader<File>>, ImageError> {
        check_relative_path(&entry.path)?;
        let ct_path = self.dir.join(DATA_DIR).join(&entry.path);
        let file = File::open(&ct_path).map_err(io_err(&ct_path))?;
        let found_size = file.metadata().map_err(io_err(&ct_path))?.len();
        if found_size != entry.ciphertext_size {
            return Err(ImageError::Digest {
                file: ct_path,
                what: "size",
                expected: entry.ciphertext_size.to_string(),
                found: found_size.to_string(),
            });
        }
        // The ciphertext SHA-256 in the manifest is not checked here: the manifest is not
        // authenticated, so the digest adds nothing to the AEAD, which already authenticates
        // every segment, its position and the end of the stream. Skipping it doubles the
        // throughput of opening (SHA-256 runs at ~0.7 GB/s on the benchmark machine, the
        // AEAD at ~2.3 GB/s; see BENCHMARKS.md). [`Image::verify_digests`] checks it without
        // the key.
        let ad = associated_data(dataset_id, &entry.path);
        Ok(OpenReader::new(
            key,
            &ad,
            BufReader::with_capacity(SEGMENT_SIZE, file),
        ))
    }

    /// The error of a file whose decryption failed with `source` (naming its ciphertext file).
    pub fn file_error(&self, entry: &FileEntry, source: StreamError) -> ImageError {
        ImageError::Stream {
            file: self.dir.join(DATA_DIR).join(&entry.path),
            source,
        }
    }

    /// Checks every ciphertext file's size and SHA-256 against the manifest, without the key
    /// (for storage and transfer checks; decryption does not need it).
    ///
    /// # Errors
    /// [`ImageError::Digest`] naming the file; [`ImageError::Io`].
    pub fn verify_digests(&self) -> Result<(), ImageError> {
        for entry in &self.manifest.files {
            check_relative_path(&entry.path)?;
            let ct_path = self.dir.join(DATA_DIR).join(&entry.path);
            let mut hr = HashingReader {
                inner: BufReader::with_capacity(
                    SEGMENT_SIZE,
                    File::open(&ct_path).map_err(io_err(&ct_path))?,
                ),
                hash: Sha256::new(),
            };
            let n = io::copy(&mut hr, &mut io::sink()).map_err(io_err(&ct_path))?;
            let digest = hex::encode(hr.hash.finish());
            if n != entry.ciphertext_size {
                return Err(ImageError::Digest {
                    file: ct_path,
                    what: "size",
                    expected: entry.ciphertext_size.to_string(),
                    found: n.to_string(),
                });
            }
            if digest != entry.ciphertext_sha256 {
                return Err(ImageError::Digest {
                    file: ct_path,
                    what: "sha256",
                    expected: entry.ciphertext_sha256.clone(),
                    found: digest,
                });
            }
        }
        Ok(())
    }

    /// Decrypts every file into `out_dir` (which must not exist), for the data owner. Written
    /// to a temporary folder first and renamed, so a failure leaves nothing.
    ///
    /// # Errors
    /// As [`Image::read_file`]; [`ImageError::Exists`].
    pub fn extract_to(
        &self,
        out_dir: &Path,
        dataset_id: &str,
        key: &DatasetKey,
    ) -> Result<(), ImageError> {
        if out_dir.exists() {
            return Err(ImageError::Exists(out_dir.to_path_buf()));
        }
        let tmp = out_dir.with_file_name(format!(
            ".{}.tmp-{}",
            out_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            std::process::id()
        ));
        let result = (|| {
            for entry in &self.manifest.files {
                let dest = tmp.join(&entry.path);
                if let Some(d) = dest.parent() {
                    fs::create_dir_all(d).map_err(io_err(d))?;
                }
                let mut w = BufWriter::new(File::create(&dest).map_err(io_err(&dest))?);
                self.stream_file(entry, dataset_id, key, |c| {
                    w.write_all(c).map_err(io_err(&dest))
                })?;
                w.flush().map_err(io_err(&dest))?;
            }
            fs::rename(&tmp, out_dir).map_err(io_err(out_dir))
        })();
        if result.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        result
    }
}

/// Best-effort name of the JSON field a serde error is about (`unknown field `x``, `missing
/// field `y``), else `<document>`.
fn json_error_field(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    for marker in ["unknown field `", "missing field `"] {
        if let Some(rest) = msg.split(marker).nth(1)
            && let Some(name) = rest.split('`').next()
        {
            return name.to_string();
        }
    }
    format!("<document> (line {}, column {})", e.line(), e.column())
}
