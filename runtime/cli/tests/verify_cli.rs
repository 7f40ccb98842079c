//! `ccr verify` on the real vectors in `../shared/vectors`: the claims it prints equal the
//! fields read here from the raw bytes at the offsets the specs give, and its exit status is 0
//! only when every signature and chain holds. Skipped, with the reason, when the folder is
//! absent.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn vectors() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors");
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!(
            "skipping: {} is absent (real attestation vectors)",
            p.display()
        );
        None
    }
}

const AT: &str = "2025-07-01T00:00:00Z";

fn verify(args: &[&Path], extra: &[&str]) -> (i32, Value) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ccr"));
    c.arg("verify");
    for a in args {
        c.arg(a);
    }
    c.args(extra);
    let out = c.output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "not JSON: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), v)
}

fn hex_at(b: &[u8], off: usize, len: usize) -> String {
    hex::encode(&b[off..off + len])
}

fn u32_at(b: &[u8], off: usize) -> u64 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap()).into()
}

/// SNP fields at the ABI spec's offsets (table ATTESTATION_REPORT).
fn check_snp(raw: &[u8], c: &Value) {
    assert_eq!(c["measurement"], hex_at(raw, 0x90, 48));
    assert_eq!(c["host_data"], hex_at(raw, 0xC0, 32));
    assert_eq!(c["snp"]["report_version"], u32_at(raw, 0x00));
    assert_eq!(c["snp"]["vmpl"], u32_at(raw, 0x30));
    assert_eq!(c["snp"]["guest_svn"], u32_at(raw, 0x04));
    assert_eq!(c["snp"]["chip_id"], hex_at(raw, 0x1A0, 64));
    let tcb = &c["snp"]["reported_tcb"];
    assert_eq!(tcb["bootloader"], raw[0x180]);
    assert_eq!(tcb["tee"], raw[0x181]);
    assert_eq!(tcb["snp"], raw[0x186]);
    assert_eq!(tcb["microcode"], raw[0x187]);
}

