//! Real attestation evidence from `../shared/vectors` (see its PROVENANCE.md), verified offline:
//! SEV-SNP (VCEK and VLEK), the ACI report with its certificates and CCE policy, a TDX quote with
//! its collateral, and the Azure SNP and TDX vTPM evidence. Each also fails after one flipped bit
//! in its signed part and with the wrong certificate. Skipped, with the reason printed, when the
//! folder is absent.

use std::path::{Path, PathBuf};

use base64::Engine;

use ccr_attest::Platform;
use ccr_attest::evidence::{Evidence, Trust};
use ccr_attest::snp::{SnpReport, SnpRoots, verify_report};

fn vectors() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors");
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

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// 2025-07-01T00:00:00Z: inside the TDX collateral's validity (2025-06-19 to 2025-07-19) and
/// the VLEK's (2024-12-10 to 2025-12-10).
const AT_2025_07_01: i64 = 1_751_328_000;

fn hex_at(b: &[u8], off: usize, len: usize) -> String {
    hex::encode(&b[off..off + len])
}

#[test]
fn vlek_report_with_a_vcek_is_refused() {
    let Some(dir) = vectors() else { return };
    let rep = SnpReport::parse(&read(&dir.join("snp/report-vlek.bin"))).unwrap();
    let vcek = read(&dir.join("snp/report-1.vcek.der"));
    assert!(
        verify_report(
            &SnpRoots::amd(),
            &rep,
            &vcek,
            Platform::Snp,
            Some(AT_2025_07_01)
        )
        .is_err()
    );
}

#[test]
fn snp_vcek_report_verifies_with_the_embedded_amd_roots() {
    let Some(dir) = vectors() else { return };
    let raw = read(&dir.join("snp/report-1.bin"));
    let vek = read(&dir.join("snp/report-1.vcek.der"));
    let rep = SnpReport::parse(&raw).unwrap();
    let v = verify_report(
        &SnpRoots::amd(),
        &rep,
        &vek,
        Platform::Snp,
        Some(AT_2025_07_01),
    )
    .unwrap();
    let c = v.claims();
    let s = c.snp.as_ref().unwrap();
    assert_eq!(s.product.as_deref(), Some("milan"));
    assert_eq!(c.endorsement, ["SEV-VCEK", "SEV-Milan", "ARK-Milan"]);
    // Fields read independently at the ABI spec's offsets.
    assert_eq!(
        c.measurement.as_deref(),
        Some(hex_at(&raw, 0x90, 48).as_str())
    );
    assert_eq!(c.report_data, hex_at(&raw, 0x50, 64));
    assert_eq!(
        c.host_data.as_deref(),
        Some(hex_at(&raw, 0xC0, 32).as_str())
    );
    assert_eq!(
        s.vmpl,
        u32::from_le_bytes(raw[0x30..0x34].try_into().unwrap())
    );
    assert_eq!(s.reported_tcb.bootloader, raw[0x180]);
    assert_eq!(s.reported_tcb.tee, raw[0x181]);
    assert_eq!(s.reported_tcb.snp, raw[0x186]);
    assert_eq!(s.reported_tcb.microcode, raw[0x187]);
    assert_eq!(s.chip_id, hex_at(&raw, 0x1A0, 64));
}

#[test]
fn snp_report_fails_after_a_flipped_bit_or_with_the_wrong_certificate() {
    let Some(dir) = vectors() else { return };
    let raw = read(&dir.join("snp/report-1.bin"));
    let vek = read(&dir.join("snp/report-1.vcek.der"));
    let roots = SnpRoots::amd();
    for off in [0x00usize, 0x50, 0x90, 0xC0, 0x1A0, 0x29F] {
        let mut bad = raw.clone();
        bad[off] ^= 0x01;
        let r = SnpReport::parse(&bad)
            .and_then(|rep| verify_report(&roots, &rep, &vek, Platform::Snp, Some(AT_2025_07_01)));
        assert!(r.is_err(), "flipped bit at {off:#x} must fail");
    }
    // The signature itself.
    let mut bad = raw.clone();
    bad[0x2A0] ^= 0x01;
    let rep = SnpReport::parse(&bad).unwrap();
    let e = verify_report(&roots, &rep, &vek, Platform::Snp, Some(AT_2025_07_01)).unwrap_err();
    assert!(e.to_string().contains("SNP report signature"), "{e}");
    // Another chip's VCEK (the VLEK vector's Milan sibling from Azure): wrong key.
    let other = read(&dir.join("az-snp-vtpm/vcek.pem"));
    let rep = SnpReport::parse(&raw).unwrap();
    let e = verify_report(&roots, &rep, &other, Platform::Snp, Some(AT_2025_07_01)).unwrap_err();
    eprintln!("wrong VCEK: {e}");
    // A flipped bit in the VCEK breaks its chain.
    let mut badvek = vek.clone();
    let n = badvek.len();
    badvek[n - 10] ^= 0x01;
    assert!(verify_report(&roots, &rep, &badvek, Platform::Snp, Some(AT_2025_07_01)).is_err());
    // Outside the VCEK's validity (before notBefore 2023-01-24).
    let e = verify_report(&roots, &rep, &vek, Platform::Snp, Some(1_600_000_000)).unwrap_err();
    assert!(e.to_string().contains("not valid at"), "{e}");
}

