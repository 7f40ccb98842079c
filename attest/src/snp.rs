//! SEV-SNP attestation reports: layout, parsing and verification into claims.
//!
//! The report is the `ATTESTATION_REPORT` structure of the AMD SEV-SNP ABI specification
//! (publication 56860, section 7.3, table "ATTESTATION_REPORT Structure"): 1184 bytes, little
//! endian, signed with ECDSA P-384/SHA-384 over bytes `0x000..0x2A0` by the VCEK (or VLEK), whose
//! certificate chains to the ASK and the ARK with RSASSA-PSS/SHA-384.
//!
//! Parsing goes through the `sev` crate (`AttestationReport`, versions 2 to 5); the chain through
//! `sev::certs::snp::Chain` (pure Rust, `crypto_nossl`). The report signature is checked here over
//! the *received* bytes (not a re-encoding), with `p384`. The `sim` platform produces reports in
//! this exact layout and is verified by this same code, against its own local ARK.

use serde::Serialize;
use sev::firmware::guest::AttestationReport;
use sev::parser::ByteParser;
use sha2::{Digest, Sha384};

use crate::error::AttestError;

/// Size in bytes of an SNP attestation report (ABI spec, table ATTESTATION_REPORT).
pub const REPORT_LEN: usize = 0x4A0;
/// Bytes `0..SIGNED_LEN` are covered by the report signature.
pub const SIGNED_LEN: usize = 0x2A0;
/// Size in bytes of `REPORT_DATA`.
pub const REPORT_DATA_LEN: usize = 64;
/// Size in bytes of `MEASUREMENT` (SHA-384).
pub const MEASUREMENT_LEN: usize = 48;
/// Size in bytes of `HOST_DATA`.
pub const HOST_DATA_LEN: usize = 32;
/// Offset of the signature's `R` component (72 bytes, little endian, 48 used).
pub const SIG_R_OFFSET: usize = 0x2A0;
/// Offset of the signature's `S` component (72 bytes, little endian, 48 used).
pub const SIG_S_OFFSET: usize = 0x2E8;
/// `SIGNATURE_ALGO` value for ECDSA P-384 with SHA-384.
pub const SIG_ALGO_ECDSA_P384_SHA384: u32 = 1;
/// Lowest report version accepted.
pub const MIN_VERSION: u32 = 2;
/// Highest report version accepted.
pub const MAX_VERSION: u32 = 5;

/// Field offsets of the report (ABI spec table ATTESTATION_REPORT), used to write `sim` reports.
pub mod offsets {
    /// `VERSION` (u32).
    pub const VERSION: usize = 0x00;
    /// `GUEST_SVN` (u32).
    pub const GUEST_SVN: usize = 0x04;
    /// `POLICY` (u64).
    pub const POLICY: usize = 0x08;
    /// `VMPL` (u32).
    pub const VMPL: usize = 0x30;
    /// `SIGNATURE_ALGO` (u32).
    pub const SIGNATURE_ALGO: usize = 0x34;
    /// `CURRENT_TCB` (u64).
    pub const CURRENT_TCB: usize = 0x38;
    /// `PLATFORM_INFO` (u64).
    pub const PLATFORM_INFO: usize = 0x40;
    /// `KEY_INFO` (u32): bits 4:2 `SIGNING_KEY` (0 VCEK, 1 VLEK).
    pub const KEY_INFO: usize = 0x48;
    /// `REPORT_DATA` (64 bytes).
    pub const REPORT_DATA: usize = 0x50;
    /// `MEASUREMENT` (48 bytes).
    pub const MEASUREMENT: usize = 0x90;
    /// `HOST_DATA` (32 bytes).
    pub const HOST_DATA: usize = 0xC0;
    /// `REPORT_ID` (32 bytes).
    pub const REPORT_ID: usize = 0x140;
    /// `REPORTED_TCB` (u64).
    pub const REPORTED_TCB: usize = 0x180;
    /// `CPUID_FAM_ID` (u8, version 3 and later).
    pub const CPUID_FAM_ID: usize = 0x188;
    /// `CPUID_MOD_ID` (u8, version 3 and later).
    pub const CPUID_MOD_ID: usize = 0x189;
    /// `CPUID_STEP` (u8, version 3 and later).
    pub const CPUID_STEP: usize = 0x18A;
    /// `CHIP_ID` (64 bytes).
    pub const CHIP_ID: usize = 0x1A0;
    /// `COMMITTED_TCB` (u64).
    pub const COMMITTED_TCB: usize = 0x1E0;
    /// `CURRENT_BUILD`, `CURRENT_MINOR`, `CURRENT_MAJOR` (u8 each).
    pub const CURRENT_VERSION: usize = 0x1E8;
    /// `COMMITTED_BUILD`, `COMMITTED_MINOR`, `COMMITTED_MAJOR` (u8 each).
    pub const COMMITTED_VERSION: usize = 0x1EC;
    /// `LAUNCH_TCB` (u64).
    pub const LAUNCH_TCB: usize = 0x1F0;
}

