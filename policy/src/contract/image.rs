//! Encrypted images the contract names beyond ccr's sealed ones (ccr additions): the pin of a
//! LUKS2 image (`imageSha256`, `imageSize`: the file's SHA-256 and size, as `sha256sum` and
//! `stat` print them) on a dataset or on the consumer's `baseModelImage`, and the image file's
//! name from its `url`.

use serde::{Deserialize, Serialize};

use super::keys::{ImageFormat, KeyRef};

/// The consumer's base model in a LUKS2 image (`baseModelImage`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseModelImage {
    /// Where the image is published (informative; its last segment names the image file,
    /// default `model.img`).
    #[serde(default)]
    pub url: String,
    /// Where its key file is released from (`properties.image_format` must be `luks2`).
    pub key: KeyRef,
    /// The image file's SHA-256, 64 lowercase hex (with `imageSize`), as for a dataset.
    #[serde(
        default,
        rename = "imageSha256",
        skip_serializing_if = "Option::is_none"
    )]
    pub image_sha256: Option<String>,
    /// The image file's size in bytes (with `imageSha256`).
    #[serde(default, rename = "imageSize", skip_serializing_if = "Option::is_none")]
    pub image_size: Option<u64>,
}

impl BaseModelImage {
    /// The pinned image digest and size, when given.
    pub fn image_pin(&self) -> Option<([u8; 32], u64)> {
        pin_of(self.image_sha256.as_deref(), self.image_size)
    }

    /// The image file's name: the last segment of `url`, else `model.img`.
    pub fn image_file_name(&self) -> &str {
        last_segment(&self.url).unwrap_or("model.img")
    }
}

/// The last segment of a URL or path, when it names a file.
pub(super) fn last_segment(url: &str) -> Option<&str> {
    match url.rsplit('/').next() {
        Some(n) if !n.is_empty() && n != "." && n != ".." && !url.ends_with('/') => Some(n),
        _ => None,
    }
}

/// A pin's digest and size, when both are given and the digest is 64 hex digits.
pub(super) fn pin_of(sha256: Option<&str>, size: Option<u64>) -> Option<([u8; 32], u64)> {
    let mut d = [0u8; 32];
    hex::decode_to_slice(sha256?, &mut d).ok()?;
    Some((d, size?))
}

/// The image pin's fields: both or neither, a well-formed digest, on a LUKS2 image only (a ccr
/// sealed image authenticates every segment itself). Errors name the field.
pub(super) fn check_image_pin(
    sha256: Option<&str>,
    size: Option<u64>,
    format: ImageFormat,
) -> Result<(), (&'static str, String)> {
    match (sha256, size) {
        (None, None) => Ok(()),
        (Some(_), None) => Err(("imageSize", "missing (imageSha256 is given)".into())),
        (None, Some(_)) => Err(("imageSha256", "missing (imageSize is given)".into())),
        (Some(h), Some(_)) => {
            if h.len() != 64
                || !h
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                Err((
                    "imageSha256",
                    format!("`{h}` is not 64 lowercase hex digits"),
                ))
            } else if format != ImageFormat::Luks2 {
                Err((
                    "imageSha256",
                    "pins a LUKS2 image; this key opens a ccr sealed image (set key.properties.image_format to luks2)".into(),
                ))
            } else {
                Ok(())
            }
        }
    }
}
