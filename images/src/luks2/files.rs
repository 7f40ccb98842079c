//! The ext4 file system inside a LUKS2 volume, read-only, through `ext4-view` (extents,
//! 64-bit, htree directories, flex_bg and metadata checksums: what `mkfs.ext4` makes by
//! default), as a dataset image's files: regular files only, named by paths relative to the
//! root. A symlink, device file, FIFO or socket is refused (not followed), and so is a path
//! with `..` or `.` components.

use ext4_view::{Ext4, Metadata};

use super::{Luks2Error, Volume};

/// A regular file of the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// Path relative to the root, `/`-separated.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
}

/// The files of an opened volume.
pub struct Files {
    fs: Ext4,
}

impl std::fmt::Debug for Files {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Files").finish_non_exhaustive()
    }
}

fn ext4(e: impl std::fmt::Display) -> Luks2Error {
    Luks2Error::Ext4(e.to_string())
}

fn refused(path: &str, why: &str) -> Luks2Error {
    Luks2Error::Refused {
        path: path.to_string(),
        why: why.to_string(),
    }
}

/// `/`-rooted form of a relative path, refusing `..`, `.`, empty components and NUL.
fn absolute(path: &str) -> Result<String, Luks2Error> {
    let p = path.trim_matches('/');
    if p.is_empty() {
        return Ok("/".into());
    }
    if p.contains('\0') || p.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return Err(refused(
            path,
            "a path must stay under the image's root (no `..` or `.`)",
        ));
    }
    Ok(format!("/{p}"))
}

fn kind(m: &Metadata) -> &'static str {
    let t = m.file_type();
    if t.is_symlink() {
        "a symlink"
    } else if t.is_block_dev() || t.is_char_dev() {
        "a device file"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

impl Files {
    /// Reads the ext4 superblock and group descriptors of the volume.
    ///
    /// # Errors
    /// [`Luks2Error::Ext4`] when the volume holds no ext4 file system ext4-view reads (or a
    /// checksum fails: ext4's metadata checksums catch some tampering XTS cannot).
    pub fn load(v: Volume) -> Result<Files, Luks2Error> {
        Ok(Files {
            fs: Ext4::load(Box::new(v)).map_err(ext4)?,
        })
    }

    /// Every regular file under `dir` (relative; empty for the root), recursively, sorted by
    /// path (`lost+found` skipped).
    ///
    /// # Errors
    /// [`Luks2Error::Refused`] naming a symlink, device file, FIFO or socket below `dir`, or a
    /// bad `dir`; [`Luks2Error::Ext4`].
    pub fn list(&self, dir: &str) -> Result<Vec<FileInfo>, Luks2Error> {
        let root = absolute(dir)?;
        self.check_components(&root)?;
        let mut out = Vec::new();
        let mut todo = vec![root];
        while let Some(d) = todo.pop() {
            for e in self.fs.read_dir(d.as_str()).map_err(ext4)? {
                let e = e.map_err(ext4)?;
                let name = e
                    .file_name()
                    .as_str()
                    .map_err(|_| refused(&d, "a file name that is not UTF-8"))?
                    .to_string();
                if name == "." || name == ".." || (d == "/" && name == "lost+found") {
                    continue;
                }
                let path = format!("{}/{name}", d.trim_end_matches('/'));
                let m = self.fs.symlink_metadata(path.as_str()).map_err(ext4)?;
                let t = m.file_type();
                if t.is_dir() {
                    todo.push(path);
                } else if t.is_regular_file() {
                    out.push(FileInfo {
                        path: path.trim_start_matches('/').to_string(),
                        size: m.len(),
                    });
                } else {
                    return Err(refused(path.trim_start_matches('/'), kind(&m)));
                }
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Refuses a path any of whose components is a symlink (or not a directory before the
    /// last).
    fn check_components(&self, abs: &str) -> Result<(), Luks2Error> {
        let mut at = String::new();
        for c in abs.split('/').filter(|c| !c.is_empty()) {
            at.push('/');
            at.push_str(c);
            let m = self.fs.symlink_metadata(at.as_str()).map_err(ext4)?;
            if m.file_type().is_symlink() {
                return Err(refused(at.trim_start_matches('/'), "a symlink"));
            }
        }
        Ok(())
    }

    /// Opens the regular file `path` (relative) as a stream of its bytes.
    ///
    /// # Errors
    /// [`Luks2Error::Refused`] for a path through a symlink, a special file or `..`;
    /// [`Luks2Error::Ext4`] when it does not exist.
    pub fn open(&self, path: &str) -> Result<ext4_view::File, Luks2Error> {
        let abs = absolute(path)?;
        self.check_components(&abs)?;
        let m = self.fs.symlink_metadata(abs.as_str()).map_err(ext4)?;
        if !m.file_type().is_regular_file() {
            return Err(refused(path, kind(&m)));
        }
        self.fs.open(abs.as_str()).map_err(ext4)
    }
}
