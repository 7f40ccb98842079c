//! The TDX event log (the ACPI CCEL table's log area) and RTMR replay.
//!
//! Format: the TCG PC Client Platform Firmware Profile's crypto-agile event log (TCG PFP spec
//! §10.2): a first event in the SHA-1 layout (`TCG_PCClientPCREvent`: `pcrIndex` u32,
//! `eventType` u32, `digest` [20], `eventSize` u32, `event`) carrying the `Spec ID Event03`
//! structure that lists the digest algorithms and their sizes, then `TCG_PCR_EVENT2` events:
//! `pcrIndex` u32, `eventType` u32, `digests` (`count` u32, then `count` × (`algorithmId` u16,
//! digest of that algorithm's size)), `eventSize` u32, `event`. All little-endian. The log ends
//! at the end of the area or where the next event's header is all `0xFF` or all zero (unused
//! space).
//!
//! On TDX (Intel TDX Guest-Host-Communication Interface and the UEFI CC measurement protocol),
//! `pcrIndex` is the measurement register index: 0 = MRTD, 1–4 = RTMR[0]–RTMR[3]. Each event
//! extends its RTMR: `RTMR = SHA-384(RTMR || digest)`, starting from 48 zero bytes.

use sha2::{Digest, Sha384};

use crate::MeasureError;

/// TCG algorithm id of SHA-384 (TCG Algorithm Registry).
pub const TPM_ALG_SHA384: u16 = 0x000C;

/// One event of the log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Event {
    /// `pcrIndex`: on TDX the MR index (0 MRTD, 1–4 RTMR[0]–RTMR[3]).
    pub index: u32,
    /// `eventType`.
    pub event_type: u32,
    /// The event type's TCG name (`EV_EFI_ACTION`, …), or `0x…` for an unknown type.
    pub type_name: String,
    /// `(algorithmId, digest)`.
    #[serde(serialize_with = "hex_digests")]
    pub digests: Vec<(u16, Vec<u8>)>,
    /// The event data.
    #[serde(serialize_with = "hex_bytes")]
    pub data: Vec<u8>,
}

fn hex_digests<S: serde::Serializer>(d: &[(u16, Vec<u8>)], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(d.len()))?;
    for (alg, v) in d {
        seq.serialize_element(&serde_json::json!({"alg": alg, "digest": hex::encode(v)}))?;
    }
    seq.end()
}

fn hex_bytes<S: serde::Serializer>(d: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(d))
}

impl Event {
    /// This event's SHA-384 digest, if it has one.
    pub fn sha384(&self) -> Option<&[u8]> {
        self.digests
            .iter()
            .find(|(a, _)| *a == TPM_ALG_SHA384)
            .map(|(_, d)| d.as_slice())
    }
}

/// The TCG name of an event type (TCG PC Client PFP spec §10.4.1, and the UEFI ones).
pub fn type_name(t: u32) -> String {
    let n = match t {
        0x0 => "EV_PREBOOT_CERT",
        0x1 => "EV_POST_CODE",
        0x2 => "EV_UNUSED",
        0x3 => "EV_NO_ACTION",
        0x4 => "EV_SEPARATOR",
        0x5 => "EV_ACTION",
        0x6 => "EV_EVENT_TAG",
        0x7 => "EV_S_CRTM_CONTENTS",
        0x8 => "EV_S_CRTM_VERSION",
        0x9 => "EV_CPU_MICROCODE",
        0xA => "EV_PLATFORM_CONFIG_FLAGS",
        0xB => "EV_TABLE_OF_DEVICES",
        0xC => "EV_COMPACT_HASH",
        0xD => "EV_IPL",
        0xE => "EV_IPL_PARTITION_DATA",
        0xF => "EV_NONHOST_CODE",
        0x10 => "EV_NONHOST_CONFIG",
        0x11 => "EV_NONHOST_INFO",
        0x12 => "EV_OMIT_BOOT_DEVICE_EVENTS",
        0x8000_0000 => "EV_EFI_EVENT_BASE",
        0x8000_0001 => "EV_EFI_VARIABLE_DRIVER_CONFIG",
        0x8000_0002 => "EV_EFI_VARIABLE_BOOT",
        0x8000_0003 => "EV_EFI_BOOT_SERVICES_APPLICATION",
        0x8000_0004 => "EV_EFI_BOOT_SERVICES_DRIVER",
        0x8000_0005 => "EV_EFI_RUNTIME_SERVICES_DRIVER",
        0x8000_0006 => "EV_EFI_GPT_EVENT",
        0x8000_0007 => "EV_EFI_ACTION",
        0x8000_0008 => "EV_EFI_PLATFORM_FIRMWARE_BLOB",
        0x8000_0009 => "EV_EFI_HANDOFF_TABLES",
        0x8000_000A => "EV_EFI_PLATFORM_FIRMWARE_BLOB2",
        0x8000_000B => "EV_EFI_HANDOFF_TABLES2",
        0x8000_000C => "EV_EFI_VARIABLE_BOOT2",
        0x8000_000D => "EV_EFI_GPT_EVENT2",
        0x8000_0010 => "EV_EFI_HCRTM_EVENT",
        0x8000_00E0 => "EV_EFI_VARIABLE_AUTHORITY",
        0x8000_00E1 => "EV_EFI_SPDM_FIRMWARE_BLOB",
        0x8000_00E2 => "EV_EFI_SPDM_FIRMWARE_CONFIG",
        _ => return format!("0x{t:08x}"),
    };
    n.to_string()
}

