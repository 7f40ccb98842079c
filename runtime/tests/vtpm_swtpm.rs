//! The Azure vTPM attester's production path (`ccr-init --platform az-snp-vtpm`, through
//! `tss-esapi`) against a software TPM (swtpm) provisioned as Azure provisions a CVM's vTPM,
//! with a loopback stand-in for IMDS (issue 18):
//! (a) an HCL report carrying a sim-signed SNP report that binds the swtpm's AK: the whole job
//!     runs and the broker releases the keys (sim roots given; the claims say `sim`);
//! (b) the real HCL reports of `../shared/vectors/az-{snp,tdx}-vtpm`: evidence is produced and
//!     its verification fails on the AK binding, named.
#![cfg(feature = "tpm")]

mod common;
mod swtpm;

use ccr_attest::sim::SimAuthority;
use common::*;
use serde_json::Value;
use swtpm::{Imds, Swtpm, hcl_report, runtime_binding, runtime_data};

/// The value a policy's rule requires of `claim` (the first `{"claim", "equals"}` found).
fn required(policy: &Value, claim: &str) -> Option<String> {
    match policy {
        Value::Object(m) => {
            if m.get("claim").and_then(Value::as_str) == Some(claim) {
                return m.get("equals").and_then(Value::as_str).map(str::to_string);
            }
            m.values().find_map(|v| required(v, claim))
        }
        Value::Array(a) => a.iter().find_map(|v| required(v, claim)),
        _ => None,
    }
}

fn hex48(s: &str) -> [u8; 48] {
    hex::decode(s).unwrap().try_into().unwrap()
}

fn hex32(s: &str) -> [u8; 32] {
    hex::decode(s).unwrap().try_into().unwrap()
}

#[test]
fn ccr_init_on_a_software_vtpm_gets_keys_for_a_sim_signed_hcl_report() {
    if !swtpm::available() {
        return;
    }
    let w = world();
    let s = setup_scenario(&w, &Setup::breast_cancer());
    let tpm = Swtpm::start();
    tpm.provision_ak(&w.work);
    let (n, e) = tpm.ak_public();
    let runtime = runtime_data(&n, &e);

    // The SNP report the paravisor would have asked for: report_data binds the runtime data
    // (and so the AK); host_data is the contract digest; the measurement the policy requires.
    let digest = ccr_ok(&[], &["contract", "digest", s.contract.to_str().unwrap()]);
    let policy: Value =
        serde_json::from_slice(&std::fs::read(s.dir.join("policy.json")).unwrap()).unwrap();
    let measurement = required(&policy, "measurement").expect("the sim policy pins a measurement");
    let authority = SimAuthority::load_or_create(&w.sim).unwrap();
    let report = authority.report(
        &runtime_binding(&runtime),
        &hex48(&measurement),
        &hex32(digest.trim()),
    );
    tpm.provision_hcl(&w.work, &hcl_report(&report, 2, &runtime));
    let imds = Imds::start(pem(authority.vcek_der()), Vec::new());

    let out = w.work.join("vtpm-out");
    let o = job_command(&s, &w.broker.url, &w.broker.pin, &out)
        .args(["--platform", "az-snp-vtpm"])
        .env("CCR_TPM_TCTI", tpm.tcti())
        .env("CCR_AZURE_IMDS", &imds.url)
        .output()
        .unwrap();
    assert!(o.status.success(), "ccr-init failed:\n{}", stderr(&o));
    assert_eq!(last_log_line(&o)["message"], "training complete");
    // Every key came through the vTPM path: one THIM request per release, with its header.
    let requests = imds.requests.lock().unwrap().clone();
    assert!(!requests.is_empty(), "IMDS was never asked for the VCEK");
    assert!(
        requests
            .iter()
            .all(|r| r.starts_with("GET /metadata/THIM/amd/certification ")),
        "{requests:?}"
    );
    let dir = unseal(&s, &out);
    let run: Value = serde_json::from_slice(&std::fs::read(dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["platform"], "az-snp-vtpm", "{run}");
    let audit = w.broker.audit();
    let attests: Vec<&Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["resource"] == "attest")
        .collect();
    assert!(
        !attests.is_empty() && attests.iter().all(|r| r["decision"] == "allow"),
        "{audit}"
    );
    // What the broker saw, verified here the same way: the AK's quote over the nonce, the HCL
    // report bound by the sim-signed SNP report; the claims say sim (only a policy naming sim
    // accepts them), with the contract digest as host_data.
    {
        use ccr_attest::attester::Attester;
        use ccr_attest::evidence::{Evidence, Trust};
        let a = ccr_attest::attester::vtpm::VtpmAttester::open(&tpm.tcti(), &imds.url).unwrap();
        let ev = a.evidence(&[0x24; 64]).unwrap();
        let mut trust = Trust::new();
        trust.sim_roots = Some(ccr_attest::sim::load_roots(&w.sim).unwrap());
        let v = Evidence::from_kbs("az-snp-vtpm", &ev)
            .unwrap()
            .verify(&trust)
            .unwrap();
        let c = v.claims();
        assert_eq!(c.platform, ccr_attest::Platform::Sim);
        assert_eq!(c.report_data, "24".repeat(32));
        assert_eq!(c.endorsement[0], "vTPM AK (HCLAkPub)");
        assert_eq!(c.host_data.as_deref(), Some(digest.trim()));
        // Without the sim roots, the same evidence is refused.
        assert!(
            Evidence::from_kbs("az-snp-vtpm", &ev)
                .unwrap()
                .verify(&Trust::new())
                .is_err()
        );
    }
    let m = metrics(&dir);
    assert_eq!(m["rows"]["total"], 548);
}