#[test]
fn invalid_vcek_is_rejected() {
    let Some(dir) = vectors() else { return };
    let raw = read(&dir.join("snp/report-1.bin"));
    let bad = read(&dir.join("snp/vcek-invalid.der"));
    let rep = SnpReport::parse(&raw).unwrap();
    let e = verify_report(
        &SnpRoots::amd(),
        &rep,
        &bad,
        Platform::Snp,
        Some(AT_2025_07_01),
    )
    .unwrap_err();
    eprintln!("vcek-invalid.der: {e}");
}

#[test]
fn vlek_report_verifies_through_the_embedded_asvk_and_its_vmpl_is_one() {
    let Some(dir) = vectors() else { return };
    let raw = read(&dir.join("snp/report-vlek.bin"));
    let vlek_der = read(&dir.join("snp/report-vlek.vlek.der"));
    let rep = SnpReport::parse(&raw).unwrap();
    let vlek = ccr_attest::amd::AmdCert::from_der(&vlek_der, "VLEK").unwrap();
    rep.verify_signature_with_key(vlek.public_key_bytes())
        .unwrap();
    let ext = ccr_attest::amd::VekExtensions::read(&vlek).unwrap();
    assert!(ext.csp_id.is_some());
    assert_eq!(rep.snp_claims().vmpl, 1);
    assert_eq!(rep.signing_key(), ccr_attest::snp::SigningKey::Vlek);
    // The whole chain: VLEK → ASVK (embedded, SEV-VLEK-Milan) → ARK-Milan, at a time inside
    // the VLEK's validity (2024-12-10 to 2025-12-10).
    let v = verify_report(
        &SnpRoots::amd(),
        &rep,
        &vlek_der,
        Platform::Snp,
        Some(AT_2025_07_01),
    )
    .unwrap();
    assert_eq!(
        v.claims().endorsement,
        ["SEV-VLEK", "SEV-VLEK-Milan", "ARK-Milan"]
    );
    let s = v.claims().snp.as_ref().unwrap();
    assert_eq!(
        s.vmpl,
        u32::from_le_bytes(raw[0x30..0x34].try_into().unwrap())
    );
    assert_eq!(s.vmpl, 1);
    assert!(s.csp_id.is_some());
    // Expired: the same chain on 2026-01-01, after the VLEK's notAfter.
    let e = verify_report(
        &SnpRoots::amd(),
        &rep,
        &vlek_der,
        Platform::Snp,
        Some(1_767_225_600),
    )
    .unwrap_err();
    assert!(e.to_string().contains("not valid at"), "{e}");
    // A flipped bit in the signed part fails the signature.
    let mut bad = raw;
    bad[0x90] ^= 1;
    let rep = SnpReport::parse(&bad).unwrap();
    assert!(
        rep.verify_signature_with_key(vlek.public_key_bytes())
            .is_err()
    );
}

fn aci_trust(dir: &Path) -> Trust {
    let mut t = Trust::new();
    t.at = Some(AT_2025_07_01);
    t.add_file(&dir.join("aci/uvm_host_amd_certificate.json"))
        .unwrap();
    t
}

