//! The LUKS2 header: two binary headers and their JSON metadata (LUKS2 On-Disk Format
//! Specification, version 1.1.x, §2–3). Parsing works on bytes and never panics (fuzzed:
//! `fuzz/fuzz_targets/luks2_header.rs`).
//!
//! Binary header (4096 bytes, big-endian): `magic[6]` (`LUKS\xba\xbe` primary, `SKUL\xba\xbe`
//! secondary), `version` u16 (2), `hdr_size` u64 (binary header plus JSON area), `seqid` u64,
//! `label[48]`, `checksum_alg[32]`, `salt[64]`, `uuid[40]`, `subsystem[48]`, `hdr_offset` u64,
//! padding, `csum[64]` at 448, padding to 4096. The checksum is `checksum_alg` (sha256, sha1 or
//! sha512) over the `hdr_size` bytes of binary header and JSON area with `csum` zeroed. The
//! secondary header starts at the primary's `hdr_size` (16 KiB to 4 MiB).

use std::collections::BTreeMap;

use serde::Deserialize;
use sha2::Digest as _;

use super::Luks2Error;

/// Length of a binary header.
pub const BIN_HEADER_LEN: usize = 4096;
/// Where a secondary header may start (the spec's allowed `hdr_size` values).
pub const SECONDARY_OFFSETS: [u64; 9] = [
    0x4000, 0x8000, 0x1_0000, 0x2_0000, 0x4_0000, 0x8_0000, 0x10_0000, 0x20_0000, 0x40_0000,
];
const MAGIC_PRIMARY: &[u8; 6] = b"LUKS\xba\xbe";
const MAGIC_SECONDARY: &[u8; 6] = b"SKUL\xba\xbe";
const CSUM_AT: usize = 448;
const CSUM_LEN: usize = 64;

/// A checked binary header and its metadata.
#[derive(Debug, Clone)]
pub struct Header {
    /// Which copy this is: `primary` or `secondary`.
    pub which: &'static str,
    /// Binary header plus JSON area, bytes.
    pub hdr_size: u64,
    /// Sequence number (the newer copy has the larger).
    pub seqid: u64,
    /// The volume's UUID.
    pub uuid: String,
    /// The label (may be empty).
    pub label: String,
    /// The checksum algorithm.
    pub checksum_alg: String,
    /// The JSON metadata.
    pub metadata: Metadata,
}

/// The first 8 bytes of a LUKS device: its magic and version, to tell LUKS1 from LUKS2.
pub fn version(bytes: &[u8]) -> Option<u16> {
    let m = bytes.get(..6)?;
    if m != MAGIC_PRIMARY && m != MAGIC_SECONDARY {
        return None;
    }
    Some(u16::from_be_bytes([*bytes.get(6)?, *bytes.get(7)?]))
}

fn be64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(x)
}

