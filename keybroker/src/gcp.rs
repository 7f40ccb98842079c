//! GCP: Confidential Space token → STS federated token → Cloud KMS decrypt of the wrapped DEK —
//! the client side, over [`crate::cloud_http`].
//!
//! Sources: Google Cloud STS REST `POST https://sts.googleapis.com/v1/token` (OAuth 2.0 token
//! exchange, RFC 8693, form-encoded: `grant_type`
//! `urn:ietf:params:oauth:grant-type:token-exchange`, `audience` = the workload identity pool
//! provider `//iam.googleapis.com/projects/{number}/locations/global/workloadIdentityPools/{pool}/providers/{provider}`,
//! `scope`, `requested_token_type`, `subject_token`, `subject_token_type`
//! `urn:ietf:params:oauth:token-type:jwt`; answer `{"access_token", "issued_token_type",
//! "token_type", "expires_in"}`); Cloud KMS REST v1 `cryptoKeys.encrypt` / `cryptoKeys.decrypt`
//! (`POST https://cloudkms.googleapis.com/v1/{name}:decrypt`, `{"ciphertext",
//! "additionalAuthenticatedData"}` base64 → `{"plaintext"}`); Confidential Space "Workload
//! identity pool provider attribute conditions" (`assertion.submods.container.image_digest`,
//! `assertion.swname`, `assertion.submods.confidential_space.support_attributes`).
//!
//! Envelope encryption as Tink's KMS envelope AEAD does it: the dataset is sealed with a DEK
//! (ccr's image format), and the DEK, encrypted by a Cloud KMS key (KEK) with the dataset id as
//! additional authenticated data, is stored beside the image ([`WrappedDek`]); only a workload
//! whose federated identity the KEK's IAM policy admits can have KMS decrypt it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::cloud_http::{CloudClient, CloudError};
use crate::error::BrokerError;

/// The public STS endpoint.
pub const STS_BASE: &str = "https://sts.googleapis.com";
/// The public Cloud KMS endpoint.
pub const KMS_BASE: &str = "https://cloudkms.googleapis.com";
/// The scope of federated tokens ccr asks for.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// The audience Confidential Space tokens for STS carry.
pub const STS_AUDIENCE: &str = "https://sts.googleapis.com";

fn cloud(e: CloudError) -> BrokerError {
    BrokerError::Cloud(e.to_string())
}

/// Exchanges a Confidential Space OIDC token for a federated access token through the
/// workload identity pool provider `provider` (its full resource name).
///
/// # Errors
/// [`BrokerError::Cloud`] with STS's `error` and `error_description` (`invalid_grant`,
/// `unauthorized_client` when the attribute condition rejects the token);
/// [`BrokerError::Protocol`] when the answer has no `access_token`.
pub fn sts_exchange(
    client: &CloudClient,
    sts_base: &str,
    provider: &str,
    subject_token: &str,
) -> Result<Zeroizing<String>, BrokerError> {
    let form = [
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ),
        ("audience", provider),
        ("scope", SCOPE),
        (
            "requested_token_type",
            "urn:ietf:params:oauth:token-type:access_token",
        ),
        ("subject_token", subject_token),
        ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
    ];
    let url = format!("{}/v1/token", sts_base.trim_end_matches('/'));
    let v = client
        .call("POST", &url, &[], None, Some(&form))
        .map_err(cloud)?;
    v.get("access_token")
        .and_then(Value::as_str)
        .map(|s| Zeroizing::new(s.to_string()))
        .ok_or_else(|| BrokerError::Protocol {
            field: "STS.access_token".into(),
            reason: "missing".into(),
        })
}