#[test]
fn aci_report_verifies_with_its_thim_certificates_and_cce_policy() {
    let Some(dir) = vectors() else { return };
    let raw = read(&dir.join("aci/snp_report.bin"));
    // Build the UVM_SECURITY_CONTEXT_DIR ACI would mount for this report, in a temporary
    // folder, from the vector's THIM JSON, CCE policy and reference info.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("host-amd-cert-base64"),
        b64.encode(read(&dir.join("aci/uvm_host_amd_certificate.json"))),
    )
    .unwrap();
    std::fs::write(
        ctx.path().join("security-policy-base64"),
        read(&dir.join("aci/uvm_security_policy.base64")),
    )
    .unwrap();
    std::fs::write(
        ctx.path().join("reference-info-base64"),
        b64.encode(read(&dir.join("aci/body.uvm_reference_info.bin"))),
    )
    .unwrap();
    let sc = ccr_attest::aci::SecurityContext::load(ctx.path()).unwrap();
    let mut trust = Trust::new();
    trust.at = Some(AT_2025_07_01);
    trust.security_context = Some(sc);
    let ev = Evidence::sniff(&raw).unwrap();
    let v = ev.verify(&trust).unwrap();
    let c = v.claims();
    let policy = b64
        .decode(read(&dir.join("aci/uvm_security_policy.base64")).trim_ascii())
        .unwrap();
    use sha2::Digest;
    let digest = hex::encode(sha2::Sha256::digest(&policy));
    assert_eq!(c.host_data.as_deref(), Some(digest.as_str()));
    assert_eq!(
        c.host_data.as_deref(),
        Some(hex_at(&raw, 0xC0, 32).as_str())
    );
    assert_eq!(c.aci.as_ref().unwrap().security_policy_digest, digest);
    assert_eq!(c.snp.as_ref().unwrap().vmpl, 0);
    assert_eq!(c.snp.as_ref().unwrap().report_version, 2);

    // The security-context folder in the vectors belongs to another deployment: its policy is
    // not this report's HOST_DATA, and its VCEK is another chip's.
    let mut other = Trust::new();
    other.at = Some(AT_2025_07_01);
    other.security_context =
        Some(ccr_attest::aci::SecurityContext::load(&dir.join("aci/security-context")).unwrap());
    let e = ev.verify(&other).unwrap_err();
    eprintln!("other security context: {e}");

    // A flipped bit in HOST_DATA.
    let mut bad = raw.clone();
    bad[0xC0] ^= 1;
    assert!(
        Evidence::sniff(&bad)
            .unwrap()
            .verify(&aci_trust(&dir))
            .is_err()
    );
    // The wrong certificate: report-1's VCEK (another chip).
    let mut wrong = Trust::new();
    wrong.at = Some(AT_2025_07_01);
    wrong.add_file(&dir.join("snp/report-1.vcek.der")).unwrap();
    assert!(ev.verify(&wrong).is_err());
    // The right certificates verify without the policy too.
    Evidence::sniff(&raw)
        .unwrap()
        .verify(&aci_trust(&dir))
        .unwrap();
}

fn tdx_trust(dir: &Path) -> Trust {
    let mut t = Trust::new();
    t.at = Some(AT_2025_07_01);
    assert_eq!(
        t.add_file(&dir.join("tdx/quote-1.collateral.json"))
            .unwrap(),
        "TDX collateral"
    );
    t
}

