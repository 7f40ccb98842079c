//! GCP key release through ccr's real client code (STS token exchange, Cloud KMS encrypt and
//! decrypt of the wrapped DEK) against local stand-ins that verify what they are sent
//! (tests/support/gcp.rs), over HTTPS on loopback.

mod support;

use std::collections::HashMap;

use base64::Engine;
use ccr_keybroker::cloud_http::{CloudClient, RetryPolicy};
use ccr_keybroker::gcp::{self, WrappedDek};
use serde_json::json;
use support::gcp::{Config, Gcp, KmsKey, start};
use support::google::{Issuer, cs_claims};

const PROVIDER: &str =
    "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/ccr/providers/cs";
const KEY: &str = "projects/p/locations/global/keyRings/ccr/cryptoKeys/dataset-b";
const OTHER_KEY: &str = "projects/p/locations/global/keyRings/ccr/cryptoKeys/not-for-ccr";
const DIGEST: &str = "sha256:aaaabbbbccccddddeeeeffff0000111122223333444455556666777788889999";
const DEK: [u8; 32] = [0x2b; 32];

struct Env {
    google: Issuer,
    gcp: Gcp,
    client: CloudClient,
}

fn env() -> Env {
    let google = Issuer::new("g1");
    let mut keys = HashMap::new();
    keys.insert(
        KEY.to_string(),
        KmsKey {
            decrypters: vec![DIGEST.to_string()],
        },
    );
    keys.insert(OTHER_KEY.to_string(), KmsKey { decrypters: vec![] });
    let gcp = start(Config {
        jwks: serde_json::from_value(google.jwks()).unwrap(),
        provider: PROVIDER.into(),
        attribute_condition: gcp::attribute_condition(DIGEST),
        keys,
        admin_token: "provider-admin".into(),
    });
    let client = CloudClient::new(
        "GCP",
        RetryPolicy::default(),
        Some(std::slice::from_ref(&gcp.ca)),
    );
    Env {
        google,
        gcp,
        client,
    }
}

fn wrap(e: &Env, key: &str) -> WrappedDek {
    let ct = gcp::kms_encrypt(
        &e.client,
        &e.gcp.base,
        key,
        "provider-admin",
        &DEK,
        b"dataset-b",
    )
    .unwrap();
    WrappedDek {
        kms_key: key.into(),
        dataset: "dataset-b".into(),
        ciphertext: base64::engine::general_purpose::STANDARD.encode(ct),
    }
}

fn token(e: &Env, digest: &str) -> String {
    e.google.token(&cs_claims(
        gcp::STS_AUDIENCE,
        &"00".repeat(32),
        digest,
        json!({}),
    ))
}

#[test]
fn the_wrapped_dek_is_released_to_the_pinned_image() {
    let e = env();
    let w = wrap(&e, KEY);
    let fed = gcp::sts_exchange(&e.client, &e.gcp.base, PROVIDER, &token(&e, DIGEST)).unwrap();
    let dek = w.unwrap(&e.client, &e.gcp.base, &fed).unwrap();
    assert_eq!(*dek, DEK);
}

#[test]
fn sts_refuses_a_bad_token_or_another_image() {
    let e = env();
    let mallory = Issuer::new("g1");
    let forged = mallory.token(&cs_claims(
        gcp::STS_AUDIENCE,
        &"00".repeat(32),
        DIGEST,
        json!({}),
    ));
    let err = gcp::sts_exchange(&e.client, &e.gcp.base, PROVIDER, &forged)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("GCP: 400 invalid_grant: The provided subject token is invalid"),
        "{err}"
    );
    let err = gcp::sts_exchange(&e.client, &e.gcp.base, PROVIDER, &token(&e, "sha256:0000"))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "GCP: 400 unauthorized_client: The given credential is rejected by the attribute condition."
    );
    let err = gcp::sts_exchange(
        &e.client,
        &e.gcp.base,
        "//iam.googleapis.com/other",
        &token(&e, DIGEST),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("invalid_target"), "{err}");
}

#[test]
fn kms_denies_permission_and_refuses_a_wrong_wrapped_key() {
    let e = env();
    let fed = gcp::sts_exchange(&e.client, &e.gcp.base, PROVIDER, &token(&e, DIGEST)).unwrap();
    let w = wrap(&e, OTHER_KEY);
    let err = w
        .unwrap(&e.client, &e.gcp.base, &fed)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("GCP: 403 PERMISSION_DENIED: Permission 'cloudkms.cryptoKeyVersions.useToDecrypt' denied"), "{err}");
    // Tampered ciphertext, and the wrapped DEK of another dataset (the AAD differs).
    let mut w = wrap(&e, KEY);
    let mut ct = base64::engine::general_purpose::STANDARD
        .decode(&w.ciphertext)
        .unwrap();
    ct[20] ^= 1;
    w.ciphertext = base64::engine::general_purpose::STANDARD.encode(ct);
    let err = w
        .unwrap(&e.client, &e.gcp.base, &fed)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "GCP: 400 INVALID_ARGUMENT: Decryption failed: the ciphertext is invalid."
    );
    let mut w = wrap(&e, KEY);
    w.dataset = "dataset-c".into();
    assert!(w.unwrap(&e.client, &e.gcp.base, &fed).is_err());
    // A bearer token STS never issued.
    let err = wrap(&e, KEY)
        .unwrap(&e.client, &e.gcp.base, "ya29.forged")
        .unwrap_err()
        .to_string();
    assert!(err.contains("401 UNAUTHENTICATED"), "{err}");
}

#[test]
fn the_attribute_condition_pins_image_swname_and_support() {
    let c = gcp::attribute_condition(DIGEST);
    assert_eq!(
        c,
        format!(
            "assertion.swname == 'CONFIDENTIAL_SPACE' && 'STABLE' in assertion.submods.confidential_space.support_attributes && assertion.submods.container.image_digest == '{DIGEST}'"
        )
    );
}