#[test]
fn snp_vcek_report() {
    let Some(d) = vectors() else { return };
    let raw = std::fs::read(d.join("snp/report-1.bin")).unwrap();
    let (code, out) = verify(
        &[&d.join("snp/report-1.bin")],
        &[
            "--collateral",
            d.join("snp/report-1.vcek.der").to_str().unwrap(),
            "--at",
            AT,
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["verdict"], "verified");
    let c = &out["claims"];
    check_snp(&raw, c);
    assert_eq!(c["report_data"], hex_at(&raw, 0x50, 64));
    assert_eq!(
        out["policy_input"]["x-ms-sevsnpvm-launchmeasurement"],
        hex_at(&raw, 0x90, 48)
    );

    // One flipped bit in the signed part, and the invalid VCEK: exit 1, naming the check.
    let t = tempfile::tempdir().unwrap();
    let mut bad = raw;
    bad[0x90] ^= 1;
    std::fs::write(t.path().join("bad.bin"), &bad).unwrap();
    let (code, out) = verify(
        &[&t.path().join("bad.bin")],
        &[
            "--collateral",
            d.join("snp/report-1.vcek.der").to_str().unwrap(),
            "--at",
            AT,
        ],
    );
    assert_eq!(code, 1);
    assert!(
        out["check"].as_str().unwrap().contains("signature"),
        "{out}"
    );
    let (code, out) = verify(
        &[&d.join("snp/report-1.bin")],
        &[
            "--collateral",
            d.join("snp/vcek-invalid.der").to_str().unwrap(),
            "--at",
            AT,
        ],
    );
    assert_eq!(code, 1);
    eprintln!("vcek-invalid.der: {}", out["check"]);
    // No VCEK anywhere: exit 1, and nothing is fetched.
    let (code, out) = verify(&[&d.join("snp/report-1.bin")], &["--at", AT]);
    assert_eq!(code, 1);
    assert!(
        out["check"].as_str().unwrap().contains("never fetched"),
        "{out}"
    );
    // A policy that names another measurement: exit 3 with the reason.
    std::fs::write(
        t.path().join("p.json"),
        serde_json::json!({"version": "1.0.0", "allOf": [{"claim": "measurement", "equals": "00"}]})
            .to_string(),
    )
    .unwrap();
    let (code, out) = verify(
        &[&d.join("snp/report-1.bin")],
        &[
            "--collateral",
            d.join("snp/report-1.vcek.der").to_str().unwrap(),
            "--at",
            AT,
            "--policy",
            t.path().join("p.json").to_str().unwrap(),
        ],
    );
    assert_eq!(code, 3);
    assert!(
        out["decision"]["reasons"][0]
            .as_str()
            .unwrap()
            .contains("measurement")
    );
}

#[test]
fn minimum_tcb_from_the_policy() {
    let Some(d) = vectors() else { return };
    let raw = std::fs::read(d.join("snp/report-1.bin")).unwrap();
    let snp_svn = raw[0x186];
    let t = tempfile::tempdir().unwrap();
    for (min, want) in [(snp_svn, 0), (snp_svn + 1, 3)] {
        let p = Command::new(env!("CARGO_BIN_EXE_ccr"))
            .args(["policy", "derive", "--for", "snp", "--measurement"])
            .arg(hex_at(&raw, 0x90, 48))
            .arg("--min-tcb")
            .arg(format!("snp={min},microcode={}", raw[0x187]))
            .output()
            .unwrap();
        assert!(p.status.success());
        std::fs::write(t.path().join("p.json"), &p.stdout).unwrap();
        let (code, out) = verify(
            &[&d.join("snp/report-1.bin")],
            &[
                "--collateral",
                d.join("snp/report-1.vcek.der").to_str().unwrap(),
                "--at",
                AT,
                "--policy",
                t.path().join("p.json").to_str().unwrap(),
            ],
        );
        assert_eq!(code, want, "minimum snp SVN {min}: {out}");
        if want == 3 {
            let r = out["decision"]["reasons"].to_string();
            assert!(r.contains(&format!("at least {min}")), "{r}");
        }
    }
}

#[test]
fn snp_vlek_report_verifies_and_the_default_policy_denies_it_naming_vmpl() {
    let Some(d) = vectors() else { return };
    let raw = std::fs::read(d.join("snp/report-vlek.bin")).unwrap();
    let vlek = d.join("snp/report-vlek.vlek.der");
    let (code, out) = verify(
        &[&d.join("snp/report-vlek.bin")],
        &["--collateral", vlek.to_str().unwrap(), "--at", AT],
    );
    assert_eq!(code, 0, "{out}");
    check_snp(&raw, &out["claims"]);
    assert_eq!(out["claims"]["snp"]["signing_key"], "vlek");
    // ccr's default SNP policy for this very measurement denies it: VMPL 1.
    let t = tempfile::tempdir().unwrap();
    let policy = Command::new(env!("CARGO_BIN_EXE_ccr"))
        .args(["policy", "derive", "--for", "snp", "--measurement"])
        .arg(hex_at(&raw, 0x90, 48))
        .output()
        .unwrap();
    assert!(policy.status.success());
    std::fs::write(t.path().join("p.json"), &policy.stdout).unwrap();
    let (code, out) = verify(
        &[&d.join("snp/report-vlek.bin")],
        &[
            "--collateral",
            vlek.to_str().unwrap(),
            "--at",
            AT,
            "--policy",
            t.path().join("p.json").to_str().unwrap(),
        ],
    );
    assert_eq!(code, 3, "{out}");
    let reasons = out["decision"]["reasons"].to_string();
    assert!(
        reasons.contains("vmpl") && !reasons.contains("measurement"),
        "{reasons}"
    );
    // Today the VLEK has expired (notAfter 2025-12-10): exit 1, naming its validity.
    let (code, out) = verify(
        &[&d.join("snp/report-vlek.bin")],
        &["--collateral", vlek.to_str().unwrap()],
    );
    assert_eq!(code, 1);
    assert!(
        out["check"].as_str().unwrap().contains("not valid at"),
        "{out}"
    );
}

#[test]
fn aci_report() {
    let Some(d) = vectors() else { return };
    let raw = std::fs::read(d.join("aci/snp_report.bin")).unwrap();
    let (code, out) = verify(
        &[&d.join("aci/snp_report.bin")],
        &[
            "--collateral",
            d.join("aci/uvm_host_amd_certificate.json")
                .to_str()
                .unwrap(),
            "--at",
            AT,
        ],
    );
    assert_eq!(code, 0, "{out}");
    check_snp(&raw, &out["claims"]);
    // The vectors' security-context folder is another deployment's: its policy is not this
    // report's host_data.
    let (code, out) = verify(
        &[&d.join("aci/snp_report.bin")],
        &[
            "--collateral",
            d.join("aci/uvm_host_amd_certificate.json")
                .to_str()
                .unwrap(),
            "--security-context",
            d.join("aci/security-context").to_str().unwrap(),
            "--at",
            AT,
        ],
    );
    assert_eq!(code, 1, "{out}");
}

#[test]
fn tdx_quote_with_collateral() {
    let Some(d) = vectors() else { return };
    let raw = std::fs::read(d.join("tdx/quote-1.bin")).unwrap();
    let col = d.join("tdx/quote-1.collateral.json");
    let (code, out) = verify(
        &[&d.join("tdx/quote-1.bin")],
        &["--collateral", col.to_str().unwrap(), "--at", AT],
    );
    assert_eq!(code, 0, "{out}");
    let c = &out["claims"];
    // Quote v4: header 48 bytes; TD report body: MRTD at 136, RTMR0 at 328, REPORTDATA at 520.
    assert_eq!(c["measurement"], hex_at(&raw, 48 + 136, 48));
    assert_eq!(c["tdx"]["rtmr"][1], hex_at(&raw, 48 + 376, 48));
    assert_eq!(c["report_data"], hex_at(&raw, 48 + 520, 64));
    assert_eq!(c["host_data"], hex_at(&raw, 48 + 184, 48));
    assert_eq!(c["tdx"]["tee_tcb_svn"], hex_at(&raw, 48, 16));
    assert!(c["tcb_status"].is_string());
    // A debuggable TD (the CCEL vector's quote): exit 1, naming the attribute.
    let (code, out) = verify(&[&d.join("tdx/quote-4-for-ccel-1.bin")], &["--at", AT]);
    assert_eq!(code, 1);
    assert!(out["check"].as_str().unwrap().contains("DEBUG"), "{out}");
    // After the collateral expired.
    let (code, _) = verify(
        &[&d.join("tdx/quote-1.bin")],
        &[
            "--collateral",
            col.to_str().unwrap(),
            "--at",
            "2026-01-01T00:00:00Z",
        ],
    );
    assert_eq!(code, 1);
}

#[test]
fn azure_vtpm_evidence() {
    let Some(d) = vectors() else { return };
    let p = d.join("az-snp-vtpm/evidence-v1.json");
    let (code, out) = verify(&[&p], &["--at", AT]);
    assert_eq!(code, 0, "{out}");
    let ev: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    let hcl = ccr_attest::evidence::b64("hcl", ev["hcl_report"].as_str().unwrap()).unwrap();
    check_snp(&hcl[32..32 + 1184], &out["claims"]);
    assert_eq!(out["platform"], "az-snp-vtpm");
    // The TDX one: the vectors carry no collateral for its TD quote, so its signatures and
    // PCK chain verify and the TCB status stays unknown.
    let p = d.join("az-tdx-vtpm/evidence-v1.json");
    let (code, out) = verify(&[&p], &["--at", AT]);
    assert_eq!(code, 0, "{out}");
    let ev: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    let q = ccr_attest::evidence::b64("q", ev["td_quote"].as_str().unwrap()).unwrap();
    assert_eq!(out["claims"]["measurement"], hex_at(&q, 48 + 136, 48));
    assert_eq!(out["claims"]["tdx"]["rtmr"][0], hex_at(&q, 48 + 328, 48));
    assert!(out["claims"]["tcb_status"].is_null());
}

#[test]
fn reference_values_check_real_evidence_and_derive_the_policy() {
    let Some(d) = vectors() else { return };
    let raw = std::fs::read(d.join("snp/report-1.bin")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let reference = |measurements: Vec<String>, min_snp: u64| {
        let p = tmp.path().join("reference.json");
        std::fs::write(
            &p,
            serde_json::json!({"format": "ccr-reference/1", "platform": "snp", "values": {
                "measurement": measurements, "host_data": hex_at(&raw, 0xC0, 32),
                "debug": false, "vmpl": 0, "tcb.snp": {"atLeast": min_snp}}})
            .to_string(),
        )
        .unwrap();
        p
    };
    let vcek = d.join("snp/report-1.vcek.der");
    let args = |r: &Path| {
        vec![
            "--collateral".to_string(),
            vcek.to_str().unwrap().to_string(),
            "--at".into(),
            AT.into(),
            "--reference".into(),
            r.to_str().unwrap().to_string(),
        ]
    };
    let run = |r: &Path| {
        let a = args(r);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        verify(&[&d.join("snp/report-1.bin")], &a)
    };
    // A rollout list holding the report's measurement, its TCB as the minimum: matches.
    let good = reference(
        vec!["00".repeat(48), hex_at(&raw, 0x90, 48)],
        u64::from(raw[0x186]),
    );
    let (code, out) = run(&good);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["reference"]["matches"], true);
    // The policy derived from the same file allows this evidence.
    let o = Command::new(env!("CARGO_BIN_EXE_ccr"))
        .args(["policy", "derive", "--reference", good.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let pol = tmp.path().join("policy.json");
    std::fs::write(&pol, &o.stdout).unwrap();
    let (code, out) = verify(
        &[&d.join("snp/report-1.bin")],
        &[
            "--collateral",
            vcek.to_str().unwrap(),
            "--at",
            AT,
            "--policy",
            pol.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{out}");
    // Another build and a higher minimum: both named, exit 3.
    let bad = reference(vec!["00".repeat(48)], u64::from(raw[0x186]) + 1);
    let (code, out) = run(&bad);
    assert_eq!(code, 3, "{out}");
    let diffs: Vec<String> = out["reference"]["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(diffs.len(), 2, "{diffs:?}");
    assert!(diffs[0].starts_with("measurement: evidence"), "{diffs:?}");
    assert!(diffs[1].starts_with("tcb.snp: evidence"), "{diffs:?}");
}