#[test]
fn tdx_quote_verifies_with_its_collateral() {
    let Some(dir) = vectors() else { return };
    let raw = read(&dir.join("tdx/quote-1.bin"));
    let ev = Evidence::sniff(&raw).unwrap();
    let v = ev.verify(&tdx_trust(&dir)).unwrap();
    let c = v.claims();
    let t = c.tdx.as_ref().unwrap();
    // TD quote v4: header 48 bytes, then the TD report body.
    let body = 48;
    assert_eq!(
        c.measurement.as_deref(),
        Some(hex_at(&raw, body + 136, 48).as_str())
    );
    assert_eq!(t.mrtd, hex_at(&raw, body + 136, 48));
    assert_eq!(t.rtmr[0], hex_at(&raw, body + 328, 48));
    assert_eq!(t.rtmr[3], hex_at(&raw, body + 328 + 144, 48));
    assert_eq!(c.report_data, hex_at(&raw, body + 520, 64));
    assert_eq!(t.tee_tcb_svn, hex_at(&raw, body, 16));
    assert!(c.tcb_status.is_some());
    eprintln!(
        "quote-1: tcb_status {:?} advisories {:?}",
        c.tcb_status, t.advisory_ids
    );

    // After the collateral's nextUpdate (2025-07-19) it no longer verifies.
    let mut late = tdx_trust(&dir);
    late.at = Some(1_767_225_600); // 2026-01-01
    assert!(ev.verify(&late).is_err());
    // Flipped bits: in MRTD (signed by the attestation key) and in the QE report.
    for off in [body + 136, body + 520] {
        let mut bad = raw.clone();
        bad[off] ^= 1;
        let r = Evidence::sniff(&bad).unwrap().verify(&tdx_trust(&dir));
        assert!(r.is_err(), "flipped bit at {off} must fail");
    }
    // No collateral: the signatures and the PCK chain still verify, but the TCB status is
    // unknown and the claims say so.
    let mut none = Trust::new();
    none.at = Some(AT_2025_07_01);
    let v = ev.verify(&none).unwrap();
    assert_eq!(v.claims().tcb_status, None);
    assert!(!v.claims().tdx.as_ref().unwrap().collateral);
    assert_eq!(v.claims().endorsement.last().unwrap(), "Intel SGX Root CA");
    // The wrong certificate: one byte of the PCK certificate inside the quote changed (a
    // base64 letter of its PEM, case flipped), or the quote checked after the PCK expired.
    let pem_at = raw
        .windows(27)
        .position(|w| w == b"-----BEGIN CERTIFICATE-----")
        .unwrap()
        + 200;
    let mut bad = raw;
    assert!(bad[pem_at].is_ascii_alphabetic());
    bad[pem_at] ^= 0x20;
    let e = Evidence::sniff(&bad).unwrap().verify(&none).unwrap_err();
    eprintln!("altered PCK certificate: {e}");
    assert!(
        Evidence::sniff(&bad)
            .unwrap()
            .verify(&tdx_trust(&dir))
            .is_err()
    );
    let mut later = Trust::new();
    later.at = Some(4_000_000_000);
    assert!(ev.verify(&later).is_err());
}

#[test]
fn debug_td_is_refused_naming_the_attribute() {
    let Some(dir) = vectors() else { return };
    let raw = read(&dir.join("tdx/quote-4-for-ccel-1.bin"));
    let ev = Evidence::sniff(&raw).unwrap();
    let mut t = Trust::new();
    t.at = Some(AT_2025_07_01);
    let e = ev.verify(&t).unwrap_err();
    assert!(e.to_string().contains("TDATTRIBUTES.DEBUG"), "{e}");
    t.allow_debug = true;
    let v = ev.verify(&t).unwrap();
    assert!(v.claims().debug);
    // A debuggable guest never satisfies ccr's default policy either.
    assert_eq!(v.claims().to_policy_input()["debug"], true);
}

#[test]
fn tdx_quote_v5_parses() {
    let Some(dir) = vectors() else { return };
    let raw = read(&dir.join("tdx/quote-2-no-collateral.bin"));
    let q = ccr_attest::tdx::TdQuote::parse(&raw).unwrap();
    assert_eq!(q.version(), 5);
    let c = q.claims(Platform::Tdx, None, Vec::new());
    // v5: header 48, body type (2) and size (4), then the body.
    assert_eq!(
        c.measurement.as_deref(),
        Some(hex_at(&raw, 54 + 136, 48).as_str())
    );
}

fn az_evidence(dir: &Path, which: &str) -> serde_json::Value {
    serde_json::from_slice(&read(&dir.join(which).join("evidence-v1.json"))).unwrap()
}

