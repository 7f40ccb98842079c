//! Key Vault key transfer blobs made independently by Python's `cryptography`
//! (`tests/py/akv_wrap.py`) unwrap in ccr, for the three algorithms, for an `oct-HSM` key and
//! for an `RSA-HSM` key whose derived DEK both sides compute. Skipped, with the reason, when
//! Python's `cryptography` is missing, unless `CCR_REQUIRE_PYTHON=1`.

use std::path::PathBuf;
use std::process::Command;

use ccr_keybroker::akv::{dek_from_rsa_private_key, unwrap_key_hsm};
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};

fn python_ready() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import cryptography"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("CCR_REQUIRE_PYTHON").as_deref() == Ok("1") {
            panic!("CCR_REQUIRE_PYTHON=1 but python3 cannot import cryptography");
        }
        eprintln!(
            "skipping: python3 cannot import cryptography (pip install -r tests/requirements.txt)"
        );
    }
    ok
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/py/akv_wrap.py")
}

fn wrap(
    pubkey: &std::path::Path,
    alg: &str,
    target: &[u8],
    derive: Option<(&str, &str)>,
) -> Vec<String> {
    let mut c = Command::new("python3");
    c.arg(script())
        .arg(pubkey)
        .arg(alg)
        .arg(hex::encode(target));
    if let Some((salt, label)) = derive {
        c.arg(salt).arg(label);
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn python_made_key_transfer_blobs_unwrap() {
    if !python_ready() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    // The runtime's transfer key (RSA-2048: the RSA part is the first 256 bytes).
    let transfer = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
    let pem = d.path().join("transfer.pub.pem");
    transfer
        .to_public_key()
        .write_public_key_pem_file(&pem, LineEnding::LF)
        .unwrap();
    let dek = [0x42u8; 32];
    for alg in [
        "CKM_RSA_AES_KEY_WRAP",
        "RSA_AES_KEY_WRAP_256",
        "RSA_AES_KEY_WRAP_384",
    ] {
        let lines = wrap(&pem, alg, &dek, None);
        let got = unwrap_key_hsm(&lines[0], &transfer).unwrap();
        assert_eq!(&got[..], &dek, "{alg}");
        // The wrong transfer key.
        let other = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
        let e = unwrap_key_hsm(&lines[0], &other).unwrap_err();
        assert!(e.to_string().contains("RSA-OAEP"), "{e}");
    }
    // A tampered AES-KWP part.
    let lines = wrap(&pem, "CKM_RSA_AES_KEY_WRAP", &dek, None);
    let mut blob: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &lines[0])
            .unwrap(),
    )
    .unwrap();
    let mut ct = base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        blob["ciphertext"].as_str().unwrap(),
    )
    .unwrap();
    let n = ct.len();
    ct[n - 1] ^= 1;
    blob["ciphertext"] =
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &ct).into();
    let e = unwrap_key_hsm(
        &base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            blob.to_string(),
        ),
        &transfer,
    )
    .unwrap_err();
    assert!(e.to_string().contains("integrity"), "{e}");

    // RSA-HSM: the released key is an RSA private key (PKCS#8 DER); the DEK is derived from it.
    let hsm_key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
    let der = hsm_key.to_pkcs8_der().unwrap();
    let salt = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let label = "Symmetric Encryption Key";
    let lines = wrap(
        &pem,
        "CKM_RSA_AES_KEY_WRAP",
        der.as_bytes(),
        Some((salt, label)),
    );
    let released = unwrap_key_hsm(&lines[0], &transfer).unwrap();
    assert_eq!(&released[..], der.as_bytes());
    let ours =
        dek_from_rsa_private_key(&released, &hex::decode(salt).unwrap(), label.as_bytes()).unwrap();
    assert_eq!(
        hex::encode(*ours),
        lines[1],
        "HKDF over d agrees with Python's"
    );
}