/// A NUL-terminated text field.
fn text(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// Parses and checks one header copy: `area` holds at least its binary header and, when its
/// `hdr_size` says so, its JSON area (`area[..hdr_size]`).
///
/// # Errors
/// [`Luks2Error::Header`] naming the copy and the field: magic, version, size, checksum
/// algorithm, checksum, JSON.
pub fn parse(area: &[u8], secondary: bool) -> Result<Header, Luks2Error> {
    let which = if secondary { "secondary" } else { "primary" };
    let bad = |what: String| Luks2Error::Header { which, what };
    if area.len() < BIN_HEADER_LEN {
        return Err(bad(format!("{} bytes, shorter than a header", area.len())));
    }
    let magic = if secondary {
        MAGIC_SECONDARY
    } else {
        MAGIC_PRIMARY
    };
    if &area[..6] != magic {
        return Err(bad("magic is not LUKS2's".into()));
    }
    let version = u16::from_be_bytes([area[6], area[7]]);
    if version != 2 {
        return Err(bad(format!("version {version}, not 2")));
    }
    let hdr_size = be64(area, 8);
    if !SECONDARY_OFFSETS.contains(&hdr_size) {
        return Err(bad(format!("hdr_size {hdr_size} is not one LUKS2 allows")));
    }
    let len = hdr_size as usize;
    if area.len() < len {
        return Err(bad(format!(
            "hdr_size {hdr_size} is past the end of the image ({} bytes)",
            area.len()
        )));
    }
    let checksum_alg = text(&area[72..104]);
    let mut copy = area[..len].to_vec();
    copy[CSUM_AT..CSUM_AT + CSUM_LEN].fill(0);
    let computed: Vec<u8> = match checksum_alg.as_str() {
        "sha256" => sha2::Sha256::digest(&copy).to_vec(),
        "sha512" => sha2::Sha512::digest(&copy).to_vec(),
        "sha1" => sha1::Sha1::digest(&copy).to_vec(),
        other => {
            return Err(bad(format!(
                "checksum algorithm `{other}` is not supported"
            )));
        }
    };
    if area[CSUM_AT..CSUM_AT + computed.len()] != computed[..] {
        return Err(bad(format!("{checksum_alg} checksum does not match")));
    }
    let json = &area[BIN_HEADER_LEN..len];
    let end = json.iter().position(|&c| c == 0).unwrap_or(json.len());
    let metadata: Metadata =
        serde_json::from_slice(&json[..end]).map_err(|e| bad(format!("JSON metadata: {e}")))?;
    Ok(Header {
        which,
        hdr_size,
        seqid: be64(area, 16),
        uuid: text(&area[168..208]),
        label: text(&area[24..72]),
        checksum_alg,
        metadata,
    })
}

/// The LUKS2 JSON metadata (spec §3): keyslots, segments, digests and config, keyed by their
/// decimal ids.
#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    /// Keyslots by id.
    pub keyslots: BTreeMap<String, Keyslot>,
    /// Data segments by id.
    pub segments: BTreeMap<String, Segment>,
    /// Volume-key digests by id.
    pub digests: BTreeMap<String, Digest>,
    /// Sizes and requirements.
    pub config: Config,
    /// Tokens (not used: only the key file opens a keyslot).
    #[serde(default)]
    pub tokens: BTreeMap<String, serde_json::Value>,
}

/// A keyslot (spec §3.2).
#[derive(Debug, Clone, Deserialize)]
pub struct Keyslot {
    /// `luks2` (a `reencrypt` keyslot belongs to an unfinished reencryption).
    #[serde(rename = "type")]
    pub kind: String,
    /// The volume key's size in bytes.
    pub key_size: usize,
    /// Where the encrypted, AF-split key material is.
    pub area: Area,
    /// The KDF that turns the key file into the area key.
    pub kdf: Kdf,
    /// The anti-forensic splitter.
    pub af: Af,
}

/// A keyslot's binary area.
#[derive(Debug, Clone, Deserialize)]
pub struct Area {
    /// `raw`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Byte offset from the start of the device (decimal string).
    pub offset: String,
    /// Byte length (decimal string).
    pub size: String,
    /// The area's cipher, e.g. `aes-xts-plain64` (512-byte sectors from the area's start).
    pub encryption: String,
    /// The area key's size in bytes.
    pub key_size: usize,
}

/// A keyslot's KDF (spec §3.2.1).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type")]
pub enum Kdf {
    /// PBKDF2 (RFC 8018 §5.2) with HMAC-`hash`.
    #[serde(rename = "pbkdf2")]
    Pbkdf2 {
        /// `sha1`, `sha256` or `sha512`.
        hash: String,
        /// Iterations.
        iterations: u32,
        /// Base64 salt.
        salt: String,
    },
    /// Argon2i (RFC 9106).
    #[serde(rename = "argon2i")]
    Argon2i {
        /// Passes.
        time: u32,
        /// Memory, KiB.
        memory: u32,
        /// Lanes.
        cpus: u32,
        /// Base64 salt.
        salt: String,
    },
    /// Argon2id (RFC 9106), cryptsetup's default.
    #[serde(rename = "argon2id")]
    Argon2id {
        /// Passes.
        time: u32,
        /// Memory, KiB.
        memory: u32,
        /// Lanes.
        cpus: u32,
        /// Base64 salt.
        salt: String,
    },
}

/// The anti-forensic splitter (LUKS1 spec §2.4, kept by LUKS2).
#[derive(Debug, Clone, Deserialize)]
pub struct Af {
    /// `luks1`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Stripes (4000).
    pub stripes: u32,
    /// The diffusion hash.
    pub hash: String,
}

