//! The SEV-SNP extended report's certificate table.
//!
//! Source: AMD "SEV-ES Guest-Hypervisor Communication Block Standardization" (publication
//! 56421) §4.1.8.1 "SNP Extended Guest Request": the table is a list of entries
//! `{GUID (16 bytes), offset (u32 LE), length (u32 LE)}` ended by an all-zero entry; offsets
//! are from the start of the table. GUIDs (EFI byte order: the first three fields little
//! endian): ARK `c0b406a4-a803-4952-9743-3fb6014cd0ae`, ASK
//! `4ab7b379-bbac-4fe4-a02f-05aef327c782`, VCEK `63da758d-e664-4564-adc5-f4b93be8accd`, VLEK
//! `a8074bc2-a25a-483e-aae6-39c045a0b8a1`, CRL `92f81bc3-5811-4d3d-97ff-d19f88dc67ea`. The
//! configfs-tsm `auxblob` of the `sev_guest` provider carries this same table.

use crate::error::AttestError;

/// Size of one table entry.
pub const ENTRY_LEN: usize = 24;
/// Most entries accepted.
pub const MAX_ENTRIES: usize = 64;

const GUIDS: &[(&str, &str)] = &[
    ("ark", "c0b406a4-a803-4952-9743-3fb6014cd0ae"),
    ("ask", "4ab7b379-bbac-4fe4-a02f-05aef327c782"),
    ("vcek", "63da758d-e664-4564-adc5-f4b93be8accd"),
    ("vlek", "a8074bc2-a25a-483e-aae6-39c045a0b8a1"),
    ("crl", "92f81bc3-5811-4d3d-97ff-d19f88dc67ea"),
];

fn guid_text(b: &[u8; 16], efi: bool) -> String {
    let mut x = *b;
    if efi {
        x[0..4].reverse();
        x[4..6].reverse();
        x[6..8].reverse();
    }
    let h = hex::encode(x);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Encodes a GUID string in EFI byte order.
fn guid_bytes(s: &str) -> [u8; 16] {
    let h: String = s.chars().filter(|c| *c != '-').collect();
    let mut b = [0u8; 16];
    if let Ok(v) = hex::decode(h) {
        b.copy_from_slice(&v[..16]);
    }
    b[0..4].reverse();
    b[4..6].reverse();
    b[6..8].reverse();
    b
}

/// Parses a certificate table into `(kind, bytes)`: kind is `ark`, `ask`, `vcek`, `vlek`, `crl`
/// or the GUID for other entries. GUIDs are recognised in EFI byte order and in big-endian
/// order.
///
/// # Errors
/// [`AttestError::Field`] naming `cert_table` for a missing terminator, too many entries, or
/// an entry pointing outside the table.
pub fn parse(table: &[u8]) -> Result<Vec<(String, Vec<u8>)>, AttestError> {
    let err = |reason: String| AttestError::Field {
        field: "cert_table",
        reason,
    };
    let mut out = Vec::new();
    for i in 0..=MAX_ENTRIES {
        let start = i * ENTRY_LEN;
        let e = table
            .get(start..start + ENTRY_LEN)
            .ok_or_else(|| err(format!("entry {i} is truncated (no terminating entry)")))?;
        if e.iter().all(|&b| b == 0) {
            return Ok(out);
        }
        if i == MAX_ENTRIES {
            break;
        }
        let guid: [u8; 16] = e[..16].try_into().unwrap_or([0; 16]);
        let off = u32::from_le_bytes([e[16], e[17], e[18], e[19]]) as usize;
        let len = u32::from_le_bytes([e[20], e[21], e[22], e[23]]) as usize;
        let data = off
            .checked_add(len)
            .and_then(|end| table.get(off..end))
            .ok_or_else(|| err(format!("entry {i} points outside the table ({off}+{len})")))?;
        let (efi, be) = (guid_text(&guid, true), guid_text(&guid, false));
        let kind = GUIDS
            .iter()
            .find(|(_, g)| *g == efi || *g == be)
            .map_or(efi, |(k, _)| (*k).to_string());
        out.push((kind, data.to_vec()));
    }
    Err(err(format!("more than {MAX_ENTRIES} entries")))
}

/// Builds a certificate table (EFI GUID order) from `(kind, bytes)` entries of known kinds.
pub fn build(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let known: Vec<_> = entries
        .iter()
        .filter_map(|(k, d)| GUIDS.iter().find(|(g, _)| g == k).map(|(_, g)| (*g, *d)))
        .collect();
    let head = (known.len() + 1) * ENTRY_LEN;
    let mut out = vec![0u8; head];
    let mut off = head;
    for (i, (g, d)) in known.iter().enumerate() {
        let e = &mut out[i * ENTRY_LEN..(i + 1) * ENTRY_LEN];
        e[..16].copy_from_slice(&guid_bytes(g));
        e[16..20].copy_from_slice(&(off as u32).to_le_bytes());
        e[20..24].copy_from_slice(&(d.len() as u32).to_le_bytes());
        off += d.len();
    }
    for (_, d) in &known {
        out.extend_from_slice(d);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_round_trips_and_bad_tables_are_errors() {
        let t = build(&[("vcek", b"VCEK-DER"), ("ask", b"ASK"), ("ark", b"ARK!")]);
        let p = parse(&t).unwrap();
        assert_eq!(
            p,
            vec![
                ("vcek".to_string(), b"VCEK-DER".to_vec()),
                ("ask".to_string(), b"ASK".to_vec()),
                ("ark".to_string(), b"ARK!".to_vec())
            ]
        );
        assert!(parse(&t[..30]).is_err(), "no terminator");
        let mut bad = t;
        bad[20] = 0xff; // length of entry 0 past the end
        assert!(parse(&bad).is_err());
        assert!(parse(&[]).is_err());
        assert_eq!(parse(&[0u8; 24]).unwrap(), vec![]);
    }
}