pub use crate::tcb::Tcb;

/// Which key signed the report (`KEY_INFO.SIGNING_KEY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SigningKey {
    /// Versioned Chip Endorsement Key.
    Vcek,
    /// Versioned Loaded Endorsement Key.
    Vlek,
}

/// A parsed SNP report with its raw bytes kept (for signature checks and digests).
#[derive(Debug, Clone)]
pub struct SnpReport {
    raw: Box<[u8; REPORT_LEN]>,
    parsed: AttestationReport,
}

impl SnpReport {
    /// Parses a report.
    ///
    /// # Errors
    /// [`AttestError::Length`] when `bytes` is not 1184 bytes (truncated or oversized);
    /// [`AttestError::Field`] for an unsupported version, signature algorithm or CPU family.
    pub fn parse(bytes: &[u8]) -> Result<Self, AttestError> {
        let raw: [u8; REPORT_LEN] = bytes.try_into().map_err(|_| AttestError::Length {
            what: "SNP attestation report",
            expected: REPORT_LEN,
            got: bytes.len(),
        })?;
        let version = u32::from_le_bytes(raw[0..4].try_into().unwrap_or([0; 4]));
        if !(MIN_VERSION..=MAX_VERSION).contains(&version) {
            return Err(AttestError::Field {
                field: "VERSION",
                reason: format!("{version}, supported are {MIN_VERSION} to {MAX_VERSION}"),
            });
        }
        // Only 48 of the 72 bytes of R and S are used, and the rest of the signature area is
        // reserved: all of it must be zero (it is outside the signed bytes).
        let reserved_zero = raw[SIG_R_OFFSET + 48..SIG_S_OFFSET]
            .iter()
            .chain(&raw[SIG_S_OFFSET + 48..])
            .all(|&b| b == 0);
        if !reserved_zero {
            return Err(AttestError::Field {
                field: "SIGNATURE",
                reason: "reserved bytes of the signature area are not zero".into(),
            });
        }
        let parsed = AttestationReport::from_bytes(&raw).map_err(|e| AttestError::Field {
            field: "report",
            reason: e.to_string(),
        })?;
        if parsed.sig_algo != SIG_ALGO_ECDSA_P384_SHA384 {
            return Err(AttestError::Field {
                field: "SIGNATURE_ALGO",
                reason: format!("{}, expected 1 (ECDSA P-384 SHA-384)", parsed.sig_algo),
            });
        }
        Ok(Self {
            raw: Box::new(raw),
            parsed,
        })
    }

    /// The raw 1184 bytes.
    pub fn bytes(&self) -> &[u8; REPORT_LEN] {
        &self.raw
    }

    /// The `sev` crate's view of the report.
    pub fn parsed(&self) -> &AttestationReport {
        &self.parsed
    }

    /// Which key signed the report.
    pub fn signing_key(&self) -> SigningKey {
        if self.parsed.key_info.signing_key() == 1 {
            SigningKey::Vlek
        } else {
            SigningKey::Vcek
        }
    }

