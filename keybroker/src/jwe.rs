//! Wrapping a released key to the runtime key, as the KBS protocol does.
//!
//! The KBS `Response` is a flattened JWE (RFC 7516 §7.2.2) with `enc` = `A256GCM` and either
//! - `alg` = `ECDH-ES+A256KW` (RFC 7518 §4.6) on P-256: an ephemeral key `epk` in the protected
//!   header, the key-encryption key from Concat KDF (NIST SP 800-56A, SHA-256, `AlgorithmID` =
//!   `"ECDH-ES+A256KW"`, empty `apu`/`apv`, `SuppPubInfo` = 256), the content-encryption key
//!   wrapped with AES key wrap (RFC 3394); or
//! - `alg` = `RSA-OAEP-256` (RFC 7518 §4.3) for an RSA runtime key.
//!
//! The AAD of the content encryption is the base64url protected header (RFC 7516 §5.1 step 14),
//! computed with `kbs_types::ProtectedHeader::generate_aad` on both sides.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use kbs_types::{ProtectedHeader, Response, TeePubKey};
use p256::ecdh::EphemeralSecret;
use p256::elliptic_curve::sec1::{FromEncodedPoint, ToEncodedPoint};
use p256::{EncodedPoint, PublicKey};
use rand::RngCore;
use serde_json::{Map, Value, json};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::BrokerError;

/// JWE `alg` for ECDH on P-256 with AES-256 key wrap.
pub const ALG_ECDH_ES_A256KW: &str = "ECDH-ES+A256KW";
/// JWE `alg` for RSA-OAEP with SHA-256.
pub const ALG_RSA_OAEP_256: &str = "RSA-OAEP-256";
/// JWE `enc`.
pub const ENC_A256GCM: &str = "A256GCM";

fn concat_kdf_a256kw(z: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut other = Vec::new();
    let alg = ALG_ECDH_ES_A256KW.as_bytes();
    other.extend_from_slice(&(alg.len() as u32).to_be_bytes());
    other.extend_from_slice(alg);
    other.extend_from_slice(&0u32.to_be_bytes()); // apu
    other.extend_from_slice(&0u32.to_be_bytes()); // apv
    other.extend_from_slice(&256u32.to_be_bytes()); // keydatalen in bits
    let mut kek = Zeroizing::new([0u8; 32]);
    concat_kdf::derive_key_into::<Sha256>(z, &other, kek.as_mut())
        .unwrap_or_else(|_| unreachable!("32-byte output is valid"));
    kek
}

fn ec_point(x: &str, y: &str) -> Result<PublicKey, BrokerError> {
    let bad = |f: &str| BrokerError::Protocol {
        field: f.to_string(),
        reason: "not a base64url P-256 coordinate".into(),
    };
    let xb = B64.decode(x).map_err(|_| bad("x"))?;
    let yb = B64.decode(y).map_err(|_| bad("y"))?;
    if xb.len() != 32 || yb.len() != 32 {
        return Err(bad("x/y"));
    }
    let ep = EncodedPoint::from_affine_coordinates(
        p256::FieldBytes::from_slice(&xb),
        p256::FieldBytes::from_slice(&yb),
        false,
    );
    Option::from(PublicKey::from_encoded_point(&ep)).ok_or_else(|| BrokerError::Protocol {
        field: "tee-pubkey".into(),
        reason: "not a point on P-256".into(),
    })
}

fn point_jwk(pk: &PublicKey) -> (String, String) {
    let ep = pk.to_encoded_point(false);
    (
        B64.encode(ep.x().map(|x| x.as_slice()).unwrap_or_default()),
        B64.encode(ep.y().map(|y| y.as_slice()).unwrap_or_default()),
    )
}