/// A parsed event log: the algorithms of the Spec ID event and the events after it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EventLog {
    /// `(algorithmId, digestSize)` from `Spec ID Event03`.
    pub algorithms: Vec<(u16, u16)>,
    /// The `TCG_PCR_EVENT2` events, in order.
    pub events: Vec<Event>,
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], MeasureError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.b.len())
            .ok_or_else(|| MeasureError::Format {
                input: "event log",
                field: format!("{what} at offset {}", self.at),
                reason: format!(
                    "needs {n} bytes, {} left",
                    self.b.len().saturating_sub(self.at)
                ),
            })?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u32(&mut self, what: &str) -> Result<u32, MeasureError> {
        let s = self.take(4, what)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn u16(&mut self, what: &str) -> Result<u16, MeasureError> {
        let s = self.take(2, what)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }
}

/// Parses a crypto-agile event log (the CCEL log area).
///
/// # Errors
/// [`MeasureError::Format`] naming the field and offset: a first event that is not a
/// `Spec ID Event03`, a digest of an algorithm the Spec ID event does not list, a length past
/// the end of the area.
pub fn parse(b: &[u8]) -> Result<EventLog, MeasureError> {
    let bad = |field: String, reason: String| MeasureError::Format {
        input: "event log",
        field,
        reason,
    };
    let mut r = Reader { b, at: 0 };
    // The first event, SHA-1 layout.
    let _pcr = r.u32("pcrIndex")?;
    let etype = r.u32("eventType")?;
    r.take(20, "digest")?;
    let size = r.u32("eventSize")? as usize;
    let spec = r.take(size, "Spec ID event")?;
    if etype != 0x3 || spec.len() < 28 || &spec[..16] != b"Spec ID Event03\0" {
        return Err(bad(
            "first event".into(),
            "not an EV_NO_ACTION `Spec ID Event03` (not a crypto-agile log)".into(),
        ));
    }
    // platformClass u32, specVersionMinor u8, Major u8, errata u8, uintnSize u8,
    // numberOfAlgorithms u32, then (algorithmId u16, digestSize u16) each.
    let n = u32::from_le_bytes([spec[24], spec[25], spec[26], spec[27]]) as usize;
    if spec.len() < 28 + 4 * n {
        return Err(bad(
            "Spec ID event numberOfAlgorithms".into(),
            format!("{n} algorithms do not fit in {} bytes", spec.len()),
        ));
    }
    let algorithms: Vec<(u16, u16)> = (0..n)
        .map(|i| {
            let o = 28 + 4 * i;
            (
                u16::from_le_bytes([spec[o], spec[o + 1]]),
                u16::from_le_bytes([spec[o + 2], spec[o + 3]]),
            )
        })
        .collect();
    let mut events = Vec::new();
    while b.len() - r.at >= 8 {
        let head = &b[r.at..r.at + 8];
        if head.iter().all(|&x| x == 0xFF) || head.iter().all(|&x| x == 0) {
            break;
        }
        let start = r.at;
        let index = r.u32("pcrIndex")?;
        let event_type = r.u32("eventType")?;
        let count = r.u32("digests.count")? as usize;
        if count > algorithms.len() {
            return Err(bad(
                format!("event at offset {start} digests.count"),
                format!(
                    "{count}, the Spec ID event lists {} algorithms",
                    algorithms.len()
                ),
            ));
        }
        let mut digests = Vec::with_capacity(count);
        for _ in 0..count {
            let alg = r.u16("algorithmId")?;
            let len = algorithms
                .iter()
                .find(|(a, _)| *a == alg)
                .map(|(_, l)| *l as usize)
                .ok_or_else(|| {
                    bad(
                        format!("event at offset {start} algorithmId"),
                        format!("0x{alg:04x} is not in the Spec ID event"),
                    )
                })?;
            digests.push((alg, r.take(len, "digest")?.to_vec()));
        }
        let size = r.u32("eventSize")? as usize;
        let data = r.take(size, "event data")?.to_vec();
        events.push(Event {
            index,
            event_type,
            type_name: type_name(event_type),
            digests,
            data,
        });
    }
    Ok(EventLog { algorithms, events })
}

/// The four RTMRs after replaying `events` (MR index 1–4 → RTMR 0–3): each starts at 48 zero
/// bytes and is extended with every event's SHA-384 digest. Events of MR index 0 (MRTD, built by
/// the TDX module) and `EV_NO_ACTION` events (not extended, by the TCG spec) are skipped.
pub fn replay(events: &[Event]) -> [[u8; 48]; 4] {
    let mut rtmr = [[0u8; 48]; 4];
    for e in events {
        if e.event_type == 0x3 || !(1..=4).contains(&e.index) {
            continue;
        }
        if let Some(d) = e.sha384() {
            let r = &mut rtmr[(e.index - 1) as usize];
            let mut h = Sha384::new();
            h.update(*r);
            h.update(d);
            *r = h.finalize().into();
        }
    }
    rtmr
}

/// Compares replayed RTMRs with a quote's and names every one that differs.
///
/// # Errors
/// [`MeasureError::Mismatch`] listing `rtmrN: replayed …, quote …` for each difference.
pub fn check_against(replayed: &[[u8; 48]; 4], quote: &[[u8; 48]; 4]) -> Result<(), MeasureError> {
    let diffs: Vec<String> = (0..4)
        .filter(|&i| replayed[i] != quote[i])
        .map(|i| {
            format!(
                "rtmr{i}: replayed {}, quote {}",
                hex::encode(replayed[i]),
                hex::encode(quote[i])
            )
        })
        .collect();
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(MeasureError::Mismatch(diffs.join("; ")))
    }
}
