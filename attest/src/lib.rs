//! # ccr-attest: attestation evidence and its verification into claims
//!
//! ccr asks the platform for evidence whose `report_data` binds the broker's nonce and the
//! runtime public key ([`report_data::kbs_report_data`], the KBS protocol's binding), and the
//! broker verifies that evidence into [`Claims`] that the release policy is evaluated over.
//!
//! Platforms (see DESIGN.md), each verified offline into one [`Claims`] vocabulary:
//! - `snp` ([`snp`], [`amd`], [`aci`]): the SEV-SNP report, VCEK/VLEK → ASK/ASVK → ARK, with
//!   AMD's ARKs embedded; on ACI the VCEK chain and the CCE policy from the security context;
//! - `tdx` ([`tdx`]): the TD quote v4/v5 with `dcap-qvl` and given collateral;
//! - `az-snp-vtpm`, `az-tdx-vtpm` ([`vtpm`]): Azure CVMs' HCL report, vTPM quote and AK;
//! - `gcp-cs` ([`cs`]): the Confidential Space attestation token, against given JWKS;
//! - `sim` ([`sim`]): reports in the SNP layout signed by a locally made ARK → ASK → VCEK chain,
//!   verified by the SNP code against that local ARK. `sim` evidence always yields
//!   `platform: "sim"` claims, can never chain to AMD's roots, and every release policy denies
//!   it unless it names `sim`.
//!
//! [`evidence::Evidence`] parses every platform's evidence in the KBS protocol's shapes and
//! [`evidence::Trust`] holds what verification needs (roots, collateral, JWKS, the time).
//!
//! Cores are free of I/O: parsing and verification take bytes and return values; only
//! [`sim::SimAuthority::load_or_create`] touches its state folder.
//!
//! Only the verifier can build a [`VerifiedEvidence`], so key release (which takes one) cannot
//! skip verification.

#![forbid(unsafe_code)]

pub mod aci;
pub mod amd;
pub mod attester;
pub mod certtable;
pub mod cs;
pub mod error;
pub mod evidence;
pub mod report_data;
pub mod sim;
pub mod snp;
pub mod tcb;
pub mod tdx;
pub mod unix_http;
pub mod vtpm;

use serde::Serialize;
use serde_json::{Map, Value, json};

pub use error::AttestError;
pub use evidence::SnpEvidence;

/// A confidential-computing platform, as named in evidence, claims, policies and the KBS `tee`
/// field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Platform {
    /// The software simulator: local runs and tests only.
    Sim,
    /// AMD SEV-SNP (bare guest or ACI confidential container).
    Snp,
    /// Intel TDX (TD quote).
    Tdx,
    /// Azure confidential VM on SEV-SNP: HCL report + vTPM quote.
    AzSnpVtpm,
    /// Azure confidential VM on TDX: HCL report + TD quote + vTPM quote.
    AzTdxVtpm,
    /// GCP Confidential Space: the launcher's OIDC attestation token.
    GcpCs,
}

/// Every platform name, in the order `--platform` documents them.
pub const PLATFORM_NAMES: &[&str] = &["sim", "snp", "tdx", "az-snp-vtpm", "az-tdx-vtpm", "gcp-cs"];