/// Encrypts `secret` to `tee_pubkey` as a KBS `Response` (flattened JWE).
///
/// # Errors
/// [`BrokerError::Protocol`] when the key is not an EC P-256 key with `alg`
/// `ECDH-ES+A256KW` or an RSA key with `alg` `RSA-OAEP-256`.
pub fn wrap(tee_pubkey: &TeePubKey, secret: &[u8]) -> Result<Response, BrokerError> {
    let mut rng = rand::rngs::OsRng;
    let mut cek = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(cek.as_mut());
    let (protected, encrypted_key) = match tee_pubkey {
        TeePubKey::EC { crv, alg, x, y } if crv == "P-256" && alg == ALG_ECDH_ES_A256KW => {
            let recipient = ec_point(x, y)?;
            let eph = EphemeralSecret::random(&mut rng);
            let (ex, ey) = point_jwk(&eph.public_key());
            let z = eph.diffie_hellman(&recipient);
            let kek = concat_kdf_a256kw(z.raw_secret_bytes());
            let kw = aes_kw::KekAes256::from(*kek);
            let wrapped = kw
                .wrap_vec(cek.as_ref())
                .map_err(|_| BrokerError::Crypto("AES key wrap failed".into()))?;
            let mut other = Map::new();
            other.insert(
                "epk".into(),
                json!({"kty": "EC", "crv": "P-256", "x": ex, "y": ey}),
            );
            (
                ProtectedHeader {
                    alg: ALG_ECDH_ES_A256KW.into(),
                    enc: ENC_A256GCM.into(),
                    other_fields: other,
                },
                wrapped,
            )
        }
        TeePubKey::RSA { alg, k_mod, k_exp } if alg == ALG_RSA_OAEP_256 => {
            let bad = |f: &str| BrokerError::Protocol {
                field: f.into(),
                reason: "not base64url".into(),
            };
            let n = rsa::BigUint::from_bytes_be(&B64.decode(k_mod).map_err(|_| bad("n"))?);
            let e = rsa::BigUint::from_bytes_be(&B64.decode(k_exp).map_err(|_| bad("e"))?);
            let pk = rsa::RsaPublicKey::new(n, e).map_err(|e| BrokerError::Protocol {
                field: "tee-pubkey".into(),
                reason: format!("bad RSA key: {e}"),
            })?;
            let ek = pk
                .encrypt(&mut rng, rsa::Oaep::new::<Sha256>(), cek.as_ref())
                .map_err(|e| BrokerError::Crypto(format!("RSA-OAEP: {e}")))?;
            (
                ProtectedHeader {
                    alg: ALG_RSA_OAEP_256.into(),
                    enc: ENC_A256GCM.into(),
                    other_fields: Map::new(),
                },
                ek,
            )
        }
        _ => {
            return Err(BrokerError::Protocol {
                field: "tee-pubkey".into(),
                reason:
                    "unsupported key: use EC P-256 with ECDH-ES+A256KW or RSA with RSA-OAEP-256"
                        .into(),
            });
        }
    };
    let aad = protected
        .generate_aad()
        .map_err(|_| BrokerError::Crypto("protected header".into()))?;
    let mut iv = [0u8; 12];
    rng.fill_bytes(&mut iv);
    let cipher =
        Aes256Gcm::new_from_slice(cek.as_ref()).unwrap_or_else(|_| unreachable!("32-byte key"));
    let mut ct = cipher
        .encrypt(
            Nonce::from_slice(&iv),
            Payload {
                msg: secret,
                aad: &aad,
            },
        )
        .map_err(|_| BrokerError::Crypto("AES-GCM".into()))?;
    let tag = ct.split_off(ct.len() - 16);
    Ok(Response {
        protected,
        encrypted_key,
        aad: None,
        iv: iv.to_vec(),
        ciphertext: ct,
        tag,
    })
}

/// The runtime key: a fresh P-256 key pair made for one run, whose public half goes into
/// `report_data` and to which the broker wraps released keys. The private key is zeroized on
/// drop (by `p256`'s `SecretKey`) and never leaves the process. A clone is another such copy
/// (a threshold key's share threads hold one until they end).
#[derive(Clone)]
pub struct RuntimeKey {
    secret: p256::SecretKey,
}

impl std::fmt::Debug for RuntimeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RuntimeKey(..)")
    }
}

impl RuntimeKey {
    /// A fresh key from the OS CSPRNG.
    pub fn generate() -> Self {
        Self {
            secret: p256::SecretKey::random(&mut rand::rngs::OsRng),
        }
    }

    /// The public key as the KBS `tee-pubkey` (EC, P-256, `ECDH-ES+A256KW`).
    pub fn tee_pubkey(&self) -> TeePubKey {
        let (x, y) = point_jwk(&self.secret.public_key());
        TeePubKey::EC {
            crv: "P-256".into(),
            alg: ALG_ECDH_ES_A256KW.into(),
            x,
            y,
        }
    }

    /// The public key as JSON (the JWK that goes into the report_data binding).
    pub fn tee_pubkey_json(&self) -> Value {
        serde_json::to_value(self.tee_pubkey()).unwrap_or_else(|_| unreachable!("serialises"))
    }

    /// Signs a run report (`run.json` bytes) as a compact JWS, ES256, `typ`
    /// [`crate::runs::REPORT_TYP`], `kid` `runtime`: the broker checks it against the runtime
    /// key the run attested.
    pub fn sign_report(&self, report: &[u8]) -> String {
        let k = ccr_policy::sign::PrivateKey::P256(p256::ecdsa::SigningKey::from(&self.secret));
        k.sign_compact("runtime", crate::runs::REPORT_TYP, report)
    }