/// A data segment (spec §3.3).
#[derive(Debug, Clone, Deserialize)]
pub struct Segment {
    /// `crypt` (a `linear` segment is plaintext: refused).
    #[serde(rename = "type")]
    pub kind: String,
    /// Byte offset of the segment on the device (decimal string).
    pub offset: String,
    /// Byte length (decimal string) or `dynamic` (to the end of the device).
    pub size: String,
    /// Added to the sector number for the IV (decimal string).
    #[serde(default = "zero")]
    pub iv_tweak: String,
    /// The cipher, e.g. `aes-xts-plain64`.
    #[serde(default)]
    pub encryption: String,
    /// Encryption sector size in bytes (512 to 4096).
    #[serde(default = "sector_512")]
    pub sector_size: u64,
    /// Authenticated encryption (dm-integrity): refused when present.
    #[serde(default)]
    pub integrity: Option<serde_json::Value>,
    /// Flags (e.g. `backup-*` during reencryption).
    #[serde(default)]
    pub flags: Vec<String>,
}

fn zero() -> String {
    "0".into()
}

fn sector_512() -> u64 {
    512
}

/// A volume-key digest (spec §3.4).
#[derive(Debug, Clone, Deserialize)]
pub struct Digest {
    /// `pbkdf2`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Keyslot ids this digest checks.
    pub keyslots: Vec<String>,
    /// Segment ids this digest's key opens.
    pub segments: Vec<String>,
    /// HMAC hash.
    pub hash: String,
    /// Iterations.
    pub iterations: u32,
    /// Base64 salt.
    pub salt: String,
    /// Base64 digest.
    pub digest: String,
}

/// The `config` object (spec §3.5).
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// JSON area size (decimal string).
    pub json_size: String,
    /// Keyslots area size (decimal string).
    pub keyslots_size: String,
    /// Requirements a reader must meet (e.g. `online-reencrypt`): any is refused.
    #[serde(default)]
    pub requirements: Option<serde_json::Value>,
}

/// A decimal-string number of the metadata, named for errors.
///
/// # Errors
/// [`Luks2Error::Metadata`] naming the field.
pub fn number(s: &str, field: &str) -> Result<u64, Luks2Error> {
    s.parse()
        .map_err(|_| Luks2Error::Metadata(format!("{field} `{s}` is not a number")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(json: &str, hdr_size: u64, alg: &str) -> Vec<u8> {
        let mut b = vec![0u8; hdr_size as usize];
        b[..6].copy_from_slice(MAGIC_PRIMARY);
        b[6..8].copy_from_slice(&2u16.to_be_bytes());
        b[8..16].copy_from_slice(&hdr_size.to_be_bytes());
        b[16..24].copy_from_slice(&7u64.to_be_bytes());
        b[72..72 + alg.len()].copy_from_slice(alg.as_bytes());
        b[BIN_HEADER_LEN..BIN_HEADER_LEN + json.len()].copy_from_slice(json.as_bytes());
        let sum = sha2::Sha256::digest(&b);
        b[CSUM_AT..CSUM_AT + 32].copy_from_slice(&sum);
        b
    }

    const JSON: &str = r#"{"keyslots":{},"segments":{},"digests":{},"config":{"json_size":"12288","keyslots_size":"0"}}"#;

    #[test]
    fn a_header_checks_its_checksum_and_reads_its_metadata() {
        let b = header(JSON, 0x4000, "sha256");
        let h = parse(&b, false).unwrap();
        assert_eq!((h.hdr_size, h.seqid), (0x4000, 7));
        assert_eq!(h.metadata.config.json_size, "12288");
        let mut flipped = b.clone();
        flipped[BIN_HEADER_LEN + 3] ^= 1;
        let e = parse(&flipped, false).unwrap_err().to_string();
        assert!(e.contains("primary") && e.contains("checksum"), "{e}");
        assert!(parse(&b, true).unwrap_err().to_string().contains("magic"));
        let short = parse(&b[..5000], false).unwrap_err().to_string();
        assert!(short.contains("past the end"), "{short}");
        assert_eq!(version(&b), Some(2));
    }
}