#[test]
fn azure_snp_vtpm_evidence_verifies() {
    let Some(dir) = vectors() else { return };
    let v = az_evidence(&dir, "az-snp-vtpm");
    let ev = Evidence::from_kbs("az-snp-vtpm", &v).unwrap();
    let mut trust = Trust::new();
    trust.at = Some(AT_2025_07_01);
    let ok = ev.verify(&trust).unwrap();
    let c = ok.claims();
    assert_eq!(c.platform, Platform::AzSnpVtpm);
    assert_eq!(c.report_data, hex::encode(b"challenge"));
    use base64::Engine;
    let hcl = ccr_attest::evidence::b64("hcl", v["hcl_report"].as_str().unwrap()).unwrap();
    // The SNP report sits at offset 32 of the HCL report.
    assert_eq!(
        c.measurement.as_deref(),
        Some(hex_at(&hcl, 32 + 0x90, 48).as_str())
    );
    let vt = c.vtpm.as_ref().unwrap();
    assert!(!vt.pcrs.is_empty());
    let input = c.to_policy_input();
    assert_eq!(
        input["x-ms-isolation-tee.x-ms-attestation-type"],
        "sevsnpvm"
    );

    // A flipped bit in the vTPM quote's message, its signature, a PCR value, the HCL runtime
    // data (which unbinds the AK), and a wrong VCEK: each fails.
    let mutate = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut m = v.clone();
        f(&mut m);
        Evidence::from_kbs("az-snp-vtpm", &m)
            .and_then(|e| e.verify(&trust))
            .map(|_| ())
    };
    let flip_hex = |s: &str, at: usize| {
        let mut b = hex::decode(s).unwrap();
        b[at] ^= 1;
        hex::encode(b)
    };
    assert!(
        mutate(&|m| {
            let s = flip_hex(m["tpm_quote"]["message"].as_str().unwrap(), 20);
            m["tpm_quote"]["message"] = s.into();
        })
        .is_err()
    );
    assert!(
        mutate(&|m| {
            let s = flip_hex(m["tpm_quote"]["signature"].as_str().unwrap(), 3);
            m["tpm_quote"]["signature"] = s.into();
        })
        .is_err()
    );
    let e = mutate(&|m| {
        let s = flip_hex(m["tpm_quote"]["pcrs"][0].as_str().unwrap(), 0);
        m["tpm_quote"]["pcrs"][0] = s.into();
    })
    .unwrap_err();
    assert!(e.to_string().contains("pcrDigest"), "{e}");
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let e = mutate(&|m| {
        let mut h = ccr_attest::evidence::b64("hcl", m["hcl_report"].as_str().unwrap()).unwrap();
        // Inside the runtime data JSON: the case of one base64url letter of the AK's modulus.
        let at = h.windows(5).position(|w| w == b"\"n\":\"").unwrap() + 20;
        assert!(h[at].is_ascii_alphabetic());
        h[at] ^= 0x20;
        m["hcl_report"] = b64.encode(h).into();
    })
    .unwrap_err();
    assert!(e.to_string().contains("HCL.report_data"), "{e}");
    let wrong = read(&dir.join("snp/report-1.vcek.der"));
    let e = mutate(&|m| {
        m["vcek"] = base64::engine::general_purpose::STANDARD
            .encode(&wrong)
            .into();
    })
    .unwrap_err();
    eprintln!("wrong VCEK: {e}");
}

