//! Azure Key Vault Secure Key Release: unwrapping the released key.
//!
//! Key Vault's `POST {vault}/keys/{name}/{version}/release` (api-version 7.4) answers a JWS whose
//! payload carries the key as a JWK with `key_hsm`: the base64url of a *key transfer blob*, the
//! JSON document of Azure's "Bring your own key" specification:
//!
//! ```json
//! {"schema_version": "1.0.0",
//!  "header": {"kid": "<the runtime's transfer key>", "alg": "dir", "enc": "CKM_RSA_AES_KEY_WRAP"},
//!  "ciphertext": "<base64url>", "generator": "..."}
//! ```
//!
//! `ciphertext` is PKCS#11's `CKM_RSA_AES_KEY_WRAP` (PKCS#11 v2.40 §2.1.21): an ephemeral AES
//! key encrypted with RSA-OAEP to the runtime's RSA key (the first modulus-size bytes: 256 for
//! RSA-2048), followed by the target key wrapped with that AES key by AES key wrap with padding
//! (RFC 5649, `CKM_AES_KEY_WRAP_PAD`). The OAEP hash (and MGF1 hash) is SHA-1 for
//! `CKM_RSA_AES_KEY_WRAP`, SHA-256 for `RSA_AES_KEY_WRAP_256` and SHA-384 for
//! `RSA_AES_KEY_WRAP_384` (Key Vault's `KeyEncryptionAlgorithm` values), with an empty label.
//!
//! The target key is, for `oct-HSM`, the raw AES key (the 32-byte DEK); for `RSA-HSM`, the RSA
//! private key as PKCS#8 DER, from which the DEK is derived as Microsoft's confidential-sidecar
//! `importkey` tool derives it ([`dek_from_rsa_private_key`]).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::{Oaep, RsaPrivateKey};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::error::BrokerError;

/// Key Vault's key-encryption algorithms for key transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferAlg {
    /// `CKM_RSA_AES_KEY_WRAP`: RSA-OAEP with SHA-1.
    CkmRsaAesKeyWrap,
    /// `RSA_AES_KEY_WRAP_256`: RSA-OAEP with SHA-256.
    RsaAesKeyWrap256,
    /// `RSA_AES_KEY_WRAP_384`: RSA-OAEP with SHA-384.
    RsaAesKeyWrap384,
}

impl TransferAlg {
    /// Parses Key Vault's name for the algorithm.
    ///
    /// # Errors
    /// [`BrokerError::Protocol`] naming `header.enc`.
    pub fn parse(s: &str) -> Result<Self, BrokerError> {
        match s {
            "CKM_RSA_AES_KEY_WRAP" => Ok(Self::CkmRsaAesKeyWrap),
            "RSA_AES_KEY_WRAP_256" => Ok(Self::RsaAesKeyWrap256),
            "RSA_AES_KEY_WRAP_384" => Ok(Self::RsaAesKeyWrap384),
            other => Err(BrokerError::Protocol {
                field: "key_hsm.header.enc".into(),
                reason: format!(
                    "`{other}` (known: CKM_RSA_AES_KEY_WRAP, RSA_AES_KEY_WRAP_256, RSA_AES_KEY_WRAP_384)"
                ),
            }),
        }
    }

    /// Key Vault's name for the algorithm.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CkmRsaAesKeyWrap => "CKM_RSA_AES_KEY_WRAP",
            Self::RsaAesKeyWrap256 => "RSA_AES_KEY_WRAP_256",
            Self::RsaAesKeyWrap384 => "RSA_AES_KEY_WRAP_384",
        }
    }

    fn oaep(self) -> Oaep {
        match self {
            Self::CkmRsaAesKeyWrap => Oaep::new::<sha1::Sha1>(),
            Self::RsaAesKeyWrap256 => Oaep::new::<sha2::Sha256>(),
            Self::RsaAesKeyWrap384 => Oaep::new::<sha2::Sha384>(),
        }
    }
}

#[derive(Deserialize)]
struct BlobHeader {
    alg: String,
    enc: String,
}