    /// SHA-256 of the public key's SEC1 uncompressed encoding (65 bytes), for logs.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        hex::encode(Sha256::digest(
            self.secret.public_key().to_encoded_point(false).as_bytes(),
        ))
    }

    /// Decrypts a KBS `Response` given as JSON (as the broker's run endpoint answers it).
    ///
    /// # Errors
    /// [`BrokerError::Protocol`] when the JSON is not a `Response`; as [`RuntimeKey::unwrap`].
    pub fn unwrap_json(&self, v: &Value) -> Result<Zeroizing<Vec<u8>>, BrokerError> {
        let resp: Response =
            serde_json::from_value(v.clone()).map_err(|e| BrokerError::Protocol {
                field: "Response".into(),
                reason: e.to_string(),
            })?;
        self.unwrap(&resp)
    }

    /// Decrypts a KBS `Response` wrapped to this key.
    ///
    /// # Errors
    /// [`BrokerError::Protocol`] for an unexpected `alg`/`enc` or a missing `epk`;
    /// [`BrokerError::Crypto`] when unwrapping or decryption fails (tampered or for another key).
    pub fn unwrap(&self, resp: &Response) -> Result<Zeroizing<Vec<u8>>, BrokerError> {
        let h = &resp.protected;
        if h.alg != ALG_ECDH_ES_A256KW || h.enc != ENC_A256GCM {
            return Err(BrokerError::Protocol {
                field: "protected".into(),
                reason: format!(
                    "alg {} enc {}, expected {ALG_ECDH_ES_A256KW} {ENC_A256GCM}",
                    h.alg, h.enc
                ),
            });
        }
        let epk = h
            .other_fields
            .get("epk")
            .ok_or_else(|| BrokerError::Protocol {
                field: "protected.epk".into(),
                reason: "missing".into(),
            })?;
        let coord = |n: &str| epk.get(n).and_then(Value::as_str).unwrap_or("");
        if coord("kty") != "EC" || coord("crv") != "P-256" {
            return Err(BrokerError::Protocol {
                field: "protected.epk".into(),
                reason: "not an EC P-256 key".into(),
            });
        }
        let eph = ec_point(coord("x"), coord("y"))?;
        let z = p256::ecdh::diffie_hellman(self.secret.to_nonzero_scalar(), eph.as_affine());
        let kek = concat_kdf_a256kw(z.raw_secret_bytes());
        let kw = aes_kw::KekAes256::from(*kek);
        let cek = Zeroizing::new(
            kw.unwrap_vec(&resp.encrypted_key)
                .map_err(|_| BrokerError::Crypto("AES key unwrap failed".into()))?,
        );
        if cek.len() != 32 || resp.iv.len() != 12 || resp.tag.len() != 16 {
            return Err(BrokerError::Crypto("bad CEK, IV or tag length".into()));
        }
        let aad = h
            .generate_aad()
            .map_err(|_| BrokerError::Crypto("protected header".into()))?;
        let cipher = Aes256Gcm::new_from_slice(&cek).unwrap_or_else(|_| unreachable!("32 bytes"));
        let mut ct = resp.ciphertext.clone();
        ct.extend_from_slice(&resp.tag);
        let pt = cipher
            .decrypt(
                Nonce::from_slice(&resp.iv),
                Payload {
                    msg: &ct,
                    aad: &aad,
                },
            )
            .map_err(|_| BrokerError::Crypto("AES-GCM decryption failed".into()))?;
        Ok(Zeroizing::new(pt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_secret_opens_only_with_the_runtime_key() {
        let rk = RuntimeKey::generate();
        let resp = wrap(&rk.tee_pubkey(), b"0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(
            &rk.unwrap(&resp).unwrap()[..],
            b"0123456789abcdef0123456789abcdef"
        );
        assert!(RuntimeKey::generate().unwrap(&resp).is_err());
        let mut t = resp.clone();
        t.ciphertext[0] ^= 1;
        assert!(rk.unwrap(&t).is_err());
        // The protected header is authenticated.
        let mut h = resp;
        h.protected.other_fields.insert("kid".into(), json!("x"));
        assert!(rk.unwrap(&h).is_err());
    }

    #[test]
    fn response_round_trips_through_json() {
        let rk = RuntimeKey::generate();
        let resp = wrap(&rk.tee_pubkey(), b"k").unwrap();
        let s = serde_json::to_string(&resp).unwrap();
        let back: Response = serde_json::from_str(&s).unwrap();
        assert_eq!(&rk.unwrap(&back).unwrap()[..], b"k");
    }
}