impl Platform {
    /// The platform's name in claims and in the KBS `tee` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sim => "sim",
            Self::Snp => "snp",
            Self::Tdx => "tdx",
            Self::AzSnpVtpm => "az-snp-vtpm",
            Self::AzTdxVtpm => "az-tdx-vtpm",
            Self::GcpCs => "gcp-cs",
        }
    }

    /// Parses a platform name.
    ///
    /// # Errors
    /// [`AttestError::Field`] for an unknown name.
    pub fn parse(s: &str) -> Result<Self, AttestError> {
        Ok(match s {
            "sim" => Self::Sim,
            "snp" => Self::Snp,
            "tdx" => Self::Tdx,
            "az-snp-vtpm" => Self::AzSnpVtpm,
            "az-tdx-vtpm" => Self::AzTdxVtpm,
            "gcp-cs" => Self::GcpCs,
            other => {
                return Err(AttestError::Field {
                    field: "tee",
                    reason: format!(
                        "unknown platform `{other}` (known: {})",
                        PLATFORM_NAMES.join(", ")
                    ),
                });
            }
        })
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every fixed claim name [`Claims::to_policy_input`] can produce, for policy checking.
pub const CLAIM_NAMES: &[&str] = &[
    // Common.
    "platform",
    "report_data",
    "measurement",
    "host_data",
    "debug",
    "tcb_status",
    "x-ms-attestation-type",
    // SEV-SNP.
    "report_version",
    "policy",
    "migrate_ma",
    "smt",
    "vmpl",
    "guest_svn",
    "family_id",
    "image_id",
    "id_key_digest",
    "chip_id",
    "signing_key",
    "product",
    "tcb.bootloader",
    "tcb.tee",
    "tcb.snp",
    "tcb.microcode",
    "x-ms-sevsnpvm-launchmeasurement",
    "x-ms-sevsnpvm-hostdata",
    "x-ms-sevsnpvm-reportdata",
    "x-ms-sevsnpvm-is-debuggable",
    "x-ms-sevsnpvm-vmpl",
    "x-ms-sevsnpvm-guestsvn",
    "x-ms-sevsnpvm-familyId",
    "x-ms-sevsnpvm-imageId",
    "x-ms-sevsnpvm-idkeydigest",
    "x-ms-sevsnpvm-authorkeydigest",
    "x-ms-sevsnpvm-chipid",
    "x-ms-sevsnpvm-bootloader-svn",
    "x-ms-sevsnpvm-tee-svn",
    "x-ms-sevsnpvm-snpfw-svn",
    "x-ms-sevsnpvm-microcode-svn",
    "x-ms-sevsnpvm-migration-allowed",
    "x-ms-sevsnpvm-smt-allowed",
    // MAA only (Key Vault policies): the compliance status MAA adds.
    "x-ms-compliance-status",
    // TDX.
    "quote_version",
    "mrtd",
    "rtmr0",
    "rtmr1",
    "rtmr2",
    "rtmr3",
    "mr_config_id",
    "mr_owner",
    "mr_owner_config",
    "mr_seam",
    "td_attributes",
    "xfam",
    "tee_tcb_svn",
    "advisory_ids",
    "collateral",
    "tdx_mrtd",
    "tdx_rtmr0",
    "tdx_rtmr1",
    "tdx_rtmr2",
    "tdx_rtmr3",
    "tdx_mrconfigid",
    "tdx_mrowner",
    "tdx_mrownerconfig",
    "tdx_mrseam",
    "tdx_report_data",
    "tdx_td_attributes_debug",
    "tdx_xfam",
    "attester_tcb_status",
    // Confidential Space token (top level; nested ones under `submods.`).
    "iss",
    "aud",
    "sub",
    "exp",
    "iat",
    "nbf",
    "eat_nonce",
    "eat_profile",
    "secboot",
    "oemid",
    "hwmodel",
    "swname",
    "swversion",
    "dbgstat",
    "google_service_accounts",
    "submods",
];

/// Prefixes of the claim-name families [`Claims::to_policy_input`] produces: vTPM PCRs, the
/// Azure runtime data, the nested TEE claims of Azure CVMs, Confidential Space's `submods`,
/// ACI's security context.
pub const CLAIM_PREFIXES: &[&str] = &[
    "pcr.",
    "x-ms-runtime.",
    "x-ms-isolation-tee.",
    "submods.",
    "aci.",
];

/// Whether `name` is a claim [`Claims::to_policy_input`] can produce.
pub fn is_claim_name(name: &str) -> bool {
    CLAIM_NAMES.contains(&name) || CLAIM_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Verified claims, in one vocabulary across platforms. Hex strings are lowercase.
///
/// | claim | snp / sim | tdx | az-snp-vtpm | az-tdx-vtpm | gcp-cs |
/// |---|---|---|---|---|---|
/// | `report_data` | `REPORT_DATA` (64 B) | `REPORTDATA` (64 B) | the vTPM quote's nonce (`extraData`) | same | the token's `eat_nonce` (hex) |
/// | `measurement` | `MEASUREMENT` (48 B) | `MRTD` (48 B) | SNP `MEASUREMENT` | `MRTD` | the container's `image_digest` |
/// | `host_data` | `HOST_DATA` (32 B) | `MRCONFIGID` (48 B) | SNP `HOST_DATA` | `MRCONFIGID` | none |
/// | `debug` | `POLICY.DEBUG` | `TDATTRIBUTES.DEBUG` | SNP `POLICY.DEBUG` | `TDATTRIBUTES.DEBUG` | `dbgstat` ≠ `disabled-since-boot` |
/// | `tcb_status` | none | from the collateral | none | none (no collateral) | none |
///
/// The platform-specific parts ([`snp::SnpClaims`], [`tdx::TdxClaims`], [`vtpm::VtpmClaims`],
/// [`cs::CsClaims`]) keep every other field; [`Claims::to_policy_input`] flattens all of it,
/// with the platforms' own names beside ccr's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Claims {
    /// The platform that produced the evidence.
    pub platform: Platform,
    /// The bytes the evidence binds for the relying party (hex).
    pub report_data: String,
    /// The launch measurement (hex), where the platform has one.
    pub measurement: Option<String>,
    /// Data the host fixed at launch (hex): ccr puts the contract digest there.
    pub host_data: Option<String>,
    /// Whether the guest is debuggable (its memory readable by the host).
    pub debug: bool,
    /// The TCB status from the collateral (`UpToDate`, `OutOfDate`, ...), where known.
    pub tcb_status: Option<String>,
    /// The endorsement chain that verified, leaf first (certificate common names, or the JWKS
    /// key id).
    pub endorsement: Vec<String>,
    /// SEV-SNP report fields (snp, sim, az-snp-vtpm).
    pub snp: Option<snp::SnpClaims>,
    /// TD quote fields (tdx, az-tdx-vtpm).
    pub tdx: Option<tdx::TdxClaims>,
    /// Azure vTPM fields (az-snp-vtpm, az-tdx-vtpm).
    pub vtpm: Option<vtpm::VtpmClaims>,
    /// Confidential Space token claims (gcp-cs).
    pub cs: Option<cs::CsClaims>,
    /// ACI security-context claims (snp on ACI).
    pub aci: Option<aci::AciClaims>,
}

impl Claims {
    /// The claims as the flat JSON object policies are evaluated over.
    ///
    /// Common names: `platform`, `report_data`, `measurement`, `host_data`, `debug`,
    /// `tcb_status`. SNP: `report_version`, `policy`, `migrate_ma`, `smt`, `vmpl`, `guest_svn`,
    /// `family_id`, `image_id`, `id_key_digest`, `chip_id`, `signing_key`, `tcb.bootloader`,
    /// `tcb.tee`, `tcb.snp`, `tcb.microcode`, and Microsoft Azure Attestation's names for the
    /// same values (`x-ms-attestation-type`, `x-ms-sevsnpvm-launchmeasurement`,
    /// `x-ms-sevsnpvm-hostdata`, `x-ms-sevsnpvm-is-debuggable`, `x-ms-sevsnpvm-vmpl`, ...).
    /// TDX: `mrtd`, `rtmr0`..`rtmr3`, `mr_config_id`, `mr_owner`, `mr_owner_config`,
    /// `td_attributes`, `xfam`, `tee_tcb_svn`, `advisory_ids`, and MAA's `tdx_*` names. vTPM:
    /// `pcr.0`..`pcr.23` and `x-ms-isolation-tee.*` (the nested SNP/TDX claims under MAA's
    /// prefix). Confidential Space: the token's own names (`hwmodel`, `swname`, `dbgstat`,
    /// `submods.container.image_digest`, ...).
    pub fn to_policy_input(&self) -> Value {
        let mut m = Map::new();
        m.insert("platform".into(), json!(self.platform.as_str()));
        m.insert("report_data".into(), json!(self.report_data));
        m.insert("measurement".into(), json!(self.measurement));
        m.insert("host_data".into(), json!(self.host_data));
        m.insert("debug".into(), json!(self.debug));
        m.insert("tcb_status".into(), json!(self.tcb_status));
        let attestation_type = match self.platform {
            Platform::Sim => "sim",
            Platform::Snp => "sevsnpvm",
            Platform::Tdx => "tdxvm",
            Platform::AzSnpVtpm => "azurevm",
            Platform::AzTdxVtpm => "azurevm",
            Platform::GcpCs => "gcp-confidential-space",
        };
        m.insert("x-ms-attestation-type".into(), json!(attestation_type));
        let nested = matches!(self.platform, Platform::AzSnpVtpm | Platform::AzTdxVtpm);
        let mut tee = Map::new();
        if let Some(s) = &self.snp {
            snp_policy_input(self, s, &mut m);
            if nested {
                snp_policy_input(self, s, &mut tee);
                tee.insert("x-ms-attestation-type".into(), json!("sevsnpvm"));
            }
        }
        if let Some(t) = &self.tdx {
            t.policy_input(self, &mut m);
            if nested {
                t.policy_input(self, &mut tee);
                tee.insert("x-ms-attestation-type".into(), json!("tdxvm"));
            }
        }
        if let Some(v) = &self.vtpm {
            v.policy_input(&mut m);
        }
        if let Some(c) = &self.cs {
            c.policy_input(&mut m);
        }
        if let Some(a) = &self.aci {
            m.insert(
                "aci.security_policy_digest".into(),
                json!(a.security_policy_digest),
            );
            m.insert(
                "aci.reference_info_digest".into(),
                json!(a.reference_info_digest),
            );
            m.insert(
                "aci.ccr_contract_digest".into(),
                json!(a.ccr_contract_digest),
            );
        }
        for (k, v) in tee {
            if k.starts_with("x-ms-") || k.starts_with("tdx_") {
                m.insert(format!("x-ms-isolation-tee.{k}"), v);
            }
        }
        Value::Object(m)
    }
}

fn snp_policy_input(c: &Claims, s: &snp::SnpClaims, m: &mut Map<String, Value>) {
    let t = &s.reported_tcb;
    let entries = [
        ("report_version", json!(s.report_version)),
        ("policy", json!(s.policy)),
        ("migrate_ma", json!(s.migrate_ma)),
        ("smt", json!(s.smt)),
        ("vmpl", json!(s.vmpl)),
        ("guest_svn", json!(s.guest_svn)),
        ("family_id", json!(s.family_id)),
        ("image_id", json!(s.image_id)),
        ("id_key_digest", json!(s.id_key_digest)),
        ("chip_id", json!(s.chip_id)),
        ("signing_key", json!(s.signing_key)),
        ("product", json!(s.product)),
        ("tcb.bootloader", json!(t.bootloader)),
        ("tcb.tee", json!(t.tee)),
        ("tcb.snp", json!(t.snp)),
        ("tcb.microcode", json!(t.microcode)),
        ("x-ms-sevsnpvm-launchmeasurement", json!(c.measurement)),
        ("x-ms-sevsnpvm-hostdata", json!(c.host_data)),
        ("x-ms-sevsnpvm-reportdata", json!(c.report_data)),
        ("x-ms-sevsnpvm-is-debuggable", json!(c.debug)),
        ("x-ms-sevsnpvm-vmpl", json!(s.vmpl)),
        ("x-ms-sevsnpvm-guestsvn", json!(s.guest_svn)),
        ("x-ms-sevsnpvm-familyId", json!(s.family_id)),
        ("x-ms-sevsnpvm-imageId", json!(s.image_id)),
        ("x-ms-sevsnpvm-idkeydigest", json!(s.id_key_digest)),
        ("x-ms-sevsnpvm-authorkeydigest", json!(s.author_key_digest)),
        ("x-ms-sevsnpvm-chipid", json!(s.chip_id)),
        ("x-ms-sevsnpvm-bootloader-svn", json!(t.bootloader)),
        ("x-ms-sevsnpvm-tee-svn", json!(t.tee)),
        ("x-ms-sevsnpvm-snpfw-svn", json!(t.snp)),
        ("x-ms-sevsnpvm-microcode-svn", json!(t.microcode)),
        ("x-ms-sevsnpvm-migration-allowed", json!(s.migrate_ma)),
        ("x-ms-sevsnpvm-smt-allowed", json!(s.smt)),
    ];
    for (k, v) in entries {
        m.insert(k.into(), v);
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

    pub(crate) fn set_aci(&mut self, mut aci: aci::AciClaims, policy: &[u8]) {
        aci.ccr_contract_digest = aci::contract_digest_in_policy(policy);
        self.claims.aci = Some(aci);
    }

    /// The verified claims.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// SHA-384 of the evidence's signed structure (48 bytes), recorded in audit logs and
    /// `run.json`.
    pub fn digest(&self) -> [u8; 48] {
        self.digest
    }

    /// Checks that the evidence binds `expected` (from [`report_data::kbs_report_data`]).
    ///
    /// SNP and TDX carry all 64 bytes. The vTPM quote's nonce and the Confidential Space
    /// token's nonce carry the first 32 bytes ([`report_data::BOUND_PREFIX_LEN`]: the leading
    /// 32 bytes of the SHA-384), so the bound bytes must equal that prefix; fewer than 32 bytes
    /// never bind.
    ///
    /// # Errors
    /// [`AttestError::ReportDataMismatch`].
    pub fn expect_report_data(
        &self,
        expected: &[u8; snp::REPORT_DATA_LEN],
    ) -> Result<(), AttestError> {
        let bound = hex::decode(&self.claims.report_data).unwrap_or_default();
        if bound.len() < report_data::BOUND_PREFIX_LEN
            || bound.len() > expected.len()
            || bound[..] != expected[..bound.len()]
        {
            return Err(AttestError::ReportDataMismatch);
        }
        Ok(())
    }
}
