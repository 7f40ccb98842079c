//! SEV-SNP ID block and ID authentication information (AMD SEV-SNP ABI spec, §8.17
//! `SNP_LAUNCH_FINISH`, tables "ID_BLOCK" and "ID_AUTH_INFO"): what a guest owner signs so that
//! the firmware refuses to launch any other image, and whose key digests the report carries
//! (`ID_KEY_DIGEST` at 0x110, `AUTHOR_KEY_DIGEST` at 0x140).
//!
//! - `ID_BLOCK` (0x60 bytes, little-endian): `LD` [48] (the expected launch digest),
//!   `FAMILY_ID` [16], `IMAGE_ID` [16], `VERSION` u32 (1), `GUEST_SVN` u32, `POLICY` u64.
//! - `ID_AUTH_INFO` (0x1000 bytes): `ID_KEY_ALGO` u32 and `AUTH_KEY_ALGO` u32 at 0x0/0x4 (1 =
//!   ECDSA P-384 with SHA-384), `ID_BLOCK_SIG` at 0x40, `ID_KEY` at 0x240, `ID_KEY_SIG` at 0x680,
//!   `AUTHOR_KEY` at 0x880, the rest reserved (zero).
//! - A signature (0x200 bytes): `R` and `S` little-endian, each zero-extended to 72 bytes, then
//!   reserved. A public key (0x404 bytes): `CURVE` u32 (2 = P-384), `QX` and `QY` little-endian
//!   in 72 bytes each, then reserved.
//! - `ID_BLOCK_SIG` signs the ID block with the ID key; `ID_KEY_SIG` signs the 0x404-byte ID key
//!   with the author key; a key digest is SHA-384 of the 0x404-byte key.

use p384::ecdsa::signature::{Signer, Verifier};
use p384::ecdsa::{Signature, SigningKey, VerifyingKey};
use sha2::{Digest, Sha384};

use crate::MeasureError;

/// `ID_BLOCK` size.
pub const ID_BLOCK_LEN: usize = 0x60;
/// `ID_AUTH_INFO` size.
pub const ID_AUTH_LEN: usize = 0x1000;
/// A public key's size.
pub const KEY_LEN: usize = 0x404;
/// A signature's size.
pub const SIG_LEN: usize = 0x200;
/// The policy sev-snp tooling uses by default (SMT allowed, ABI major 0 minor 0, bit 17 set).
pub const DEFAULT_POLICY: u64 = 0x30000;

/// The fields of an ID block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdBlock {
    /// The launch digest the image must have.
    pub ld: [u8; 48],
    /// `FAMILY_ID`.
    pub family_id: [u8; 16],
    /// `IMAGE_ID`.
    pub image_id: [u8; 16],
    /// `GUEST_SVN`.
    pub guest_svn: u32,
    /// `POLICY` (the guest policy the launch must use).
    pub policy: u64,
}

impl IdBlock {
    /// A block for launch digest `ld` with zero ids, SVN 0 and [`DEFAULT_POLICY`].
    pub fn new(ld: [u8; 48]) -> Self {
        Self {
            ld,
            family_id: [0; 16],
            image_id: [0; 16],
            guest_svn: 0,
            policy: DEFAULT_POLICY,
        }
    }

    /// The 0x60 bytes.
    pub fn to_bytes(&self) -> [u8; ID_BLOCK_LEN] {
        let mut b = [0u8; ID_BLOCK_LEN];
        b[..48].copy_from_slice(&self.ld);
        b[48..64].copy_from_slice(&self.family_id);
        b[64..80].copy_from_slice(&self.image_id);
        b[80..84].copy_from_slice(&1u32.to_le_bytes());
        b[84..88].copy_from_slice(&self.guest_svn.to_le_bytes());
        b[88..96].copy_from_slice(&self.policy.to_le_bytes());
        b
    }
}

fn le72(be: &[u8]) -> [u8; 72] {
    let mut out = [0u8; 72];
    for (i, b) in be.iter().rev().enumerate() {
        out[i] = *b;
    }
    out
}

/// The 0x404-byte SEV encoding of a P-384 public key.
pub fn encode_key(k: &VerifyingKey) -> [u8; KEY_LEN] {
    let p = k.to_encoded_point(false);
    let mut b = [0u8; KEY_LEN];
    b[..4].copy_from_slice(&2u32.to_le_bytes());
    b[4..76].copy_from_slice(&le72(p.x().map(|x| x.as_slice()).unwrap_or(&[])));
    b[76..148].copy_from_slice(&le72(p.y().map(|y| y.as_slice()).unwrap_or(&[])));
    b
}

/// SHA-384 of a key's SEV encoding: `ID_KEY_DIGEST` / `AUTHOR_KEY_DIGEST`.
pub fn key_digest(k: &VerifyingKey) -> [u8; 48] {
    Sha384::digest(encode_key(k)).into()
}

/// The 0x200-byte SEV encoding of a signature.
pub fn encode_sig(s: &Signature) -> [u8; SIG_LEN] {
    let (r, sv) = s.split_bytes();
    let mut b = [0u8; SIG_LEN];
    b[..72].copy_from_slice(&le72(&r));
    b[72..144].copy_from_slice(&le72(&sv));
    b
}

