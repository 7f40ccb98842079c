//! Contract signatures: detached JWS (RFC 7515, appendix F) over the 32-byte contract digest.
//!
//! `jws = BASE64URL(header) || ".." || BASE64URL(signature)`, where the signing input is
//! `BASE64URL(header) || "." || BASE64URL(digest)` and the header is
//! `{"alg":"EdDSA"|"ES256","kid":<party id>,"typ":"ccr-contract+jws"}`. `EdDSA` is Ed25519
//! (RFC 8037); `ES256` is ECDSA P-256/SHA-256 with the 64-byte `R || S` signature (RFC 7518 §3.4).
//!
//! Private keys are PKCS#8 PEM files; public keys are JWKs in the contract's `parties[]`.
//!
//! Parties also sign requests to the broker (approvals, the output key) with the same keys as
//! compact JWS with the payload attached (`header.payload.signature`) and their own `typ`
//! ([`PrivateKey::sign_compact`], [`verify_compact`]), so that no signature of one kind passes
//! for another.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use p256::ecdsa::signature::{Signer, Verifier};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::error::PolicyError;

/// The JWS `typ` of contract signatures.
pub const JWS_TYP: &str = "ccr-contract+jws";

/// A party's public key.
#[derive(Debug, Clone)]
pub enum PublicKey {
    /// Ed25519 (JWS `EdDSA`).
    Ed25519(ed25519_dalek::VerifyingKey),
    /// ECDSA P-256 (JWS `ES256`).
    P256(p256::ecdsa::VerifyingKey),
}

/// A party's private signing key. Zeroized on drop by the underlying types.
pub enum PrivateKey {
    /// Ed25519.
    Ed25519(ed25519_dalek::SigningKey),
    /// ECDSA P-256.
    P256(p256::ecdsa::SigningKey),
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ed25519(_) => f.write_str("PrivateKey::Ed25519(..)"),
            Self::P256(_) => f.write_str("PrivateKey::P256(..)"),
        }
    }
}

fn b64_field(jwk: &Value, name: &str) -> Result<Vec<u8>, PolicyError> {
    let s = jwk
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| PolicyError::Key {
            reason: format!("JWK field `{name}` missing or not a string"),
        })?;
    B64.decode(s).map_err(|_| PolicyError::Key {
        reason: format!("JWK field `{name}` is not base64url"),
    })
}

impl PublicKey {
    /// Parses a JWK: `{"kty":"OKP","crv":"Ed25519","x"}` or `{"kty":"EC","crv":"P-256","x","y"}`.
    ///
    /// # Errors
    /// [`PolicyError::Key`] naming the field.
    pub fn from_jwk(jwk: &Value) -> Result<Self, PolicyError> {
        let kty = jwk.get("kty").and_then(Value::as_str).unwrap_or("");
        let crv = jwk.get("crv").and_then(Value::as_str).unwrap_or("");
        match (kty, crv) {
            ("OKP", "Ed25519") => {
                let x: [u8; 32] =
                    b64_field(jwk, "x")?
                        .try_into()
                        .map_err(|_| PolicyError::Key {
                            reason: "JWK field `x` is not 32 bytes".into(),
                        })?;
                let k =
                    ed25519_dalek::VerifyingKey::from_bytes(&x).map_err(|_| PolicyError::Key {
                        reason: "JWK field `x` is not an Ed25519 point".into(),
                    })?;
                Ok(Self::Ed25519(k))
            }
            ("EC", "P-256") => {
                let x = b64_field(jwk, "x")?;
                let y = b64_field(jwk, "y")?;
                if x.len() != 32 || y.len() != 32 {
                    return Err(PolicyError::Key {
                        reason: "JWK fields `x`/`y` are not 32 bytes".into(),
                    });
                }
                let mut sec1 = vec![4u8];
                sec1.extend_from_slice(&x);
                sec1.extend_from_slice(&y);
                let k = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).map_err(|_| {
                    PolicyError::Key {
                        reason: "JWK `x`/`y` is not a P-256 point".into(),
                    }
                })?;
                Ok(Self::P256(k))
            }
            _ => Err(PolicyError::Key {
                reason: format!(
                    "unsupported JWK kty `{kty}` crv `{crv}` (use OKP/Ed25519 or EC/P-256)"
                ),
            }),
        }
    }

    /// The key as a JWK.
    pub fn to_jwk(&self) -> Value {
        match self {
            Self::Ed25519(k) => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(k.as_bytes())})
            }
            Self::P256(k) => {
                let p = k.to_encoded_point(false);
                json!({
                    "kty": "EC", "crv": "P-256",
                    "x": B64.encode(p.x().map(|x| x.as_slice()).unwrap_or_default()),
                    "y": B64.encode(p.y().map(|y| y.as_slice()).unwrap_or_default()),
                })
            }
        }
    }

    fn alg(&self) -> &'static str {
        match self {
            Self::Ed25519(_) => "EdDSA",
            Self::P256(_) => "ES256",
        }
    }
}