#[derive(Deserialize)]
struct Blob {
    schema_version: String,
    header: BlobHeader,
    ciphertext: String,
}

/// AES key wrap with padding (RFC 5649) unwrapping, for a KEK of 16, 24 or 32 bytes.
///
/// # Errors
/// [`BrokerError::Crypto`] when the KEK has another size or the integrity check fails.
pub fn aes_kwp_unwrap(kek: &[u8], wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, BrokerError> {
    let fail = |_| BrokerError::Crypto("AES key wrap with padding: integrity check failed".into());
    let out = match kek.len() {
        16 => aes_kw::KekAes128::try_from(kek)
            .map_err(|_| BrokerError::Crypto("bad KEK".into()))?
            .unwrap_with_padding_vec(wrapped)
            .map_err(fail)?,
        24 => aes_kw::KekAes192::try_from(kek)
            .map_err(|_| BrokerError::Crypto("bad KEK".into()))?
            .unwrap_with_padding_vec(wrapped)
            .map_err(fail)?,
        32 => aes_kw::KekAes256::try_from(kek)
            .map_err(|_| BrokerError::Crypto("bad KEK".into()))?
            .unwrap_with_padding_vec(wrapped)
            .map_err(fail)?,
        n => {
            return Err(BrokerError::Crypto(format!(
                "AES key wrap with padding: a {n}-byte KEK (16, 24 or 32 expected)"
            )));
        }
    };
    Ok(Zeroizing::new(out))
}

/// Unwraps `CKM_RSA_AES_KEY_WRAP`-style `ciphertext` with the runtime's RSA key.
///
/// # Errors
/// [`BrokerError::Crypto`] when the RSA-OAEP part or the AES-KWP part fails (wrong key,
/// tampered ciphertext), or the ciphertext is shorter than the modulus.
pub fn rsa_aes_unwrap(
    key: &RsaPrivateKey,
    alg: TransferAlg,
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, BrokerError> {
    use rsa::traits::PublicKeyParts;
    let k = key.size();
    if ciphertext.len() <= k {
        return Err(BrokerError::Crypto(format!(
            "{}: ciphertext of {} bytes, the RSA part alone is {k}",
            alg.as_str(),
            ciphertext.len()
        )));
    }
    let aes = Zeroizing::new(key.decrypt(alg.oaep(), &ciphertext[..k]).map_err(|_| {
        BrokerError::Crypto(format!(
            "{}: the RSA-OAEP part does not decrypt with the runtime's transfer key",
            alg.as_str()
        ))
    })?);
    aes_kwp_unwrap(&aes, &ciphertext[k..])
}

/// Unwraps a `key_hsm` value (base64url of the key transfer blob) with the runtime's RSA
/// transfer key and returns the target key's bytes.
///
/// # Errors
/// [`BrokerError::Protocol`] naming the blob field that is malformed (`schema_version`,
/// `header.alg` other than `dir`, `header.enc`, `ciphertext`); as [`rsa_aes_unwrap`].
pub fn unwrap_key_hsm(
    key_hsm: &str,
    key: &RsaPrivateKey,
) -> Result<Zeroizing<Vec<u8>>, BrokerError> {
    let proto = |field: &str, reason: String| BrokerError::Protocol {
        field: format!("key_hsm.{field}"),
        reason,
    };
    let raw = URL_SAFE_NO_PAD
        .decode(key_hsm.trim_end_matches('='))
        .map_err(|e| proto("", format!("not base64url: {e}")))?;
    let blob: Blob =
        serde_json::from_slice(&raw).map_err(|e| proto("", format!("not a transfer blob: {e}")))?;
    if !blob.schema_version.starts_with("1.") {
        return Err(proto(
            "schema_version",
            format!("`{}`, expected 1.x", blob.schema_version),
        ));
    }
    if blob.header.alg != "dir" {
        return Err(proto(
            "header.alg",
            format!("`{}`, expected `dir`", blob.header.alg),
        ));
    }
    let alg = TransferAlg::parse(&blob.header.enc)?;
    let ct = URL_SAFE_NO_PAD
        .decode(blob.ciphertext.trim_end_matches('='))
        .map_err(|e| proto("ciphertext", format!("not base64url: {e}")))?;
    rsa_aes_unwrap(key, alg, &ct)
}

/// The label `importkey` uses when none is configured.
pub const DEFAULT_DERIVATION_LABEL: &str = "Symmetric Encryption Key";

/// Derives the 32-byte DEK from an `RSA-HSM` key as Microsoft's confidential-sidecar
/// `importkey` tool does (`tools/importkey`, `-out`): HKDF-SHA256 (RFC 5869) with the private
/// exponent `d` (big-endian, no leading zeros) as input key material, the key's public `salt`
/// and `label` as info, 32 bytes out. `private_key_pkcs8_der` is the released target key.
///
/// # Errors
/// [`BrokerError::Crypto`] when the bytes are not a PKCS#8 RSA private key.
pub fn dek_from_rsa_private_key(
    private_key_pkcs8_der: &[u8],
    salt: &[u8],
    label: &[u8],
) -> Result<Zeroizing<[u8; 32]>, BrokerError> {
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::traits::PrivateKeyParts;
    let k = RsaPrivateKey::from_pkcs8_der(private_key_pkcs8_der).map_err(|_| {
        BrokerError::Crypto("the released RSA-HSM key is not a PKCS#8 RSA private key".into())
    })?;
    let d = Zeroizing::new(k.d().to_bytes_be());
    let mut out = Zeroizing::new([0u8; 32]);
    hkdf::Hkdf::<sha2::Sha256>::new(Some(salt), &d)
        .expand(label, out.as_mut())
        .map_err(|_| BrokerError::Crypto("HKDF output length".into()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    /// RFC 5649 §6: the two test vectors (192-bit KEK).
    #[test]
    fn rfc5649_test_vectors() {
        let kek = h("5840df6e29b02af1 ab493b705bf16ea1 ae8338f4dcc176a8");
        let wrapped = h("138bdeaa9b8fa7fc 61f97742e72248ee 5ae6ae5360d1ae6a 5f54f373fa543b6a");
        assert_eq!(
            &aes_kwp_unwrap(&kek, &wrapped).unwrap()[..],
            &h("c37b7e6492584340 bed1220780894115 5068f738")[..]
        );
        let wrapped = h("afbeb0f07dfbf541 9200f2ccb50bb24f");
        assert_eq!(
            &aes_kwp_unwrap(&kek, &wrapped).unwrap()[..],
            &h("466f7250617369")[..]
        );
        let mut bad = h("afbeb0f07dfbf541 9200f2ccb50bb24f");
        bad[3] ^= 1;
        assert!(aes_kwp_unwrap(&kek, &bad).is_err());
        assert!(aes_kwp_unwrap(&kek[..20], &wrapped).is_err());
    }

    #[test]
    fn malformed_blobs_name_their_field() {
        let key = RsaPrivateKey::new(&mut rand::rngs::OsRng, 1024).unwrap();
        let enc = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let e = unwrap_key_hsm(
            &enc(serde_json::json!({"schema_version": "1.0.0", "header": {"alg": "RSA-OAEP", "enc": "CKM_RSA_AES_KEY_WRAP"}, "ciphertext": "AA"})),
            &key,
        )
        .unwrap_err();
        assert!(e.to_string().contains("header.alg"), "{e}");
        let e = unwrap_key_hsm(
            &enc(serde_json::json!({"schema_version": "1.0.0", "header": {"alg": "dir", "enc": "A256KW"}, "ciphertext": "AA"})),
            &key,
        )
        .unwrap_err();
        assert!(e.to_string().contains("header.enc"), "{e}");
        let e = unwrap_key_hsm(
            &enc(serde_json::json!({"schema_version": "1.0.0", "header": {"alg": "dir", "enc": "CKM_RSA_AES_KEY_WRAP"}, "ciphertext": "AAAA"})),
            &key,
        )
        .unwrap_err();
        assert!(e.to_string().contains("RSA part"), "{e}");
        assert!(unwrap_key_hsm("!!", &key).is_err());
    }
}
