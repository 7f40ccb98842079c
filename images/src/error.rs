//! Errors of the sealed-image format.

use std::io;
use std::path::PathBuf;

/// An error of the streaming AEAD itself (one ciphertext stream).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The key is not 32 bytes long (AES256_GCM_HKDF_1MB takes a 32-byte key).
    #[error("key is {got} bytes, expected 32")]
    KeyLength {
        /// Bytes given.
        got: usize,
    },
    /// The stream ended inside the 40-byte header: the file is truncated or not a ciphertext.
    #[error("ciphertext header truncated: {got} of 40 bytes")]
    TruncatedHeader {
        /// Bytes present.
        got: usize,
    },
    /// The header's first byte is not 40: not an AES256_GCM_HKDF ciphertext, or another key size.
    #[error("ciphertext header length byte is {got}, expected {want}")]
    BadHeaderLength {
        /// The byte found.
        got: u8,
        /// The byte expected.
        want: u8,
    },
    /// A segment is shorter than a tag: the file is truncated.
    #[error("segment {index} truncated: {got} bytes, shorter than the 16-byte tag")]
    TruncatedSegment {
        /// Zero-based segment index.
        index: u32,
        /// Bytes present.
        got: usize,
    },
    /// A segment failed authentication: a flipped byte, the wrong key, the wrong associated data
    /// (file renamed or moved to another dataset), reordered segments, or a truncation at a
    /// segment boundary.
    #[error(
        "segment {index} failed authentication (wrong key, renamed or moved file, or tampered ciphertext)"
    )]
    Authentication {
        /// Zero-based segment index.
        index: u32,
    },
    /// More than 2^32 segments (4 PiB): the segment counter would wrap.
    #[error("stream has more than 2^32 segments")]
    TooManySegments,
    /// Reading the ciphertext failed.
    #[error("reading ciphertext: {0}")]
    Io(String),
}

impl StreamError {
    /// Wraps this error into an `io::Error` of kind `InvalidData`.
    pub fn into_io(self) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, self)
    }

    /// Recovers a `StreamError` from an `io::Error` made by [`StreamError::into_io`].
    pub fn from_io(e: &io::Error) -> Option<Self> {
        e.get_ref()?.downcast_ref::<StreamError>().cloned()
    }
}

/// An error of a sealed image (a folder with `manifest.json` and ciphertext files).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// `manifest.json` is malformed or inconsistent.
    #[error("{path}: manifest field `{field}`: {reason}")]
    Manifest {
        /// The manifest's path.
        path: PathBuf,
        /// The JSON field at fault.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The image belongs to another dataset than the one expected.
    #[error("{path}: image is for dataset `{found}`, expected `{expected}`")]
    DatasetMismatch {
        /// The manifest's path.
        path: PathBuf,
        /// Dataset id in the manifest.
        found: String,
        /// Dataset id expected by the caller (from the contract).
        expected: String,
    },
    /// A ciphertext file failed to decrypt.
    #[error("{file}: {source}")]
    Stream {
        /// The ciphertext file.
        file: PathBuf,
        /// What failed, with the segment index.
        #[source]
        source: StreamError,
    },
    /// A ciphertext file's size or SHA-256 differs from the manifest.
    #[error(
        "{file}: ciphertext {what} differs from the manifest (manifest {expected}, file {found})"
    )]
    Digest {
        /// The ciphertext file.
        file: PathBuf,
        /// `size` or `sha256`.
        what: &'static str,
        /// The manifest's value.
        expected: String,
        /// The file's value.
        found: String,
    },
    /// The output path exists already; ccr never overwrites an image or output.
    #[error("{0}: already exists, refusing to overwrite")]
    Exists(PathBuf),
    /// A path is not a plain relative path inside the image (absolute, `..`, or not UTF-8).
    #[error("{0}: not a plain relative path inside the image")]
    UnsafePath(String),
    /// A LUKS2 image (DEPA's `generatefs.sh`) cannot be opened or read, or is not the pinned one.
    #[error("{path}: {source}")]
    Luks2 {
        /// The image file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: crate::luks2::Luks2Error,
    },
}
