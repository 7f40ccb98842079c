//! The KBS protocol's binding of the broker's nonce and the runtime key into `report_data`.
//!
//! As Trustee's KBS checks it: `report_data = SHA-384(JCS({"nonce", "tee-pubkey",
//! "additional-evidence"}))` zero-padded to 64 bytes, where JCS is the JSON Canonicalization
//! Scheme (RFC 8785), `nonce` the base64 nonce string of the KBS `Challenge`, `tee-pubkey` the
//! runtime public key as a JWK (kbs-types `TeePubKey`) and `additional-evidence` a string
//! (empty when there is none).

use serde_json::json;
use sha2::{Digest, Sha384};

use crate::snp::REPORT_DATA_LEN;

/// How many leading bytes of `report_data` platforms with a short nonce bind: the vTPM quote's
/// `extraData` (a TPM2B_DATA, at most the size of the largest PCR bank's digest) and the
/// Confidential Space token's `eat_nonce` (10 to 74 bytes each). 32 bytes of the SHA-384 keep
/// 128-bit collision resistance.
pub const BOUND_PREFIX_LEN: usize = 32;

/// Computes the 64-byte `report_data` that binds `nonce` and `tee_pubkey` (a JWK as JSON).
pub fn kbs_report_data(
    nonce: &str,
    tee_pubkey: &serde_json::Value,
    additional_evidence: &str,
) -> [u8; REPORT_DATA_LEN] {
    let doc = json!({
        "nonce": nonce,
        "tee-pubkey": tee_pubkey,
        "additional-evidence": additional_evidence,
    });
    let canonical = serde_jcs::to_vec(&doc).unwrap_or_else(|_| unreachable!("JSON value"));
    let digest = Sha384::digest(&canonical);
    let mut out = [0u8; REPORT_DATA_LEN];
    out[..digest.len()].copy_from_slice(&digest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_is_canonical_and_padded() {
        let k1 = json!({"kty": "EC", "crv": "P-256", "alg": "ECDH-ES+A256KW", "x": "a", "y": "b"});
        let k2 = json!({"y": "b", "x": "a", "alg": "ECDH-ES+A256KW", "crv": "P-256", "kty": "EC"});
        let a = kbs_report_data("n1", &k1, "");
        assert_eq!(
            a,
            kbs_report_data("n1", &k2, ""),
            "key order must not matter"
        );
        assert_ne!(a, kbs_report_data("n2", &k1, ""), "nonce must be bound");
        assert_eq!(&a[48..], &[0u8; 16], "zero padded");
        let expect = Sha384::digest(
            br#"{"additional-evidence":"","nonce":"n1","tee-pubkey":{"alg":"ECDH-ES+A256KW","crv":"P-256","kty":"EC","x":"a","y":"b"}}"#,
        );
        assert_eq!(&a[..48], expect.as_slice());
    }
}
