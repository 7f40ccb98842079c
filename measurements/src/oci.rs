//! A deterministic OCI image layout for `ccr-init` (OCI Image Format Specification 1.1:
//! image-layout.md, manifest.md, config.md), built without a container engine, and the digests
//! an auditor compares with a deployment.
//!
//! Layout written to a new folder:
//! - `oci-layout`: `{"imageLayoutVersion":"1.0.0"}`;
//! - `blobs/sha256/<hex>`: the layer (an uncompressed tar, media type
//!   `application/vnd.oci.image.layer.v1.tar`), the config and the manifest;
//! - `index.json`: the manifest with `org.opencontainers.image.ref.name` = the tag.
//!
//! The layer holds `usr/`, `usr/local/`, `usr/local/bin/` and `usr/local/bin/ccr-init` in that
//! order, as POSIX ustar entries with uid/gid 0, empty user and group names, mode 0755, and mtime
//! `SOURCE_DATE_EPOCH` (the caller's, 0 by default); the config's `created` is the same time;
//! JSON is serialised with sorted keys. Same binary and time → same bytes → same digests.

use std::path::Path;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::MeasureError;

/// Media type of the layer.
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";
/// Media type of the config.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// Media type of the manifest.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// Where the binary sits in the image.
pub const BINARY_PATH: &str = "usr/local/bin/ccr-init";

/// The digests of a built image (`sha256:<hex>` each).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImageDigests {
    /// The manifest's digest: what a deployment references (`image@sha256:...`).
    pub manifest: String,
    /// The config's digest (the image id).
    pub config: String,
    /// The layer's digest (= its diff id: the layer is uncompressed).
    pub layer: String,
    /// SHA-256 of the `ccr-init` binary in the layer.
    pub binary_sha256: String,
    /// SHA-384 of the binary (what the sim platform measures).
    pub binary_sha384: String,
}

fn digest(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

fn io(path: &Path, e: impl std::fmt::Display) -> MeasureError {
    MeasureError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// The layer tar for `binary` with mtime `mtime` (Unix seconds).
///
/// # Errors
/// [`MeasureError::Io`] from the tar writer.
pub fn layer(binary: &[u8], mtime: u64) -> Result<Vec<u8>, MeasureError> {
    let mut b = tar::Builder::new(Vec::new());
    let entry = |path: &str, size: u64, dir: bool| -> Result<tar::Header, MeasureError> {
        let mut h = tar::Header::new_ustar();
        h.set_path(path).map_err(|e| io(Path::new(path), e))?;
        h.set_size(size);
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(mtime);
        h.set_username("").map_err(|e| io(Path::new(path), e))?;
        h.set_groupname("").map_err(|e| io(Path::new(path), e))?;
        h.set_entry_type(if dir {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        });
        h.set_cksum();
        Ok(h)
    };
    for d in ["usr/", "usr/local/", "usr/local/bin/"] {
        b.append(&entry(d, 0, true)?, std::io::empty())
            .map_err(|e| io(Path::new(d), e))?;
    }
    b.append(&entry(BINARY_PATH, binary.len() as u64, false)?, binary)
        .map_err(|e| io(Path::new(BINARY_PATH), e))?;
    b.into_inner().map_err(|e| io(Path::new("layer"), e))
}

fn rfc3339(secs: u64) -> String {
    // Days to civil date (Howard Hinnant's algorithm), for `created`.
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Writes the image layout for `binary` into the new folder `out` (through a temporary name,
/// renamed at the end) and returns its digests.
///
/// # Errors
/// [`MeasureError::Io`] when `out` exists or a write fails; nothing is left at `out` then.
pub fn build(
    binary: &Path,
    out: &Path,
    tag: &str,
    mtime: u64,
) -> Result<ImageDigests, MeasureError> {
    if out.exists() {
        return Err(io(out, "already exists, refusing to overwrite"));
    }
    let bin = std::fs::read(binary).map_err(|e| io(binary, e))?;
    let layer = layer(&bin, mtime)?;
    let layer_digest = digest(&layer);
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "created": rfc3339(mtime),
        "config": {"Entrypoint": [format!("/{BINARY_PATH}")], "Env": ["PATH=/usr/local/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }))
    .unwrap_or_default();
    let config_digest = digest(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": LAYER_MEDIA_TYPE, "digest": layer_digest, "size": layer.len()}],
    }))
    .unwrap_or_default();
    let manifest_digest = digest(&manifest);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": MANIFEST_MEDIA_TYPE, "digest": manifest_digest,
            "size": manifest.len(), "annotations": {"org.opencontainers.image.ref.name": tag}}],
    }))
    .unwrap_or_default();
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = out.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let write = || -> Result<(), MeasureError> {
        let blobs = tmp.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).map_err(|e| io(&blobs, e))?;
        for (d, bytes) in [
            (&layer_digest, &layer),
            (&config_digest, &config),
            (&manifest_digest, &manifest),
        ] {
            let p = blobs.join(d.trim_start_matches("sha256:"));
            std::fs::write(&p, bytes).map_err(|e| io(&p, e))?;
        }
        let p = tmp.join("oci-layout");
        std::fs::write(&p, br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(|e| io(&p, e))?;
        let p = tmp.join("index.json");
        std::fs::write(&p, &index).map_err(|e| io(&p, e))?;
        std::fs::rename(&tmp, out).map_err(|e| io(out, e))
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    Ok(ImageDigests {
        manifest: manifest_digest,
        config: config_digest,
        layer: layer_digest,
        binary_sha256: hex::encode(Sha256::digest(&bin)),
        binary_sha384: hex::encode(sha2::Sha384::digest(&bin)),
    })
}

