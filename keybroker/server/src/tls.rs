//! The broker's own files in its store folder: the self-signed TLS certificate that clients pin
//! (`tls.crt`, `tls.key`) and the admin token (`admin.token`), both written mode 0600 through a
//! temporary name.

use std::path::Path;

use crate::error::ServerError;
use rand::RngCore;
use zeroize::Zeroizing;

/// Loads or makes the TLS certificate (self-signed, SAN `localhost` and `127.0.0.1`) and
/// returns the certificate DER, key DER.
pub(crate) fn load_or_make_tls(dir: &Path) -> Result<(Vec<u8>, Zeroizing<Vec<u8>>), ServerError> {
    let crt = dir.join("tls.crt");
    let key = dir.join("tls.key");
    if crt.exists() && key.exists() {
        let c = std::fs::read(&crt).map_err(ServerError::io(&crt))?;
        let k = Zeroizing::new(std::fs::read(&key).map_err(ServerError::io(&key))?);
        return Ok((c, k));
    }
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .map_err(ServerError::Certificate)?;
    let c = ck.cert.der().to_vec();
    let k = Zeroizing::new(ck.key_pair.serialize_der());
    write_private(&key, &k)?;
    std::fs::write(&crt, &c).map_err(ServerError::io(&crt))?;
    Ok((c, k))
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), ServerError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data).map_err(ServerError::io(&tmp))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
            .map_err(ServerError::io(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(ServerError::io(path))
}

/// Reads the admin token from the store folder (`admin.token`), making one on first use.
///
/// # Errors
/// [`ServerError::Io`].
pub fn admin_token(dir: &Path) -> Result<Zeroizing<String>, ServerError> {
    let p = dir.join("admin.token");
    if let Ok(t) = std::fs::read_to_string(&p) {
        return Ok(Zeroizing::new(t.trim().to_string()));
    }
    std::fs::create_dir_all(dir).map_err(ServerError::io(dir))?;
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    let t = Zeroizing::new(hex::encode(b));
    write_private(&p, t.as_bytes())?;
    Ok(t)
}