/// Cloud KMS `encrypt` with the key `key_name`
/// (`projects/*/locations/*/keyRings/*/cryptoKeys/*`): returns the ciphertext.
///
/// # Errors
/// [`BrokerError::Cloud`] with KMS's status (`PERMISSION_DENIED`, `NOT_FOUND`, ...).
pub fn kms_encrypt(
    client: &CloudClient,
    kms_base: &str,
    key_name: &str,
    bearer: &str,
    plaintext: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>, BrokerError> {
    let url = format!("{}/v1/{key_name}:encrypt", kms_base.trim_end_matches('/'));
    let body = json!({"plaintext": STANDARD.encode(plaintext), "additionalAuthenticatedData": STANDARD.encode(aad)});
    let v = client
        .call_bearer("POST", &url, bearer, &body)
        .map_err(cloud)?;
    v.get("ciphertext")
        .and_then(Value::as_str)
        .and_then(|c| STANDARD.decode(c).ok())
        .ok_or_else(|| BrokerError::Protocol {
            field: "KMS.encrypt.ciphertext".into(),
            reason: "missing or not base64".into(),
        })
}

/// Cloud KMS `decrypt`: returns the plaintext.
///
/// # Errors
/// [`BrokerError::Cloud`] with KMS's status (`PERMISSION_DENIED` when the federated identity
/// may not use the key, `INVALID_ARGUMENT` for a ciphertext or AAD that does not decrypt).
pub fn kms_decrypt(
    client: &CloudClient,
    kms_base: &str,
    key_name: &str,
    bearer: &str,
    ciphertext: &[u8],
    aad: &[u8],
) -> Result<Zeroizing<Vec<u8>>, BrokerError> {
    let url = format!("{}/v1/{key_name}:decrypt", kms_base.trim_end_matches('/'));
    let body = json!({"ciphertext": STANDARD.encode(ciphertext), "additionalAuthenticatedData": STANDARD.encode(aad)});
    let v = client
        .call_bearer("POST", &url, bearer, &body)
        .map_err(cloud)?;
    let b64 = Zeroizing::new(
        v.get("plaintext")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
    );
    STANDARD
        .decode(b64.as_bytes())
        .map(Zeroizing::new)
        .map_err(|_| BrokerError::Protocol {
            field: "KMS.decrypt.plaintext".into(),
            reason: "missing or not base64".into(),
        })
}

/// The wrapped DEK stored beside a dataset image (`wrapped_dek.json`):
/// `{"kms_key": "projects/…/cryptoKeys/…", "dataset": "<dataset id>", "ciphertext": base64}`,
/// where `ciphertext` is Cloud KMS's encryption of the 32-byte DEK with the dataset id as
/// additional authenticated data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrappedDek {
    /// The KEK's resource name.
    pub kms_key: String,
    /// The dataset id (the AAD).
    pub dataset: String,
    /// The KMS ciphertext, base64.
    pub ciphertext: String,
}

impl WrappedDek {
    /// Unwraps the DEK through KMS with a federated `bearer` token.
    ///
    /// # Errors
    /// As [`kms_decrypt`]; [`BrokerError::Crypto`] when the plaintext is not 32 bytes.
    pub fn unwrap(
        &self,
        client: &CloudClient,
        kms_base: &str,
        bearer: &str,
    ) -> Result<Zeroizing<[u8; 32]>, BrokerError> {
        let ct = STANDARD
            .decode(&self.ciphertext)
            .map_err(|_| BrokerError::Protocol {
                field: "wrapped_dek.ciphertext".into(),
                reason: "not base64".into(),
            })?;
        let pt = kms_decrypt(
            client,
            kms_base,
            &self.kms_key,
            bearer,
            &ct,
            self.dataset.as_bytes(),
        )?;
        let mut k = Zeroizing::new([0u8; 32]);
        if pt.len() != 32 {
            return Err(BrokerError::Crypto(format!(
                "the DEK from KMS key {} is {} bytes, not 32",
                self.kms_key,
                pt.len()
            )));
        }
        k.copy_from_slice(&pt);
        Ok(k)
    }
}

/// The workload identity pool provider's attribute condition (CEL) that admits only
/// Confidential Space's production image running the container `image_digest` on a supported
/// (`STABLE`) image.
pub fn attribute_condition(image_digest: &str) -> String {
    format!(
        "assertion.swname == 'CONFIDENTIAL_SPACE' && 'STABLE' in assertion.submods.confidential_space.support_attributes && assertion.submods.container.image_digest == '{}'",
        image_digest.replace('\'', "")
    )
}
