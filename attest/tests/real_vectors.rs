//! The SNP verifier that checks sim reports also checks real SEV-SNP reports, with AMD's roots
//! and the VCEK/VLEK from `../shared/vectors` (skipped with a reason when that folder is absent).

use std::path::PathBuf;

use ccr_attest::Platform;
use ccr_attest::snp::{SnpReport, SnpRoots};

fn vectors() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors/snp");
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

fn roots(dir: &std::path::Path, product: &str) -> SnpRoots {
    let r = dir.join("amd-roots").join(product);
    SnpRoots::from_pem(
        &std::fs::read(r.join("ark.pem")).unwrap(),
        &std::fs::read(r.join("ask.pem")).unwrap(),
    )
    .unwrap()
}

fn verify_with_any_root(
    dir: &std::path::Path,
    report: &str,
    vek: &str,
) -> Result<(String, ccr_attest::VerifiedEvidence), String> {
    let rep =
        SnpReport::parse(&std::fs::read(dir.join(report)).unwrap()).map_err(|e| e.to_string())?;
    let vek = std::fs::read(dir.join(vek)).unwrap();
    let mut errors = Vec::new();
    for product in ["milan", "genoa", "turin"] {
        let roots = roots(dir, product);
        match roots.verify(&rep, &vek, Platform::Snp) {
            Ok(v) => return Ok((product.to_string(), v)),
            Err(e) => errors.push(format!("{product}: {e}")),
        }
    }
    Err(errors.join("; "))
}

#[test]
fn real_vcek_signed_report_verifies_against_amd_roots() {
    let Some(dir) = vectors() else { return };
    let (product, v) = verify_with_any_root(&dir, "report-1.bin", "report-1.vcek.der").unwrap();
    let c = v.claims();
    assert_eq!(c.platform, Platform::Snp);
    assert_eq!(c.report_version, 2);
    assert_eq!(c.measurement.len(), 96);
    eprintln!(
        "report-1.bin verified with the {product} roots; measurement {}",
        c.measurement
    );
}

#[test]
fn real_report_with_a_flipped_byte_or_the_wrong_vcek_fails() {
    let Some(dir) = vectors() else { return };
    let mut raw = std::fs::read(dir.join("report-1.bin")).unwrap();
    raw[0x90] ^= 1; // MEASUREMENT
    let rep = SnpReport::parse(&raw).unwrap();
    let vek = std::fs::read(dir.join("report-1.vcek.der")).unwrap();
    for product in ["milan", "genoa", "turin"] {
        let roots = roots(&dir, product);
        assert!(roots.verify(&rep, &vek, Platform::Snp).is_err());
    }
    assert!(verify_with_any_root(&dir, "report-1.bin", "vcek-invalid.der").is_err());
}