/// Reads an image layout and recomputes its digests: every blob's SHA-256 must match its name,
/// the index must name one manifest, the manifest one config and one layer, and the layer must
/// hold `usr/local/bin/ccr-init`.
///
/// # Errors
/// [`MeasureError::Format`] naming the file or field that does not hold; [`MeasureError::Io`].
pub fn inspect(dir: &Path) -> Result<ImageDigests, MeasureError> {
    let bad = |field: String, reason: String| MeasureError::Format {
        input: "OCI image layout",
        field,
        reason,
    };
    let read_json = |p: &Path| -> Result<Value, MeasureError> {
        let b = std::fs::read(p).map_err(|e| io(p, e))?;
        serde_json::from_slice(&b).map_err(|e| bad(p.display().to_string(), e.to_string()))
    };
    let blob = |d: &str| -> Result<Vec<u8>, MeasureError> {
        let hexd = d
            .strip_prefix("sha256:")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| bad("digest".into(), format!("`{d}` is not sha256:<64 hex>")))?;
        let p = dir.join("blobs/sha256").join(hexd);
        let b = std::fs::read(&p).map_err(|e| io(&p, e))?;
        if digest(&b) != d {
            return Err(bad(
                p.display().to_string(),
                format!("content hashes to {}, not its name", digest(&b)),
            ));
        }
        Ok(b)
    };
    let index = read_json(&dir.join("index.json"))?;
    let m = index["manifests"]
        .as_array()
        .filter(|a| a.len() == 1)
        .ok_or_else(|| {
            bad(
                "index.json manifests".into(),
                "expected one manifest".into(),
            )
        })?;
    let manifest_digest = m[0]["digest"].as_str().unwrap_or("").to_string();
    let manifest: Value = serde_json::from_slice(&blob(&manifest_digest)?)
        .map_err(|e| bad("manifest".into(), e.to_string()))?;
    let config_digest = manifest["config"]["digest"]
        .as_str()
        .unwrap_or("")
        .to_string();
    blob(&config_digest)?;
    let layers = manifest["layers"]
        .as_array()
        .filter(|a| a.len() == 1)
        .ok_or_else(|| bad("manifest layers".into(), "expected one layer".into()))?;
    let layer_digest = layers[0]["digest"].as_str().unwrap_or("").to_string();
    let layer = blob(&layer_digest)?;
    let mut ar = tar::Archive::new(&layer[..]);
    let mut bin = None;
    for e in ar
        .entries()
        .map_err(|e| bad("layer".into(), e.to_string()))?
    {
        let mut e = e.map_err(|e| bad("layer".into(), e.to_string()))?;
        let path = e
            .path()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        if path == BINARY_PATH {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut v)
                .map_err(|e| bad("layer".into(), e.to_string()))?;
            bin = Some(v);
        }
    }
    let bin = bin.ok_or_else(|| bad("layer".into(), format!("no {BINARY_PATH}")))?;
    Ok(ImageDigests {
        manifest: manifest_digest,
        config: config_digest,
        layer: layer_digest,
        binary_sha256: hex::encode(Sha256::digest(&bin)),
        binary_sha384: hex::encode(sha2::Sha384::digest(&bin)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_is_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn two_builds_give_the_same_digests_and_inspect_agrees() {
        let d = tempfile::tempdir().unwrap();
        let bin = d.path().join("ccr-init");
        std::fs::write(&bin, b"\x7fELF pretend binary").unwrap();
        let a = build(&bin, &d.path().join("a"), "latest", 0).unwrap();
        let b = build(&bin, &d.path().join("b"), "latest", 0).unwrap();
        assert_eq!(a, b);
        assert_eq!(inspect(&d.path().join("a")).unwrap(), a);
        // Another time or binary: another manifest.
        let c = build(&bin, &d.path().join("c"), "latest", 1).unwrap();
        assert_ne!(c.manifest, a.manifest);
        assert!(
            build(&bin, &d.path().join("a"), "latest", 0).is_err(),
            "no overwrite"
        );
        // A tampered blob is named.
        let p = d
            .path()
            .join("a/blobs/sha256")
            .join(a.layer.trim_start_matches("sha256:"));
        let mut l = std::fs::read(&p).unwrap();
        l[600] ^= 1;
        std::fs::write(&p, l).unwrap();
        let e = inspect(&d.path().join("a")).unwrap_err().to_string();
        assert!(e.contains("not its name"), "{e}");
    }
}
