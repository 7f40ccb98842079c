//! A dataset in a LUKS2 image, as DEPA's `generatefs.sh` makes it (aes-xts, ext4 inside), read
//! in user space ([`ccr_images::luks2`]): no root, no device-mapper, no mount. The image file is
//! in the dataset's folder under the name the contract's `url` ends with (DEPA: `data.img`), or
//! is that folder path itself; its keyslot opens with the released 32-byte key file; the
//! pipeline's `file` streams out of the ext4 file system. With the contract's `imageSha256` and
//! `imageSize`, every byte read is checked against them and nothing read is handed on before
//! the whole image matched ([`Luks2Dataset::finish`]).

use std::io::Read;
use std::path::{Path, PathBuf};

use ccr_images::luks2::files::{FileInfo, Files};
use ccr_images::luks2::{ImagePin, Luks2Error, Luks2Image, PinCheck};
use ccr_images::{DatasetKey, ImageError};
use ccr_policy::contract::Dataset;
use tracing::{info, warn};
use zeroize::Zeroizing;

use crate::job::JobError;

/// The image file of a LUKS2 dataset whose folder (or file) is `dir`.
pub fn image_path(dir: &Path, dataset: &Dataset) -> PathBuf {
    if dir.is_file() {
        dir.to_path_buf()
    } else {
        dir.join(dataset.image_file_name())
    }
}

/// An opened LUKS2 dataset image: its ext4 files and the pin's verdict.
pub struct Luks2Dataset {
    id: String,
    path: PathBuf,
    files: Files,
    pin: Option<PinCheck>,
}

impl Luks2Dataset {
    /// Opens dataset `dataset`'s image in `dir` with its released key file.
    ///
    /// # Errors
    /// [`JobError::Image`] naming the dataset and image: not LUKS2, LUKS1, both headers
    /// damaged, the key opens no keyslot, an unsupported cipher, no ext4 inside, or (pinned)
    /// a size that is not the pinned one.
    pub fn open(dir: &Path, dataset: &Dataset, key: &DatasetKey) -> Result<Self, JobError> {
        let pin = dataset
            .image_pin()
            .map(|(sha256, size)| ImagePin { sha256, size });
        Self::open_file(&dataset.id, image_path(dir, dataset), pin, key)
    }

    /// Opens the LUKS2 image file `path` of `id` (a dataset id, or `base model`) with its
    /// released key file, checked against `pin` when given.
    ///
    /// # Errors
    /// As [`Luks2Dataset::open`].
    pub fn open_file(
        id: &str,
        path: PathBuf,
        pin: Option<ImagePin>,
        key: &DatasetKey,
    ) -> Result<Self, JobError> {
        let err = |source| luks2_error(id, &path, source);
        let img = Luks2Image::open_pinned(&path, pin.as_ref()).map_err(err)?;
        if let Some(why) = &img.primary_damaged {
            warn!(dataset = %id, image = %path.display(), reason = %why, "LUKS2 primary header damaged: the secondary copy is used");
        }
        if pin.is_none() {
            warn!(dataset = %id, image = %path.display(), "LUKS2 image not pinned: aes-xts cannot detect swapped or replayed sectors (the contract's imageSha256 and imageSize pin it)");
        }
        let seg = img.header.metadata.segments.values().next();
        info!(
            dataset = %id,
            image = %path.display(),
            header = img.header.which,
            cipher = seg.map(|s| s.encryption.as_str()).unwrap_or(""),
            sector_size = seg.map(|s| s.sector_size).unwrap_or(0),
            pinned = pin.is_some(),
            "LUKS2 image opened"
        );
        let volume = img.unlock(key.as_bytes()).map_err(err)?;
        let pin = volume.pin_check();
        let files = match Files::load(volume) {
            Ok(f) => f,
            // A changed image shows first as a bad file system: the pin's verdict says why.
            Err(e) => return Err(err(pin.and_then(|p| p.wait().err()).unwrap_or(e))),
        };
        Ok(Self {
            id: id.to_string(),
            path,
            files,
            pin,
        })
    }

    fn error(&self, source: Luks2Error) -> JobError {
        luks2_error(&self.id, &self.path, source)
    }

    /// Opens regular file `path` (relative to the image's root) as a stream.
    ///
    /// # Errors
    /// [`JobError::Image`]: missing, a symlink or special file, a path leaving the root.
    pub fn stream(&self, path: &str) -> Result<impl Read + use<>, JobError> {
        self.files.open(path).map_err(|e| self.error(e))
    }

    /// The whole plaintext of file `path`, in memory (zeroized on drop; allocated once at the
    /// file's size so that no partial copy is left behind by growth).
    ///
    /// # Errors
    /// As [`Luks2Dataset::stream`], and a failed read.
    pub fn read(&self, path: &str) -> Result<Zeroizing<Vec<u8>>, JobError> {
        let mut f = self.files.open(path).map_err(|e| self.error(e))?;
        // The size comes from the image's inode: allocate it fallibly, never panic on it.
        let size = f.metadata().len();
        let mut buf = Zeroizing::new(Vec::new());
        usize::try_from(size)
            .ok()
            .and_then(|n| buf.try_reserve_exact(n).ok().map(|()| n))
            .map(|n| buf.resize(n, 0))
            .ok_or_else(|| {
                self.error(Luks2Error::Ext4(format!(
                    "`{path}`: {size} bytes do not fit in memory"
                )))
            })?;
        f.read_exact(&mut buf)
            .map_err(|e| self.stream_error(path, &e))?;
        Ok(buf)
    }

    /// A failed read of file `path` as the image error it is (exit 5, naming the image and
    /// file).
    pub fn stream_error(&self, path: &str, e: &std::io::Error) -> JobError {
        self.error(Luks2Error::Ext4(format!("`{path}`: {e}")))
    }

    /// Every regular file under `dir` (relative; empty for the root), sorted by path.
    ///
    /// # Errors
    /// [`JobError::Image`] for a symlink, device file, FIFO or socket below `dir`.
    pub fn list(&self, dir: &str) -> Result<Vec<FileInfo>, JobError> {
        self.files.list(dir).map_err(|e| self.error(e))
    }

    /// Waits for the pin's verdict and gives `result` only if the whole image matched: a
    /// mismatch is the error (it also explains any read that failed on the way).
    ///
    /// # Errors
    /// [`JobError::Image`] naming both digests, else `result`'s error.
    pub fn finish<T>(self, result: Result<T, JobError>) -> Result<T, JobError> {
        if let Some(p) = &self.pin {
            p.wait().map_err(|e| self.error(e))?;
            info!(dataset = %self.id, image = %self.path.display(), "LUKS2 image matches the contract's imageSha256");
        }
        result
    }
}

fn luks2_error(dataset: &str, path: &Path, source: Luks2Error) -> JobError {
    JobError::Image {
        dataset: dataset.to_string(),
        source: ImageError::Luks2 {
            path: path.to_path_buf(),
            source,
        },
    }
}