impl PrivateKey {
    /// A new random key: `alg` is `ed25519` or `p256`.
    ///
    /// # Errors
    /// [`PolicyError::Key`] for another algorithm name.
    pub fn generate(alg: &str) -> Result<Self, PolicyError> {
        let mut rng = rand::rngs::OsRng;
        match alg {
            "ed25519" | "EdDSA" => Ok(Self::Ed25519(ed25519_dalek::SigningKey::generate(&mut rng))),
            "p256" | "ES256" => Ok(Self::P256(p256::ecdsa::SigningKey::random(&mut rng))),
            other => Err(PolicyError::Key {
                reason: format!("unknown algorithm `{other}` (ed25519 or p256)"),
            }),
        }
    }

    /// Parses a PKCS#8 PEM private key (Ed25519 or P-256).
    ///
    /// # Errors
    /// [`PolicyError::Key`] when it is neither.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, PolicyError> {
        if let Ok(k) = ed25519_dalek::SigningKey::from_pkcs8_pem(pem) {
            return Ok(Self::Ed25519(k));
        }
        if let Ok(k) =
            <p256::ecdsa::SigningKey as p256::pkcs8::DecodePrivateKey>::from_pkcs8_pem(pem)
        {
            return Ok(Self::P256(k));
        }
        Err(PolicyError::Key {
            reason: "not a PKCS#8 PEM Ed25519 or P-256 private key".into(),
        })
    }

    /// The key as PKCS#8 PEM (zeroized on drop).
    pub fn to_pkcs8_pem(&self) -> Zeroizing<String> {
        let le = p256::pkcs8::LineEnding::LF;
        match self {
            Self::Ed25519(k) => k
                .to_pkcs8_pem(le)
                .unwrap_or_else(|_| unreachable!("Ed25519 key encodes")),
            Self::P256(k) => p256::pkcs8::EncodePrivateKey::to_pkcs8_pem(k, le)
                .unwrap_or_else(|_| unreachable!("P-256 key encodes")),
        }
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        match self {
            Self::Ed25519(k) => PublicKey::Ed25519(k.verifying_key()),
            Self::P256(k) => PublicKey::P256(*k.verifying_key()),
        }
    }

    fn sign_input(&self, party: &str, typ: &str, payload: &[u8]) -> (String, String, String) {
        let header = json!({"alg": self.public_key().alg(), "kid": party, "typ": typ});
        let h = B64.encode(serde_json::to_vec(&header).unwrap_or_default());
        let p = B64.encode(payload);
        let input = format!("{h}.{p}");
        let sig = match self {
            Self::Ed25519(k) => k.sign(input.as_bytes()).to_bytes().to_vec(),
            Self::P256(k) => {
                let s: p256::ecdsa::Signature = k.sign(input.as_bytes());
                s.to_bytes().to_vec()
            }
        };
        (h, p, B64.encode(sig))
    }

    /// Signs `payload` as a detached JWS with `kid` = `party` and `typ` = [`JWS_TYP`].
    pub fn sign_detached(&self, party: &str, payload: &[u8]) -> String {
        let (h, _, s) = self.sign_input(party, JWS_TYP, payload);
        format!("{h}..{s}")
    }

    /// Signs `payload` as a compact JWS with the payload attached, `kid` = `party` and the
    /// given `typ` (for instance `ccr-approval+jws`).
    pub fn sign_compact(&self, party: &str, typ: &str, payload: &[u8]) -> String {
        let (h, p, s) = self.sign_input(party, typ, payload);
        format!("{h}.{p}.{s}")
    }
}

/// The `kid` (party id) of a compact JWS's header, unverified: to find the key to verify with.
///
/// # Errors
/// [`PolicyError::Jws`] when the header is not base64url JSON with a string `kid`.
pub fn jws_kid(jws: &str) -> Result<String, PolicyError> {
    jws.split('.')
        .next()
        .and_then(|h| B64.decode(h).ok())
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|h| h.get("kid").and_then(Value::as_str).map(str::to_string))
        .ok_or_else(|| PolicyError::Jws {
            reason: "header is not base64url JSON with a `kid`".into(),
        })
}