/// 2025-07-01 00:00 UTC: inside the vectors' certificates' validity.
const AT_2025_07_01: i64 = 1_751_328_000;

fn vectors() -> Option<std::path::PathBuf> {
    let p = repo_root().join("../shared/vectors");
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!(
            "skipped: {} is absent (real attestation vectors)",
            p.display()
        );
        None
    }
}

/// Evidence from the attester on a TPM whose NV index holds the real HCL report `hcl` (and
/// whose AK is swtpm's own), verified with AMD's and Intel's roots at a time inside the
/// vectors' validity: the error.
fn real_hcl_on_swtpm(platform: &str, hcl: Vec<u8>, vcek_pem: String, td_quote: Vec<u8>) -> String {
    use ccr_attest::attester::Attester;
    use ccr_attest::attester::vtpm::VtpmAttester;
    use ccr_attest::evidence::{Evidence, Trust};
    let dir = tempfile::tempdir().unwrap();
    let tpm = Swtpm::start();
    tpm.provision_ak(dir.path());
    let nv = swtpm::NvProxy::start(&tpm, hcl);
    let imds = Imds::start(vcek_pem, td_quote);
    let a = VtpmAttester::open(&nv.tcti(), &imds.url).unwrap();
    assert_eq!(a.platform().to_string(), platform);
    let report_data = [0x42u8; 64];
    let ev = a.evidence(&report_data).unwrap();
    // The evidence carries swtpm's quote over the nonce, and the hardware evidence from IMDS.
    let quote = ccr_attest::vtpm::QuoteInfo::parse(
        &hex::decode(ev["tpm_quote"]["message"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(quote.extra_data, &report_data[..32]);
    assert_eq!(quote.pcr_indexes, (0..24).collect::<Vec<_>>());
    assert_eq!(ev["tpm_quote"]["pcrs"].as_array().unwrap().len(), 24);
    let parsed = Evidence::from_kbs(platform, &ev).unwrap();
    let mut trust = Trust::new();
    trust.at = Some(AT_2025_07_01);
    parsed.verify(&trust).unwrap_err().to_string()
}

#[test]
fn the_real_snp_hcl_report_on_swtpm_fails_exactly_on_the_ak_binding() {
    let Some(v) = vectors() else { return };
    if !swtpm::available() {
        return;
    }
    let hcl = std::fs::read(v.join("az-snp-vtpm/hcl-report.bin")).unwrap();
    let vcek = std::fs::read_to_string(v.join("az-snp-vtpm/vcek.pem")).unwrap();
    let e = real_hcl_on_swtpm("az-snp-vtpm", hcl, vcek, Vec::new());
    // The SNP report, its VCEK chain and its binding of the runtime data all verify: what fails
    // is the quote, signed by swtpm's AK and not by the AK the HCL report binds.
    assert!(
        e.contains("vTPM quote") && e.contains("not signed by the AK bound in the HCL report"),
        "{e}"
    );
}

#[test]
fn the_real_tdx_hcl_report_on_swtpm_fails_exactly_on_the_ak_binding() {
    let Some(v) = vectors() else { return };
    if !swtpm::available() {
        return;
    }
    let ev: Value =
        serde_json::from_slice(&std::fs::read(v.join("az-tdx-vtpm/evidence-v1.json")).unwrap())
            .unwrap();
    let hcl = ccr_attest::evidence::b64("hcl_report", ev["hcl_report"].as_str().unwrap()).unwrap();
    let td_quote = std::fs::read(v.join("az-tdx-vtpm/td-quote.bin")).unwrap();
    let e = real_hcl_on_swtpm("az-tdx-vtpm", hcl, String::new(), td_quote);
    assert!(
        e.contains("vTPM quote") && e.contains("not signed by the AK bound in the HCL report"),
        "{e}"
    );
}