    /// Checks the ECDSA P-384 signature over bytes `0..0x2A0` with the VCEK/VLEK public key
    /// `vek_sec1` (SEC1 encoding, as in the certificate's SubjectPublicKeyInfo).
    ///
    /// # Errors
    /// [`AttestError::Signature`] when the signature does not verify or is malformed.
    pub fn verify_signature_with_key(&self, vek_sec1: &[u8]) -> Result<(), AttestError> {
        let sig_err = |reason: String| AttestError::Signature {
            what: "SNP report signature (VCEK/VLEK)",
            reason,
        };
        // ring's ECDSA_P384_SHA384_FIXED: SEC1 public key, big-endian R || S, over the message.
        let mut sig = [0u8; 96];
        sig[..48].copy_from_slice(&self.raw[SIG_R_OFFSET..SIG_R_OFFSET + 48]);
        sig[48..].copy_from_slice(&self.raw[SIG_S_OFFSET..SIG_S_OFFSET + 48]);
        sig[..48].reverse();
        sig[48..].reverse();
        if vek_sec1.len() != 97 || vek_sec1[0] != 0x04 {
            return Err(sig_err(
                "VEK public key is not an uncompressed P-384 point".into(),
            ));
        }
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P384_SHA384_FIXED, vek_sec1)
            .verify(&self.raw[..SIGNED_LEN], &sig)
            .map_err(|_| sig_err("does not verify with the VEK".into()))
    }

    /// The claims of this report, for `platform` (no endorsement yet: see [`verify_report`]).
    pub fn claims(&self, platform: crate::Platform) -> crate::Claims {
        let p = &self.parsed;
        crate::Claims {
            platform,
            report_data: hex::encode(p.report_data),
            measurement: Some(hex::encode(p.measurement)),
            host_data: Some(hex::encode(p.host_data)),
            debug: p.policy.debug_allowed(),
            tcb_status: None,
            endorsement: Vec::new(),
            snp: Some(self.snp_claims()),
            tdx: None,
            vtpm: None,
            cs: None,
            aci: None,
        }
    }

    /// The SNP-specific claims of this report.
    pub fn snp_claims(&self) -> SnpClaims {
        let p = &self.parsed;
        SnpClaims {
            report_version: p.version,
            policy: p.policy.0,
            migrate_ma: p.policy.migrate_ma_allowed(),
            smt: p.policy.smt_allowed(),
            vmpl: p.vmpl,
            guest_svn: p.guest_svn,
            family_id: hex::encode(p.family_id),
            image_id: hex::encode(p.image_id),
            id_key_digest: hex::encode(p.id_key_digest),
            author_key_digest: hex::encode(p.author_key_digest),
            report_id: hex::encode(p.report_id),
            chip_id: hex::encode(p.chip_id),
            signing_key: self.signing_key(),
            reported_tcb: p.reported_tcb.into(),
            current_tcb: p.current_tcb.into(),
            committed_tcb: p.committed_tcb.into(),
            launch_tcb: p.launch_tcb.into(),
            product: None,
            vek_product_name: None,
            csp_id: None,
        }
    }
}

/// The SEV-SNP claims of a report (ABI spec table ATTESTATION_REPORT), beside the common ones
/// (`measurement` = `MEASUREMENT`, `host_data` = `HOST_DATA`, `report_data` = `REPORT_DATA`,
/// `debug` = `POLICY.DEBUG`). Hex strings are lowercase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnpClaims {
    /// Report `VERSION` (2 to 5).
    pub report_version: u32,
    /// `POLICY`, the guest policy bits.
    pub policy: u64,
    /// `POLICY.MIGRATE_MA`: association with a migration agent allowed.
    pub migrate_ma: bool,
    /// `POLICY.SMT`: simultaneous multithreading allowed.
    pub smt: bool,
    /// `VMPL` of the request (0 is the most privileged).
    pub vmpl: u32,
    /// `GUEST_SVN`.
    pub guest_svn: u32,
    /// `FAMILY_ID`, 16 bytes hex.
    pub family_id: String,
    /// `IMAGE_ID`, 16 bytes hex.
    pub image_id: String,
    /// `ID_KEY_DIGEST`, 48 bytes hex.
    pub id_key_digest: String,
    /// `AUTHOR_KEY_DIGEST`, 48 bytes hex.
    pub author_key_digest: String,
    /// `REPORT_ID`, 32 bytes hex.
    pub report_id: String,
    /// `CHIP_ID`, 64 bytes hex.
    pub chip_id: String,
    /// `KEY_INFO.SIGNING_KEY`.
    pub signing_key: SigningKey,
    /// `REPORTED_TCB`: the TCB the VCEK was derived for.
    pub reported_tcb: Tcb,
    /// `CURRENT_TCB`.
    pub current_tcb: Tcb,
    /// `COMMITTED_TCB`.
    pub committed_tcb: Tcb,
    /// `LAUNCH_TCB`.
    pub launch_tcb: Tcb,
    /// The product whose ARK anchored the chain (`milan`, `genoa`, `turin`, `sim`).
    pub product: Option<String>,
    /// The VEK's `productName` extension (for example `Milan-B0`).
    pub vek_product_name: Option<String>,
    /// A VLEK's `cspID` extension (the cloud provider it was issued to).
    pub csp_id: Option<String>,
}

