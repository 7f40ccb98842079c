//! # ccr-attest: attestation evidence and its verification into claims
//!
//! ccr asks the platform for evidence whose `report_data` binds the broker's nonce and the
//! runtime public key ([`report_data::kbs_report_data`], the KBS protocol's binding), and the
//! broker verifies that evidence into [`Claims`] that the release policy is evaluated over.
//!
//! Platforms (see DESIGN.md): this version implements the SEV-SNP report layout and its
//! verification ([`snp`]) and the software [`sim`] platform, which makes reports in that same
//! layout, signed by a locally made ARK → ASK → VCEK chain, and is verified by the same code
//! against that local ARK. `sim` evidence always yields `platform: "sim"` claims, can never
//! chain to AMD's roots, and every release policy denies it unless it names `sim`.
//!
//! Cores are free of I/O: parsing and verification take bytes and return values; only
//! [`sim::SimAuthority::load_or_create`] touches its state folder.
//!
//! Only the verifier can build a [`VerifiedEvidence`], so key release (which takes one) cannot
//! skip verification.

#![forbid(unsafe_code)]

pub mod attester;
pub mod error;
pub mod evidence;
pub mod report_data;
pub mod sim;
pub mod snp;

use serde::Serialize;
use serde_json::{Value, json};

pub use error::AttestError;
pub use evidence::SnpEvidence;

/// A confidential-computing platform, as named in evidence, claims and policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Platform {
    /// The software simulator: local runs and tests only.
    Sim,
    /// AMD SEV-SNP (bare guest or ACI confidential container).
    Snp,
}

impl Platform {
    /// The platform's name in claims and in the KBS `tee` field (`sim`, `snp`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sim => "sim",
            Self::Snp => "snp",
        }
    }

    /// Parses a platform name.
    ///
    /// # Errors
    /// [`AttestError::Field`] for an unknown name.
    pub fn parse(s: &str) -> Result<Self, AttestError> {
        match s {
            "sim" => Ok(Self::Sim),
            "snp" => Ok(Self::Snp),
            other => Err(AttestError::Field {
                field: "tee",
                reason: format!("unknown platform `{other}` (known: sim, snp)"),
            }),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The claims of verified SNP-layout evidence (SNP and sim). Hex strings are lowercase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Claims {
    /// The platform that produced the evidence.
    pub platform: Platform,
    /// Report `VERSION` (2 to 5).
    pub report_version: u32,
    /// `MEASUREMENT`, 48 bytes as 96 hex characters (the launch digest).
    pub measurement: String,
    /// `HOST_DATA`, 32 bytes as 64 hex characters.
    pub host_data: String,
    /// `REPORT_DATA`, 64 bytes as 128 hex characters.
    pub report_data: String,
    /// `POLICY`, the guest policy bits.
    pub policy: u64,
    /// `POLICY.DEBUG`: debugging allowed (the guest's memory is readable by the host).
    pub debug: bool,
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
    /// `CHIP_ID`, 64 bytes hex.
    pub chip_id: String,
    /// `KEY_INFO.SIGNING_KEY`.
    pub signing_key: snp::SigningKey,
    /// `REPORTED_TCB`: the TCB the VCEK was derived for.
    pub reported_tcb: snp::Tcb,
    /// `CURRENT_TCB`.
    pub current_tcb: snp::Tcb,
    /// `COMMITTED_TCB`.
    pub committed_tcb: snp::Tcb,
    /// `LAUNCH_TCB`.
    pub launch_tcb: snp::Tcb,
}

impl Claims {
    /// The claims as the flat JSON object policies are evaluated over: ccr's names
    /// (`platform`, `measurement`, `host_data`, `report_data`, `debug`, `vmpl`, `policy`,
    /// `guest_svn`, `tcb.bootloader`, `tcb.tee`, `tcb.snp`, `tcb.microcode`, ...) and the
    /// names Microsoft Azure Attestation uses for the same values (`x-ms-attestation-type`,
    /// `x-ms-sevsnpvm-launchmeasurement`, `x-ms-sevsnpvm-hostdata`,
    /// `x-ms-sevsnpvm-is-debuggable`, `x-ms-sevsnpvm-vmpl`, ...).
    pub fn to_policy_input(&self) -> Value {
        let attestation_type = match self.platform {
            Platform::Sim => "sim",
            Platform::Snp => "sevsnpvm",
        };
        json!({
            "platform": self.platform.as_str(),
            "report_version": self.report_version,
            "measurement": self.measurement,
            "host_data": self.host_data,
            "report_data": self.report_data,
            "policy": self.policy,
            "debug": self.debug,
            "migrate_ma": self.migrate_ma,
            "smt": self.smt,
            "vmpl": self.vmpl,
            "guest_svn": self.guest_svn,
            "family_id": self.family_id,
            "image_id": self.image_id,
            "id_key_digest": self.id_key_digest,
            "chip_id": self.chip_id,
            "signing_key": self.signing_key,
            "tcb.bootloader": self.reported_tcb.bootloader,
            "tcb.tee": self.reported_tcb.tee,
            "tcb.snp": self.reported_tcb.snp,
            "tcb.microcode": self.reported_tcb.microcode,
            "x-ms-attestation-type": attestation_type,
            "x-ms-sevsnpvm-launchmeasurement": self.measurement,
            "x-ms-sevsnpvm-hostdata": self.host_data,
            "x-ms-sevsnpvm-reportdata": self.report_data,
            "x-ms-sevsnpvm-is-debuggable": self.debug,
            "x-ms-sevsnpvm-vmpl": self.vmpl,
            "x-ms-sevsnpvm-guestsvn": self.guest_svn,
            "x-ms-sevsnpvm-familyId": self.family_id,
            "x-ms-sevsnpvm-imageId": self.image_id,
            "x-ms-sevsnpvm-idkeydigest": self.id_key_digest,
            "x-ms-sevsnpvm-bootloader-svn": self.reported_tcb.bootloader,
            "x-ms-sevsnpvm-tee-svn": self.reported_tcb.tee,
            "x-ms-sevsnpvm-snpfw-svn": self.reported_tcb.snp,
            "x-ms-sevsnpvm-microcode-svn": self.reported_tcb.microcode,
        })
    }
}

/// Evidence whose signatures and chain verified. Only this crate's verifiers make one.
#[derive(Debug, Clone)]
pub struct VerifiedEvidence {
    claims: Claims,
    digest: [u8; 48],
}

impl VerifiedEvidence {
    pub(crate) fn new(claims: Claims, digest: [u8; 48]) -> Self {
        Self { claims, digest }
    }

    /// The verified claims.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// SHA-384 of the evidence's signed report (48 bytes), recorded in audit logs and `run.json`.
    pub fn digest(&self) -> [u8; 48] {
        self.digest
    }

    /// Checks that `report_data` equals `expected` (from [`report_data::kbs_report_data`]).
    ///
    /// # Errors
    /// [`AttestError::ReportDataMismatch`].
    pub fn expect_report_data(
        &self,
        expected: &[u8; snp::REPORT_DATA_LEN],
    ) -> Result<(), AttestError> {
        if self.claims.report_data != hex::encode(expected) {
            return Err(AttestError::ReportDataMismatch);
        }
        Ok(())
    }
}