/// Decodes a 0x200-byte SEV signature.
///
/// # Errors
/// [`MeasureError::Format`] when it is short or R/S do not fit P-384.
pub fn decode_sig(b: &[u8]) -> Result<Signature, MeasureError> {
    let bad = |reason: &str| MeasureError::Format {
        input: "SEV signature",
        field: "R/S".into(),
        reason: reason.into(),
    };
    if b.len() < 144 || b[48..72].iter().chain(&b[120..144]).any(|x| *x != 0) {
        return Err(bad("not 0x200 bytes with 48-byte R and S"));
    }
    let be = |s: &[u8]| {
        let mut v: Vec<u8> = s[..48].to_vec();
        v.reverse();
        v
    };
    let mut rs = be(&b[..72]);
    rs.extend(be(&b[72..144]));
    Signature::from_slice(&rs).map_err(|_| bad("R or S out of range"))
}

/// The ID authentication information for `id_block_sig` by `id_key` and `id_key_sig` by
/// `author_key` (0x1000 bytes).
pub fn auth_info(
    id_block_sig: &[u8; SIG_LEN],
    id_key: &VerifyingKey,
    id_key_sig: &[u8; SIG_LEN],
    author_key: &VerifyingKey,
) -> Vec<u8> {
    let mut b = vec![0u8; ID_AUTH_LEN];
    b[0..4].copy_from_slice(&1u32.to_le_bytes());
    b[4..8].copy_from_slice(&1u32.to_le_bytes());
    b[0x40..0x240].copy_from_slice(id_block_sig);
    b[0x240..0x644].copy_from_slice(&encode_key(id_key));
    b[0x680..0x880].copy_from_slice(id_key_sig);
    b[0x880..0xC84].copy_from_slice(&encode_key(author_key));
    b
}

/// What [`sign`] makes: the ID block, its authentication information, and the key digests a
/// report launched with them carries.
#[derive(Debug, Clone)]
pub struct Signed {
    /// `ID_BLOCK`, 0x60 bytes.
    pub id_block: [u8; ID_BLOCK_LEN],
    /// `ID_AUTH_INFO`, 0x1000 bytes.
    pub auth_info: Vec<u8>,
    /// `ID_KEY_DIGEST`.
    pub id_key_digest: [u8; 48],
    /// `AUTHOR_KEY_DIGEST`.
    pub author_key_digest: [u8; 48],
}

/// Signs `block` with `id_key`, and the ID key with `author_key`.
pub fn sign(block: &IdBlock, id_key: &SigningKey, author_key: &SigningKey) -> Signed {
    let id_block = block.to_bytes();
    let idk = *id_key.verifying_key();
    let ak = *author_key.verifying_key();
    let s1: Signature = id_key.sign(&id_block);
    let s2: Signature = author_key.sign(&encode_key(&idk));
    Signed {
        id_block,
        auth_info: auth_info(&encode_sig(&s1), &idk, &encode_sig(&s2), &ak),
        id_key_digest: key_digest(&idk),
        author_key_digest: key_digest(&ak),
    }
}

/// Checks an ID block against its authentication information: both signatures, by the keys
/// the information carries.
///
/// # Errors
/// [`MeasureError::Format`] naming the field that does not verify or decode.
pub fn verify(id_block: &[u8], auth: &[u8]) -> Result<(), MeasureError> {
    let bad = |field: &str, reason: &str| MeasureError::Format {
        input: "ID_AUTH_INFO",
        field: field.into(),
        reason: reason.into(),
    };
    if id_block.len() != ID_BLOCK_LEN || auth.len() != ID_AUTH_LEN {
        return Err(bad("length", "ID_BLOCK is 0x60 bytes, ID_AUTH_INFO 0x1000"));
    }
    let key = |b: &[u8], f: &str| -> Result<VerifyingKey, MeasureError> {
        if u32::from_le_bytes([b[0], b[1], b[2], b[3]]) != 2 {
            return Err(bad(f, "CURVE is not 2 (P-384)"));
        }
        let mut sec1 = vec![4u8];
        for part in [&b[4..76], &b[76..148]] {
            let mut v = part[..48].to_vec();
            v.reverse();
            sec1.extend(v);
        }
        VerifyingKey::from_sec1_bytes(&sec1).map_err(|_| bad(f, "not a P-384 point"))
    };
    let idk = key(&auth[0x240..0x644], "ID_KEY")?;
    let ak = key(&auth[0x880..0xC84], "AUTHOR_KEY")?;
    idk.verify(id_block, &decode_sig(&auth[0x40..0x240])?)
        .map_err(|_| bad("ID_BLOCK_SIG", "does not verify with ID_KEY"))?;
    ak.verify(&auth[0x240..0x644], &decode_sig(&auth[0x680..0x880])?)
        .map_err(|_| bad("ID_KEY_SIG", "does not verify with AUTHOR_KEY"))?;
    Ok(())
}
