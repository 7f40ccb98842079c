//! `ccr measure` and `ccr image build` as an auditor runs them, on the real vectors.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use serde_json::Value;

fn vectors() -> Option<PathBuf> {
    let d = repo_root().join("../shared/vectors");
    if d.is_dir() {
        Some(d)
    } else {
        println!("skipped: {} is absent", d.display());
        None
    }
}

fn run(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(ccr()).args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn aci_host_data_of_the_published_policy_is_the_reports() {
    let Some(v) = vectors() else { return };
    let (code, out, err) = run(&[
        "measure",
        "aci-host-data",
        "--policy",
        v.join("aci/uvm_security_policy.base64").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let report = std::fs::read(v.join("aci/snp_report.bin")).unwrap();
    // HOST_DATA: 32 bytes at 0xC0 of the SNP report (SEV-SNP ABI spec, ATTESTATION_REPORT).
    assert_eq!(out.trim(), hex::encode(&report[0xC0..0xE0]));
    println!("host_data {}", out.trim());
}

#[test]
fn tdx_rtmr_replay_prints_events_and_compares_with_a_quote() {
    let Some(v) = vectors() else { return };
    let (code, out, err) = run(&[
        "measure",
        "tdx-rtmr",
        "--ccel",
        v.join("tdx/ccel-ovmf.bin").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["events"].as_array().unwrap().len(), 20);
    assert_eq!(j["events"][0]["type_name"], "EV_EFI_HANDOFF_TABLES2");
    // ccel-1 and its quote: the provenance says the log does not reproduce that quote's RTMRs;
    // the command says which ones differ and exits 1.
    let (code, _, err) = run(&[
        "measure",
        "tdx-rtmr",
        "--ccel",
        v.join("tdx/ccel-1.bin").to_str().unwrap(),
        "--quote",
        v.join("tdx/quote-4-for-ccel-1.bin").to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("rtmr0: replayed"), "{err}");
}

#[test]
fn snp_measure_refuses_a_kernel_on_a_firmware_without_kernel_hashes() {
    let ovmf = std::path::Path::new("/usr/share/ovmf/OVMF.fd");
    if !ovmf.is_file() {
        println!(
            "skipped: {} is absent (apt-get install ovmf)",
            ovmf.display()
        );
        return;
    }
    let (code, out, err) = run(&[
        "measure",
        "snp",
        "--ovmf",
        ovmf.to_str().unwrap(),
        "--vcpus",
        "4",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim().len(), 96);
    let (code, _, err) = run(&[
        "measure",
        "snp",
        "--ovmf",
        ovmf.to_str().unwrap(),
        "--kernel",
        "/dev/null",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("no SNP_KERNEL_HASHES section"), "{err}");
}

#[test]
fn two_image_builds_give_the_same_manifest_digest() {
    let d = tempfile::tempdir().unwrap();
    let mut digests = Vec::new();
    for name in ["a", "b"] {
        let out = d.path().join(name);
        let (code, stdout, err) = run(&[
            "image",
            "build",
            "--binary",
            ccr_init().to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{err}");
        let built: Value = serde_json::from_str(&stdout).unwrap();
        let (code, stdout, err) = run(&["measure", "image", out.to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
        let measured: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(
            built, measured,
            "ccr measure image recomputes what build wrote"
        );
        digests.push(built);
    }
    assert_eq!(digests[0]["manifest"], digests[1]["manifest"]);
    let bin = std::fs::read(ccr_init()).unwrap();
    use sha2::Digest;
    assert_eq!(
        digests[0]["binary_sha256"].as_str().unwrap(),
        hex::encode(sha2::Sha256::digest(&bin))
    );
    println!("manifest {}", digests[0]["manifest"]);
}
