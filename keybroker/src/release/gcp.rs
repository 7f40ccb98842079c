//! Keys of type `gcp`: GCP Cloud KMS. A Confidential Space token from the launcher (audience
//! STS); one federated token per workload identity provider; Cloud KMS decrypts the dataset
//! image's [`WRAPPED_DEK_FILE`] (the dataset id as additional authenticated data).

use std::collections::BTreeMap;
use std::path::Path;

use ccr_attest::attester::Attester;
use ccr_images::DatasetKey;
use tracing::info;
use zeroize::Zeroizing;

use super::cloud::{CloudOptions, url};
use super::{KeyFor, KeyRequest, ReleaseError, ReleaseRequest};
use crate::error::BrokerError;
use crate::gcp;

/// The file beside a dataset image that holds its KMS-wrapped DEK.
pub const WRAPPED_DEK_FILE: &str = "wrapped_dek.json";

/// The wrapped DEK's file in the image folder: [`WRAPPED_DEK_FILE`], or for share `i` of a
/// threshold key `wrapped_dek.share-<i>.json`.
pub fn wrapped_file(what: &KeyFor) -> String {
    match what {
        KeyFor::Share(_, i) => format!("wrapped_dek.share-{i}.json"),
        _ => WRAPPED_DEK_FILE.to_string(),
    }
}

/// The dataset id a base model image's wrapped DEK is bound to (`ccr keys wrap --gcp
/// --dataset base-model`).
pub const BASE_MODEL_ID: &str = "base-model";

/// Releases `gcp` keys; `req` gives each dataset id's image folder and the base model's.
///
/// # Errors
/// [`ReleaseError::Attest`] when the launcher gives no token; [`ReleaseError::Input`] for a
/// missing or malformed `wrapped_dek.json`; [`ReleaseError::Key`] naming the key and the
/// service.
pub(crate) fn release(
    opts: &CloudOptions,
    req: &ReleaseRequest<'_>,
    items: &[KeyRequest],
) -> Result<Vec<(KeyFor, DatasetKey)>, ReleaseError> {
    let datasets = req.datasets;
    let client = opts.client("GCP");
    let launcher =
        ccr_attest::attester::CsAttester::new(opts.cs_socket.clone(), gcp::STS_AUDIENCE.into());
    let mut nonce = [0u8; 64];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
    let token = launcher
        .evidence(&nonce)
        .map_err(|source| ReleaseError::Attest {
            what: "Confidential Space token".into(),
            source,
        })?;
    let token = Zeroizing::new(token["token"].as_str().unwrap_or("").to_string());
    let mut federated: BTreeMap<String, Zeroizing<String>> = BTreeMap::new();
    let mut out = Vec::new();
    for item in items {
        let (key, r) = (&item.key, item.refused());
        let (kid, what) = (&key.properties.kid, item.what.to_string());
        let provider = &key.properties.authority.endpoint;
        if !federated.contains_key(provider) {
            let t = gcp::sts_exchange(&client, &opts.sts, provider, &token).map_err(&r)?;
            info!(provider = %provider, "federated token from STS");
            federated.insert(provider.clone(), t);
        }
        let dir = match &item.what {
            KeyFor::Dataset(id) | KeyFor::Share(id, _) => datasets
                .iter()
                .find(|d| &d.id == id)
                .map(|d| d.image_dir.clone()),
            KeyFor::BaseModel => req.base_model_dir.map(Into::into),
            KeyFor::Output => None,
        }
        .ok_or_else(|| ReleaseError::KeyRef {
            kid: kid.clone(),
            reason: format!("{what}: a gcp key needs the dataset's image folder"),
        })?;
        let id = match &item.what {
            KeyFor::Dataset(id) | KeyFor::Share(id, _) => id.as_str(),
            KeyFor::BaseModel => BASE_MODEL_ID,
            KeyFor::Output => "",
        };
        let path = dir.join(wrapped_file(&item.what));
        let w: gcp::WrappedDek = read_wrapped(&path)?;
        if &w.kms_key != kid || w.dataset != id {
            return Err(ReleaseError::Input {
                path,
                reason: format!(
                    "wraps a DEK for dataset `{}` under `{}`, the contract says `{id}` under `{kid}`",
                    w.dataset, w.kms_key
                ),
            });
        }
        let kms = if key.properties.endpoint.is_empty() {
            opts.kms.clone()
        } else {
            url(&key.properties.endpoint)
        };
        let k = w.unwrap(&client, &kms, &federated[provider]).map_err(&r)?;
        let dek =
            DatasetKey::from_slice(&k[..]).map_err(|e| r(BrokerError::Crypto(e.to_string())))?;
        info!(key = %kid, what = %what, "DEK released by Cloud KMS");
        out.push((item.what.clone(), dek));
    }
    Ok(out)
}

fn read_wrapped(path: &Path) -> Result<gcp::WrappedDek, ReleaseError> {
    let err = |reason: String| ReleaseError::Input {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| err(e.to_string()))
}
