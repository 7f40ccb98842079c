//! TDX `MRTD` from a TDVF image (TDX Virtual Firmware Design Guide §11 "TDVF metadata"; Intel
//! TDX module ABI: `TDH.MEM.PAGE.ADD` and `TDH.MR.EXTEND`).
//!
//! The image's OVMF GUIDed footer table names the TDVF metadata (GUID
//! `e47a6535-984a-4798-865e-4685a7bf8ec2`, its value the metadata's offset from the end of the
//! image); the metadata is `"TDVF"`, length u32, version u32 (1), section count u32, then per
//! section: `DataOffset` u32, `RawDataSize` u32, `MemoryAddress` u64, `MemoryDataSize` u64,
//! `Type` u32 (0 BFV, 1 CFV, 2 TD_HOB, 3 TempMem, 4 PermMem, 5 Payload, 6 PayloadParam),
//! `Attributes` u32 (bit 0 MR.EXTEND, bit 1 PAGE.AUG).
//!
//! The TDX module folds each operation into `MRTD` (SHA-384 over the sequence): `PAGE.ADD` of
//! a 4 KiB page at GPA g adds a 128-byte block `"MEM.PAGE.ADD"` (zero-padded to 16 bytes), g
//! (u64 LE), zeros; `MR.EXTEND` of a 256-byte chunk at GPA g adds `"MR.EXTEND"` (padded to 16),
//! g, zeros (128 bytes) and then the chunk's 256 bytes. Sections with `PAGE.AUG` are not added;
//! every other page of every section is added; pages of sections with `MR.EXTEND` are extended
//! with the image's bytes (zeros past `RawDataSize`).
//!
//! The order depends on the VMM: [`PageAddOrder::SinglePass`] (each page added, then its 16
//! chunks extended: Linux KVM's `KVM_TDX_INIT_MEM_REGION` with measurement, as upstream QEMU
//! uses it) or [`PageAddOrder::TwoPass`] (every page of every section added, then the extends,
//! as earlier TDX QEMU trees did). This computation is checked here only against its own
//! reading of those documents (no independent MRTD reference was at hand); compare it with a
//! quote from a known deployment before relying on it.

use sha2::{Digest, Sha384};

use crate::MeasureError;

/// The TDVF metadata GUID, in its on-disk (little-endian fields) byte order.
const TDVF_GUID: [u8; 16] = [
    0x35, 0x65, 0x7a, 0xe4, 0x4a, 0x98, 0x98, 0x47, 0x86, 0x5e, 0x46, 0x85, 0xa7, 0xbf, 0x8e, 0xc2,
];
/// The OVMF GUIDed table footer GUID (`96b582de-1fb2-45f7-baea-a366c55a082d`).
const TABLE_FOOTER_GUID: [u8; 16] = [
    0xde, 0x82, 0xb5, 0x96, 0xb2, 0x1f, 0xf7, 0x45, 0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a, 0x08, 0x2d,
];

/// One TDVF section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Section {
    /// Offset of its bytes in the image.
    pub data_offset: u32,
    /// How many bytes the image holds for it.
    pub raw_data_size: u32,
    /// Its guest physical address.
    pub memory_address: u64,
    /// Its size in guest memory.
    pub memory_data_size: u64,
    /// Section type (0 BFV, 1 CFV, 2 TD_HOB, 3 TempMem, ...).
    pub section_type: u32,
    /// Attributes (bit 0 MR.EXTEND, bit 1 PAGE.AUG).
    pub attributes: u32,
}

/// The order of the page additions and extensions (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageAddOrder {
    /// Per page: add, then extend its chunks.
    SinglePass,
    /// All additions, then all extensions.
    TwoPass,
}

fn bad(field: &str, reason: String) -> MeasureError {
    MeasureError::Format {
        input: "TDVF image",
        field: field.into(),
        reason,
    }
}

fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    b.get(o..o + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// The TDVF sections of an image.
///
/// # Errors
/// [`MeasureError::Format`] when the image has no GUIDed footer table, no TDVF entry, or a
/// malformed metadata block.
pub fn sections(image: &[u8]) -> Result<Vec<Section>, MeasureError> {
    // The footer table ends 0x20 bytes before the end: ... entries ..., size u16, GUID.
    let n = image.len();
    let footer = n
        .checked_sub(0x20 + 18)
        .ok_or_else(|| bad("size", format!("{n} bytes")))?;
    if image[footer + 2..footer + 18] != TABLE_FOOTER_GUID {
        return Err(bad(
            "GUIDed table footer",
            "absent (not an OVMF image)".into(),
        ));
    }
    let table_len = usize::from(u16::from_le_bytes([image[footer], image[footer + 1]]));
    let start = (footer + 18)
        .checked_sub(table_len)
        .ok_or_else(|| bad("GUIDed table", "length past the start".into()))?;
    // Entries are walked backwards: data, length u16, GUID.
    let mut at = footer;
    let mut meta_offset = None;
    while at >= start + 18 {
        let len = usize::from(u16::from_le_bytes([image[at - 18], image[at - 17]]));
        let guid = &image[at - 16..at];
        if len < 18 || at < len {
            return Err(bad("GUIDed table", "entry length out of range".into()));
        }
        if guid == TDVF_GUID {
            let v = u32_at(image, at - len).ok_or_else(|| bad("TDVF entry", "short".into()))?;
            meta_offset = Some(v as usize);
            break;
        }
        at -= len;
    }
    let off =
        meta_offset.ok_or_else(|| bad("TDVF metadata", "no TDVF entry in the table".into()))?;
    let m = n
        .checked_sub(off)
        .ok_or_else(|| bad("TDVF metadata offset", format!("{off} past the image")))?;
    if image.get(m..m + 4) != Some(b"TDVF") {
        return Err(bad("TDVF metadata", "signature is not TDVF".into()));
    }
    let count = u32_at(image, m + 12).unwrap_or(0) as usize;
    if count > 64 {
        return Err(bad("TDVF metadata", format!("{count} sections")));
    }
    (0..count)
        .map(|k| {
            let o = m + 16 + 32 * k;
            let s = image
                .get(o..o + 32)
                .ok_or_else(|| bad("TDVF section", format!("{k} past the image")))?;
            let u64_at = |p: usize| u64::from_le_bytes(s[p..p + 8].try_into().unwrap_or([0; 8]));
            Ok(Section {
                data_offset: u32_at(s, 0).unwrap_or(0),
                raw_data_size: u32_at(s, 4).unwrap_or(0),
                memory_address: u64_at(8),
                memory_data_size: u64_at(16),
                section_type: u32_at(s, 24).unwrap_or(0),
                attributes: u32_at(s, 28).unwrap_or(0),
            })
        })
        .collect()
}

/// The largest section [`mrtd`] accepts (256 MiB).
pub const MAX_SECTION: u64 = 256 << 20;

fn block(tag: &[u8], gpa: u64) -> [u8; 128] {
    let mut b = [0u8; 128];
    b[..tag.len()].copy_from_slice(tag);
    b[16..24].copy_from_slice(&gpa.to_le_bytes());
    b
}

/// `MRTD` (48 bytes) of a TDVF image.
///
/// # Errors
/// As [`sections`]; [`MeasureError::Format`] for a section not page-aligned or whose data lies
/// past the image.
pub fn mrtd(image: &[u8], order: PageAddOrder) -> Result<[u8; 48], MeasureError> {
    let secs = sections(image)?;
    let mut h = Sha384::new();
    let mut extends: Vec<(u64, Vec<u8>)> = Vec::new();
    for (k, s) in secs.iter().enumerate() {
        if s.attributes & 0x2 != 0 {
            continue;
        }
        if s.memory_address % 0x1000 != 0 || s.memory_data_size % 0x1000 != 0 {
            return Err(bad("TDVF section", format!("{k} is not 4 KiB aligned")));
        }
        // Firmware sections are megabytes; a larger one is a malformed (or hostile) image, not
        // something to allocate or loop over.
        if s.memory_data_size > MAX_SECTION {
            return Err(bad(
                "TDVF section",
                format!(
                    "{k}: MemoryDataSize {:#x} is more than {MAX_SECTION:#x}",
                    s.memory_data_size
                ),
            ));
        }
        let data = if s.attributes & 0x1 != 0 {
            let (o, r) = (s.data_offset as usize, s.raw_data_size as usize);
            let d = image
                .get(o..o + r)
                .ok_or_else(|| bad("TDVF section", format!("{k}'s data lies past the image")))?;
            let mut v = d.to_vec();
            v.resize(s.memory_data_size as usize, 0);
            Some(v)
        } else {
            None
        };
        for p in 0..(s.memory_data_size / 0x1000) {
            let gpa = s.memory_address + p * 0x1000;
            h.update(block(b"MEM.PAGE.ADD", gpa));
            if let Some(d) = &data {
                for c in 0..16u64 {
                    let off = (p * 0x1000 + c * 0x100) as usize;
                    let chunk = d[off..off + 0x100].to_vec();
                    match order {
                        PageAddOrder::SinglePass => {
                            h.update(block(b"MR.EXTEND", gpa + c * 0x100));
                            h.update(&chunk);
                        }
                        PageAddOrder::TwoPass => extends.push((gpa + c * 0x100, chunk)),
                    }
                }
            }
        }
    }
    for (gpa, chunk) in extends {
        h.update(block(b"MR.EXTEND", gpa));
        h.update(&chunk);
    }
    Ok(h.finalize().into())
}
