//! The TDX event log parser and RTMR replay on the real CCEL vectors in ../shared/vectors/tdx.

use std::path::PathBuf;

use base64::Engine;
use ccr_measurements::ccel::{check_against, parse, replay};
use serde_json::Value;
use sha2::{Digest, Sha384};

fn vectors() -> Option<PathBuf> {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors/tdx");
    if d.is_dir() {
        Some(d)
    } else {
        println!(
            "skipped: {} is absent (the shared vectors are not checked out here)",
            d.display()
        );
        None
    }
}

#[test]
fn ccel_ovmf_parses_into_exactly_the_listed_events_and_replays() {
    let Some(dir) = vectors() else { return };
    let log = parse(&std::fs::read(dir.join("ccel-ovmf.bin")).unwrap()).unwrap();
    assert_eq!(log.algorithms, vec![(0x000C, 48)], "SHA-384 only");
    let want: Value =
        serde_json::from_slice(&std::fs::read(dir.join("ccel-ovmf.parsed.json")).unwrap()).unwrap();
    let want = want["uefi_event_logs"].as_array().unwrap();
    assert_eq!(log.events.len(), want.len(), "event count");
    let b64 = base64::engine::general_purpose::STANDARD;
    for (i, (got, w)) in log.events.iter().zip(want).enumerate() {
        assert_eq!(
            got.type_name,
            w["type_name"].as_str().unwrap(),
            "event {i} type"
        );
        assert_eq!(
            u64::from(got.index),
            w["index"].as_u64().unwrap(),
            "event {i} MR index"
        );
        let digests = w["digests"].as_array().unwrap();
        assert_eq!(got.digests.len(), digests.len(), "event {i} digest count");
        assert_eq!(digests[0]["alg"], "SHA-384");
        assert_eq!(
            hex::encode(got.sha384().unwrap()),
            digests[0]["digest"].as_str().unwrap(),
            "event {i} digest"
        );
        assert_eq!(
            got.data,
            b64.decode(w["event"].as_str().unwrap()).unwrap(),
            "event {i} data"
        );
    }
    // The replay against the same replay computed here from the listed digests.
    let mut rtmr = [[0u8; 48]; 4];
    for w in want {
        let idx = w["index"].as_u64().unwrap() as usize;
        let d = hex::decode(w["digests"][0]["digest"].as_str().unwrap()).unwrap();
        let mut h = Sha384::new();
        h.update(rtmr[idx - 1]);
        h.update(&d);
        rtmr[idx - 1] = h.finalize().into();
    }
    let replayed = replay(&log.events);
    assert_eq!(replayed, rtmr);
    assert_ne!(replayed[0], [0u8; 48]);
    check_against(&replayed, &rtmr).unwrap();
    let mut other = rtmr;
    other[2][0] ^= 1;
    let e = check_against(&replayed, &other).unwrap_err().to_string();
    assert!(e.contains("rtmr2: replayed") && !e.contains("rtmr0"), "{e}");
    for (i, r) in replayed.iter().enumerate() {
        println!("rtmr{i} = {}", hex::encode(r));
    }
}

#[test]
fn ccel_1_parses_without_error() {
    let Some(dir) = vectors() else { return };
    let log = parse(&std::fs::read(dir.join("ccel-1.bin")).unwrap()).unwrap();
    assert!(!log.events.is_empty());
    println!(
        "ccel-1.bin: {} events, algorithms {:?}",
        log.events.len(),
        log.algorithms
    );
}

#[test]
fn truncated_and_foreign_logs_are_errors_naming_the_field() {
    let Some(dir) = vectors() else { return };
    let b = std::fs::read(dir.join("ccel-ovmf.bin")).unwrap();
    // Cut inside the third event: an error naming its field, not a panic.
    let log = parse(&b).unwrap();
    let e = parse(&b[..0x120]).unwrap_err().to_string();
    assert!(e.contains("event log") && e.contains("offset"), "{e}");
    assert!(log.events.len() > 3);
    let e = parse(&[0u8; 64]).unwrap_err().to_string();
    assert!(e.contains("Spec ID Event03"), "{e}");
    for n in 0..b.len().min(3000) {
        let _ = parse(&b[..n]);
    }
}
