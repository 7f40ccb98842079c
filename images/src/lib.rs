//! # ccr-images: sealed images of datasets and model outputs
//!
//! A sealed image is a folder with `manifest.json` and one ciphertext per file (see [`image`]).
//! Each ciphertext is Tink's streaming AEAD, AES-GCM-HKDF with HKDF-SHA256, a 32-byte key and
//! 1 MiB ciphertext segments (Tink key template `AES256_GCM_HKDF_1MB`, see [`stream`]), with
//! the associated data `<dataset id>/<relative path>`. A file sealed by Tink itself (Python,
//! Java, Go, C++) with the same raw key and associated data opens here, and the other way round.
//!
//! The streaming API ([`SealWriter`], [`OpenReader`]) holds one segment at a time; plaintext is
//! handed out only after its segment authenticated.
//!
//! This crate does not know where keys come from: callers pass a [`DatasetKey`].
//!
//! AES-GCM runs on `ring` (BoringSSL's assembly), not the `aes-gcm` crate: opening must reach
//! at least 70% of OpenSSL's AES-256-GCM throughput (see BENCHMARKS.md). `ring` does not zeroize
//! its expanded key schedule; the raw and HKDF-derived keys are zeroized.

#![forbid(unsafe_code)]

pub mod error;
pub mod image;
pub mod luks2;
pub mod stream;

pub use error::{ImageError, StreamError};
pub use image::{FileEntry, Image, ImageBuilder, Manifest, associated_data, seal_path};
pub use stream::{DatasetKey, OpenReader, SealWriter};
