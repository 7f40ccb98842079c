//! Interop with Google Tink (Python): the same raw key and associated data open either way.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::process::Command;

use common::*;
use sha2::Digest;

fn tink(args: &[&str]) {
    let o = Command::new("python3")
        .arg(repo_root().join("tests/py/tink_interop.py"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "tink {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn plaintext() -> Vec<u8> {
    // Three segments: crosses the first-segment and a later segment boundary.
    (0..2_500_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect()
}

#[test]
fn file_sealed_by_ccr_opens_in_python_tink() {
    if !python_ready() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let key = d.path().join("k.dek");
    ccr_ok(&[], &["keys", "generate", key.to_str().unwrap()]);
    let src = d.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("blob.bin"), plaintext()).unwrap();
    let img = d.path().join("img");
    ccr_ok(
        &[],
        &[
            "dataset",
            "seal",
            "--id",
            "ds-1",
            "--kid",
            "k",
            "--key",
            key.to_str().unwrap(),
            src.to_str().unwrap(),
            img.to_str().unwrap(),
        ],
    );
    let out = d.path().join("py.out");
    tink(&[
        "open",
        key.to_str().unwrap(),
        "ds-1/blob.bin",
        img.join("data/blob.bin").to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(out).unwrap(), plaintext());
}

#[test]
fn file_sealed_by_python_tink_opens_with_ccr_dataset_open() {
    if !python_ready() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let key = d.path().join("k.dek");
    ccr_ok(&[], &["keys", "generate", key.to_str().unwrap()]);
    let pt = d.path().join("pt.bin");
    std::fs::write(&pt, plaintext()).unwrap();
    let img = d.path().join("img");
    std::fs::create_dir_all(img.join("data")).unwrap();
    let ct = img.join("data/blob.bin");
    tink(&[
        "seal",
        key.to_str().unwrap(),
        "ds-1/blob.bin",
        pt.to_str().unwrap(),
        ct.to_str().unwrap(),
    ]);
    // The manifest a data provider's own tooling would write beside Tink's ciphertext.
    let c = std::fs::read(&ct).unwrap();
    let manifest = serde_json::json!({
        "format": "ccr-sealed-image/1", "dataset_id": "ds-1", "kid": "k",
        "aead": "AES256_GCM_HKDF_1MB", "segment_size": 1048576,
        "files": [{"path": "blob.bin", "plaintext_size": plaintext().len(),
                   "ciphertext_size": c.len(), "ciphertext_sha256": hex::encode(sha2::Sha256::digest(&c))}]
    });
    std::fs::write(img.join("manifest.json"), manifest.to_string()).unwrap();
    let out = d.path().join("opened");
    ccr_ok(
        &[],
        &[
            "dataset",
            "open",
            "--id",
            "ds-1",
            "--key",
            key.to_str().unwrap(),
            img.to_str().unwrap(),
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(std::fs::read(out.join("blob.bin")).unwrap(), plaintext());
    // And with the wrong dataset id in the associated data it does not open.
    let bad = Command::new(ccr())
        .args([
            "dataset",
            "open",
            "--id",
            "ds-2",
            "--key",
            key.to_str().unwrap(),
            img.to_str().unwrap(),
        ])
        .arg(d.path().join("bad"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(!d.path().join("bad").exists());
}