pub use crate::amd::SnpRoots;

/// Verifies SNP-layout evidence: the VEK's chain to a trusted ARK ([`SnpRoots::verify_vek`],
/// each certificate valid at `at` when given, Unix seconds), the report signature with the VEK,
/// the VEK's TCB extensions against `REPORTED_TCB`, a VCEK's hwID against `CHIP_ID`, and that
/// `KEY_INFO.SIGNING_KEY` names the kind of key given (VCEK or VLEK).
///
/// # Errors
/// [`AttestError::Certificate`] when `vek_der` is not a certificate or its extensions are
/// malformed; [`AttestError::Chain`] when the chain or a validity period fails;
/// [`AttestError::Signature`] when the report signature fails; [`AttestError::Field`] naming
/// `REPORTED_TCB` or `CHIP_ID` when the VEK was not made for this report.
pub fn verify_report(
    roots: &SnpRoots,
    report: &SnpReport,
    vek_der: &[u8],
    platform: crate::Platform,
    at: Option<i64>,
) -> Result<crate::VerifiedEvidence, AttestError> {
    let vek = crate::amd::AmdCert::from_der_or_pem(vek_der, "VCEK/VLEK")?;
    let ext = crate::amd::VekExtensions::read(&vek)?;
    let chain = roots.verify_vek(&vek, at)?;
    report.verify_signature_with_key(vek.public_key_bytes())?;
    let is_vlek = vek.subject_cn().contains("VLEK") || ext.csp_id.is_some();
    match (report.signing_key(), is_vlek) {
        (SigningKey::Vcek, true) => {
            return Err(AttestError::Field {
                field: "KEY_INFO.SIGNING_KEY",
                reason: "the report says VCEK but a VLEK certificate was given".into(),
            });
        }
        (SigningKey::Vlek, false) => {
            return Err(AttestError::Field {
                field: "KEY_INFO.SIGNING_KEY",
                reason: "the report says VLEK but a VCEK certificate was given".into(),
            });
        }
        _ => {}
    }
    let rt: Tcb = report.parsed.reported_tcb.into();
    let et = ext.tcb;
    let fmc_differs = matches!((rt.fmc, et.fmc), (Some(a), Some(b)) if a != b);
    if (rt.bootloader, rt.tee, rt.snp, rt.microcode)
        != (et.bootloader, et.tee, et.snp, et.microcode)
        || fmc_differs
    {
        return Err(AttestError::Field {
            field: "REPORTED_TCB",
            reason: format!(
                "the report's TCB (bootloader {}, tee {}, snp {}, microcode {}) is not the one the {} was issued for (bootloader {}, tee {}, snp {}, microcode {})",
                rt.bootloader,
                rt.tee,
                rt.snp,
                rt.microcode,
                if is_vlek { "VLEK" } else { "VCEK" },
                et.bootloader,
                et.tee,
                et.snp,
                et.microcode
            ),
        });
    }
    if !is_vlek {
        let hw = ext
            .hw_id
            .as_deref()
            .ok_or_else(|| AttestError::Certificate {
                which: "VCEK",
                reason: format!("extension {} (hwID) is missing", crate::amd::OID_HW_ID),
            })?;
        if hw != &report.parsed.chip_id[..hw.len()] {
            return Err(AttestError::Field {
                field: "CHIP_ID",
                reason: format!(
                    "{} is not the VCEK's hwID {}",
                    hex::encode(&report.parsed.chip_id[..hw.len()]),
                    hex::encode(hw)
                ),
            });
        }
    }
    let mut claims = report.claims(platform);
    if let Some(s) = claims.snp.as_mut() {
        s.product = Some(chain.product.clone());
        s.vek_product_name = ext.product_name.clone();
        s.csp_id = ext.csp_id;
    }
    claims.endorsement = chain.names;
    Ok(crate::VerifiedEvidence::new(
        claims,
        Sha384::digest(report.bytes()).into(),
    ))
}

impl SnpRoots {
    /// [`verify_report`] at the current time.
    ///
    /// # Errors
    /// As [`verify_report`].
    pub fn verify(
        &self,
        report: &SnpReport,
        vek_der: &[u8],
        platform: crate::Platform,
    ) -> Result<crate::VerifiedEvidence, AttestError> {
        verify_report(
            self,
            report,
            vek_der,
            platform,
            Some(chrono::Utc::now().timestamp()),
        )
    }
}
