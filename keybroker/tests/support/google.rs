//! A stand-in for Google's Confidential Space attestation service: an RSA signing key, its
//! JWKS, and tokens with the claims Confidential Space issues.

#![allow(dead_code, unreachable_pub)]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};

pub struct Issuer {
    key: rsa::RsaPrivateKey,
    kid: String,
}

impl Issuer {
    pub fn new(kid: &str) -> Self {
        Self {
            key: rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap(),
            kid: kid.into(),
        }
    }

    pub fn jwks(&self) -> Value {
        let p = self.key.to_public_key();
        json!({"keys": [{"kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(p.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(p.e().to_bytes_be())}]})
    }

    pub fn token(&self, claims: &Value) -> String {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        h.kid = Some(self.kid.clone());
        let der = self.key.to_pkcs1_der().unwrap();
        jsonwebtoken::encode(
            &h,
            claims,
            &jsonwebtoken::EncodingKey::from_rsa_der(der.as_bytes()),
        )
        .unwrap()
    }
}

/// The claims Confidential Space puts in a token for `aud`, with `nonce`, the container
/// `image_digest` and `env`.
pub fn cs_claims(aud: &str, nonce: &str, image_digest: &str, env: Value) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "iss": "https://confidentialcomputing.googleapis.com", "aud": aud,
        "sub": "https://www.googleapis.com/compute/v1/projects/p/zones/z/instances/i",
        "iat": now, "nbf": now, "exp": now + 3600,
        "eat_nonce": [nonce], "eat_profile": "https://cloud.google.com/confidential-computing/confidential-space/docs/reference/token-claims",
        "secboot": true, "oemid": 11129, "hwmodel": "GCP_AMD_SEV_SNP",
        "swname": "CONFIDENTIAL_SPACE", "swversion": ["240900"], "dbgstat": "disabled-since-boot",
        "submods": {
            "confidential_space": {"support_attributes": ["LATEST", "STABLE", "USABLE"]},
            "container": {"image_reference": "us-docker.pkg.dev/p/r/ccr-init:1",
                "image_digest": image_digest, "restart_policy": "Never", "env": env},
            "gce": {"zone": "us-central1-a", "project_id": "p"}
        }
    })
}