/// Verifies a compact JWS with an attached payload, made by [`PrivateKey::sign_compact`] with
/// `typ`, and returns the payload.
///
/// # Errors
/// [`PolicyError::Jws`] when the JWS is malformed, its `alg` does not match the key, its `typ`
/// is not `typ`, or the signature fails.
pub fn verify_compact(key: &PublicKey, typ: &str, jws: &str) -> Result<Vec<u8>, PolicyError> {
    let bad = |reason: &str| PolicyError::Jws {
        reason: reason.to_string(),
    };
    let mut parts = jws.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("not a compact JWS (header.payload.signature)"));
    };
    if p.is_empty() {
        return Err(bad("the payload is detached; expected it attached"));
    }
    let payload = B64.decode(p).map_err(|_| bad("payload is not base64url"))?;
    verify_parts(key, typ, h, p, s)?;
    Ok(payload)
}

/// Verifies a detached JWS over `payload` with `key`.
///
/// # Errors
/// [`PolicyError::Jws`] when the JWS is malformed, its `alg` does not match the key, its `typ`
/// is wrong, or the signature fails.
pub fn verify_detached(key: &PublicKey, jws: &str, payload: &[u8]) -> Result<(), PolicyError> {
    let mut parts = jws.split('.');
    let (Some(h), Some(""), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(PolicyError::Jws {
            reason: "not a detached compact JWS (header..signature)".into(),
        });
    };
    verify_parts(key, JWS_TYP, h, &B64.encode(payload), s)
}

fn verify_parts(key: &PublicKey, typ: &str, h: &str, p: &str, s: &str) -> Result<(), PolicyError> {
    let bad = |reason: &str| PolicyError::Jws {
        reason: reason.to_string(),
    };
    let header: Value = B64
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| bad("header is not base64url JSON"))?;
    if header.get("alg").and_then(Value::as_str) != Some(key.alg()) {
        return Err(bad("header `alg` does not match the party's key"));
    }
    if header.get("typ").and_then(Value::as_str) != Some(typ) {
        return Err(bad(&format!("header `typ` is not {typ}")));
    }
    if header.get("crit").is_some() {
        return Err(bad("header `crit` is not supported"));
    }
    let sig = B64
        .decode(s)
        .map_err(|_| bad("signature is not base64url"))?;
    let input = format!("{h}.{p}");
    let ok = match key {
        PublicKey::Ed25519(k) => ed25519_dalek::Signature::from_slice(&sig)
            .map(|sg| k.verify_strict(input.as_bytes(), &sg).is_ok())
            .unwrap_or(false),
        PublicKey::P256(k) => p256::ecdsa::Signature::from_slice(&sig)
            .map(|sg| k.verify(input.as_bytes(), &sg).is_ok())
            .unwrap_or(false),
    };
    if !ok {
        return Err(bad("signature does not verify"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_algorithms_sign_and_verify_and_reject_other_payloads() {
        for alg in ["ed25519", "p256"] {
            let k = PrivateKey::generate(alg).unwrap();
            let pk = PublicKey::from_jwk(&k.public_key().to_jwk()).unwrap();
            let jws = k.sign_detached("alice", &[1u8; 32]);
            verify_detached(&pk, &jws, &[1u8; 32]).unwrap();
            assert!(verify_detached(&pk, &jws, &[2u8; 32]).is_err(), "{alg}");
            let k2 = PrivateKey::from_pkcs8_pem(&k.to_pkcs8_pem()).unwrap();
            verify_detached(&pk, &k2.sign_detached("alice", b"x"), b"x").unwrap();
        }
    }

    #[test]
    fn compact_jws_carries_its_payload_and_its_typ() {
        for alg in ["ed25519", "p256"] {
            let k = PrivateKey::generate(alg).unwrap();
            let jws = k.sign_compact("alice", "ccr-approval+jws", b"{\"run\":1}");
            assert_eq!(jws_kid(&jws).unwrap(), "alice");
            let got = verify_compact(&k.public_key(), "ccr-approval+jws", &jws).unwrap();
            assert_eq!(got, b"{\"run\":1}");
            let e = verify_compact(&k.public_key(), "ccr-output-key+jws", &jws).unwrap_err();
            assert!(e.to_string().contains("typ"), "{e}");
            let other = PrivateKey::generate(alg).unwrap();
            assert!(verify_compact(&other.public_key(), "ccr-approval+jws", &jws).is_err());
            // A contract signature is not an approval, and the other way round.
            let det = k.sign_detached("alice", b"x");
            assert!(verify_compact(&k.public_key(), JWS_TYP, &det).is_err());
            let parts: Vec<&str> = jws.split('.').collect();
            let swapped = format!("{}.{}.{}", parts[0], B64.encode(b"{}"), parts[2]);
            assert!(verify_compact(&k.public_key(), "ccr-approval+jws", &swapped).is_err());
        }
    }

    #[test]
    fn alg_confusion_is_rejected() {
        let ed = PrivateKey::generate("ed25519").unwrap();
        let p = PrivateKey::generate("p256").unwrap();
        let jws = ed.sign_detached("a", b"d");
        assert!(verify_detached(&p.public_key(), &jws, b"d").is_err());
    }
}
