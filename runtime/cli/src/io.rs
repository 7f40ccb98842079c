//! File helpers shared by the subcommands: key files, JSON, contracts, atomic writes.

use std::path::Path;

use anyhow::{Context, Result, bail};
use ccr_images::DatasetKey;
use ccr_policy::Contract;
use ccr_policy::sign::PrivateKey;
use serde_json::Value;
use zeroize::Zeroizing;

pub(crate) fn read_key(path: &Path) -> Result<DatasetKey> {
    let bytes = Zeroizing::new(
        std::fs::read(path).with_context(|| format!("key file {}", path.display()))?,
    );
    DatasetKey::from_slice(&bytes).with_context(|| format!("key file {}", path.display()))
}

/// Writes `data` to `path` through a temporary name and a rename; `private` sets mode 0600.
pub(crate) fn write_atomic(path: &Path, data: &[u8], private: bool) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    std::fs::write(&tmp, data).with_context(|| format!("writing {}", tmp.display()))?;
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = private;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

pub(crate) fn write_new_private(path: &Path, data: &[u8]) -> Result<()> {
    if path.exists() {
        bail!("{}: already exists, refusing to overwrite", path.display());
    }
    write_atomic(path, data, true)
}

pub(crate) fn cloud_client(
    service: &str,
    ca: Option<&Path>,
) -> Result<ccr_keybroker::cloud_http::CloudClient> {
    let roots = match ca {
        None => None,
        Some(p) => {
            let b = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            Some(
                ccr_keybroker::cloud_http::roots_from_pem(&b, "--cloud-ca")
                    .with_context(|| p.display().to_string())?,
            )
        }
    };
    Ok(ccr_keybroker::cloud_http::CloudClient::new(
        service,
        ccr_keybroker::cloud_http::RetryPolicy::default(),
        roots.as_deref(),
    ))
}

pub(crate) fn read_json(path: &Path) -> Result<Value> {
    let b = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&b).with_context(|| format!("{}: not JSON", path.display()))
}

pub(crate) fn load_contract(path: &Path) -> Result<Contract> {
    let b = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Contract::from_json(&b).with_context(|| format!("contract {}", path.display()))
}

pub(crate) fn private_key(path: &Path) -> Result<PrivateKey> {
    let pem = Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("key file {}", path.display()))?,
    );
    PrivateKey::from_pkcs8_pem(&pem).with_context(|| format!("key file {}", path.display()))
}

/// Decrypts every file of `img` (an image of `id`) into the new folder `out`, and says so.
pub(crate) fn extract(
    img: &ccr_images::Image,
    id: &str,
    key: &DatasetKey,
    out: &Path,
) -> Result<()> {
    img.extract_to(out, id, key)?;
    println!(
        "opened {} file(s) into {}",
        img.manifest().files.len(),
        out.display()
    );
    Ok(())
}