#[test]
fn azure_tdx_vtpm_evidence_verifies() {
    let Some(dir) = vectors() else { return };
    let v = az_evidence(&dir, "az-tdx-vtpm");
    let ev = Evidence::from_kbs("az-tdx-vtpm", &v).unwrap();
    // The vectors carry no collateral for this quote's FMSPC: signatures and chains verify,
    // the TCB status stays unknown.
    let mut trust = Trust::new();
    trust.at = Some(AT_2025_07_01);
    let ok = ev.verify(&trust).unwrap();
    let c = ok.claims();
    assert_eq!(c.platform, Platform::AzTdxVtpm);
    assert_eq!(c.report_data, hex::encode(b"challenge"));
    assert_eq!(c.tcb_status, None);
    let tdq = ccr_attest::evidence::b64("td", v["td_quote"].as_str().unwrap()).unwrap();
    assert_eq!(
        c.measurement.as_deref(),
        Some(hex_at(&tdq, 48 + 136, 48).as_str())
    );
    assert_eq!(
        c.to_policy_input()["x-ms-isolation-tee.x-ms-attestation-type"],
        "tdxvm"
    );
    // A flipped bit in the TD quote's body, and a TD quote from another TD (quote-1): refused.
    let mut m = v.clone();
    let mut q = tdq;
    q[48 + 136] ^= 1;
    m["td_quote"] = base64::engine::general_purpose::STANDARD.encode(&q).into();
    assert!(
        Evidence::from_kbs("az-tdx-vtpm", &m)
            .unwrap()
            .verify(&trust)
            .is_err()
    );
    let mut m = v.clone();
    m["td_quote"] = base64::engine::general_purpose::STANDARD
        .encode(read(&dir.join("tdx/quote-1.bin")))
        .into();
    let e = Evidence::from_kbs("az-tdx-vtpm", &m)
        .unwrap()
        .verify(&trust)
        .unwrap_err();
    assert!(e.to_string().contains("HCL.td_report"), "{e}");
    // The parts, one by one: the AK bound in the TDREPORT's report_data signs the quote over
    // the PCRs given.
    let hcl_b = ccr_attest::evidence::b64("hcl", v["hcl_report"].as_str().unwrap()).unwrap();
    let hcl = ccr_attest::vtpm::HclReport::parse(&hcl_b).unwrap();
    assert_eq!(hcl.report_type(), ccr_attest::vtpm::HclReportType::Tdx);
    use sha2::Digest;
    let td = hcl.hw_report();
    assert_eq!(
        &td[128..160],
        sha2::Sha256::digest(hcl.runtime_data()).as_slice()
    );
    let q = ccr_attest::vtpm::TpmQuote {
        message: hex::decode(v["tpm_quote"]["message"].as_str().unwrap()).unwrap(),
        signature: hex::decode(v["tpm_quote"]["signature"].as_str().unwrap()).unwrap(),
        pcrs: v["tpm_quote"]["pcrs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                hex::decode(p.as_str().unwrap())
                    .unwrap()
                    .try_into()
                    .unwrap()
            })
            .collect(),
    };
    let info = q.verify(&hcl.ak_pub().unwrap()).unwrap();
    assert_eq!(info.extra_data, b"challenge");
    let mut bad = q;
    bad.message[30] ^= 1;
    assert!(bad.verify(&hcl.ak_pub().unwrap()).is_err());
    // The TD quote inside parses, and its body is the HCL report's TDREPORT.
    let tq = ccr_attest::tdx::TdQuote::parse(
        &ccr_attest::evidence::b64("td", v["td_quote"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(&tq.report_data()[..], &td[128..192]);
}

#[test]
fn trustee_shaped_snp_evidence_verifies_like_ours() {
    let Some(dir) = vectors() else { return };
    use sev::parser::ByteParser;
    let raw = read(&dir.join("snp/report-1.bin"));
    let vcek = read(&dir.join("snp/report-1.vcek.der"));
    // Trustee's SnpEvidence: the sev crate's AttestationReport as JSON, and a certificate table
    // of (cert_type, bytes).
    let report = sev::firmware::guest::AttestationReport::from_bytes(&raw).unwrap();
    let v = serde_json::json!({
        "attestation_report": report,
        "cert_chain": [{"cert_type": "VCEK", "data": vcek}],
    });
    let mut t = Trust::new();
    t.at = Some(AT_2025_07_01);
    let ours = Evidence::sniff(&raw).unwrap();
    let mut t2 = t.clone();
    t2.add_file(&dir.join("snp/report-1.vcek.der")).unwrap();
    let a = ours.verify(&t2).unwrap();
    let b = Evidence::from_kbs("snp", &v).unwrap().verify(&t).unwrap();
    assert_eq!(a.claims(), b.claims());
    assert_eq!(
        a.digest(),
        b.digest(),
        "the re-encoded report is the original"
    );
    // A changed measurement in the JSON fails the signature.
    let mut bad = v;
    bad["attestation_report"]["measurement"][0] = serde_json::json!(
        (bad["attestation_report"]["measurement"][0]
            .as_u64()
            .unwrap()
            ^ 1)
    );
    assert!(Evidence::from_kbs("snp", &bad).unwrap().verify(&t).is_err());
}

#[test]
fn every_claim_name_the_verifiers_produce_is_in_the_vocabulary() {
    let Some(dir) = vectors() else { return };
    let mut t = Trust::new();
    t.at = Some(AT_2025_07_01);
    t.add_file(&dir.join("snp/report-1.vcek.der")).unwrap();
    t.add_file(&dir.join("tdx/quote-1.collateral.json"))
        .unwrap();
    t.add_file(&dir.join("aci/uvm_host_amd_certificate.json"))
        .unwrap();
    let mut checked = 0;
    for f in [
        "snp/report-1.bin",
        "tdx/quote-1.bin",
        "aci/snp_report.bin",
        "az-snp-vtpm/evidence-v1.json",
    ] {
        let v = Evidence::sniff(&read(&dir.join(f)))
            .unwrap()
            .verify(&t)
            .unwrap();
        for k in v.claims().to_policy_input().as_object().unwrap().keys() {
            assert!(
                ccr_attest::is_claim_name(k),
                "{f}: claim `{k}` is not in CLAIM_NAMES"
            );
            checked += 1;
        }
    }
    assert!(checked > 150, "{checked}");
}
