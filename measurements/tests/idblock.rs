//! ID block and ID authentication information against the `sev` crate's own test vectors
//! (tests/id-block.rs and tests/measurement/ in the crate's sources in the cargo registry).

mod common;

use base64::Engine;
use ccr_measurements::idblock::{
    IdBlock, auth_info, decode_sig, encode_sig, key_digest, sign, verify,
};
use p384::ecdsa::SigningKey;
use p384::pkcs8::DecodePrivateKey;

/// The string literal assigned to `name` in the sev crate's tests/id-block.rs (backslash line
/// continuations removed).
fn literal(src: &str, name: &str) -> String {
    let at = src
        .find(&format!("let {name}"))
        .unwrap_or_else(|| panic!("no {name}"));
    let rest = &src[at..];
    let start = rest.find('"').unwrap() + 1;
    let end = start + rest[start..].find('"').unwrap();
    rest[start..end]
        .split('\\')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("")
}

fn key(dir: &std::path::Path, name: &str) -> SigningKey {
    let pem = std::fs::read_to_string(dir.join("tests/measurement").join(name)).unwrap();
    SigningKey::from_pkcs8_pem(&pem).unwrap()
}

#[test]
fn id_block_key_digests_and_auth_info_equal_the_sev_crates_vectors() {
    let Some(dir) = common::sev_source("tests/id-block.rs") else {
        return;
    };
    let src = std::fs::read_to_string(dir.join("tests/id-block.rs")).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let ld: [u8; 48] = hex::decode("a14d638341e5674628fe1e02fbedebe5e5ab4faf1dd72d8966068e615bb99efd13d214b35c231715b38e263dc6059745")
        .unwrap()
        .try_into()
        .unwrap();
    // The launch digest sev's test uses is in its source too.
    assert!(src.contains("a14d638341e5674628fe1e02fbedebe5e5ab4faf1dd72d8966068e615bb99efd13d214b35c231715b38e263dc6059745"));
    let block = IdBlock::new(ld);
    assert_eq!(
        b64.encode(block.to_bytes()),
        literal(&src, "expected_id_block")
    );
    let idk = key(&dir, "test_id_key.pem");
    let ak = key(&dir, "test_auth_key.pem");
    assert_eq!(
        b64.encode(key_digest(idk.verifying_key())),
        literal(&src, "expected_id_key_digest")
    );
    assert_eq!(
        b64.encode(key_digest(ak.verifying_key())),
        literal(&src, "expected_auth_key_digest")
    );
    // The auth block from the keys and the pre-generated signatures, byte for byte.
    let sig = |f: &str| {
        let b = std::fs::read(dir.join("tests/measurement").join(f)).unwrap();
        encode_sig(&decode_sig(&b).unwrap())
    };
    let info = auth_info(
        &sig("test_id_sig.bin"),
        idk.verifying_key(),
        &sig("test_auth_sig.bin"),
        ak.verifying_key(),
    );
    assert_eq!(b64.encode(&info), literal(&src, "expected_auth_block"));
}

#[test]
fn signed_blocks_verify_and_a_changed_byte_does_not() {
    let Some(dir) = common::sev_source("tests/id-block.rs") else {
        return;
    };
    let idk = key(&dir, "test_id_key.pem");
    let ak = key(&dir, "test_auth_key.pem");
    let s = sign(&IdBlock::new([7u8; 48]), &idk, &ak);
    verify(&s.id_block, &s.auth_info).unwrap();
    assert_eq!(s.id_key_digest, key_digest(idk.verifying_key()));
    let mut block = s.id_block;
    block[0] ^= 1;
    let e = verify(&block, &s.auth_info).unwrap_err().to_string();
    assert!(e.contains("ID_BLOCK_SIG"), "{e}");
    let mut info = s.auth_info.clone();
    info[0x300] ^= 1; // inside ID_KEY
    assert!(verify(&s.id_block, &info).is_err());
}
