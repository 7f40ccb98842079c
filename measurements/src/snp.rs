//! The SEV-SNP launch digest (the report's `MEASUREMENT`, 48 bytes) of a guest started from
//! OVMF with SEV metadata: the `sev` crate's `measurement::snp` computation (AMD SEV-SNP ABI
//! spec §8.17 `SNP_LAUNCH_UPDATE` page digests; the OVMF SEV metadata sections; the SEV hashes
//! table of kernel, initrd and command line; one VMSA page per vCPU), which reproduces
//! `sev-snp-measure --mode snp` for QEMU (checked by this crate's tests on Debian's `OVMF.fd`).
//!
//! Inputs as `sev-snp-measure` names them: `--ovmf`, `--vcpus`, `--vcpu-type` (`EPYC-v4`,
//! `EPYC-Milan`, `EPYC-Genoa`, …), `--guest-features` (the VMSA's SEV_FEATURES, AMD APM vol. 2
//! §15.35.7: bit 0 SNPActive, bit 5 DebugSwap, so `0x1` or `0x21`), `--kernel`, `--initrd`,
//! `--append`, `--vmm-type` (`qemu`, `ec2`).

use std::path::PathBuf;

use sev::measurement::ovmf::{OVMF, SectionType};
use sev::measurement::snp::{SnpMeasurementArgs, snp_calc_launch_digest};
use sev::measurement::vcpu_types::CpuType;
use sev::measurement::vmsa::{GuestFeatures, VMMType};

use crate::MeasureError;

/// What goes into an SNP launch digest.
#[derive(Debug, Clone)]
pub struct SnpInputs {
    /// The firmware (OVMF with SEV metadata).
    pub ovmf: PathBuf,
    /// vCPU count (≥ 1).
    pub vcpus: u32,
    /// vCPU type as QEMU names it (`EPYC-v4`, `EPYC-Milan`, ...).
    pub vcpu_type: String,
    /// The VMSA's SEV_FEATURES (guest features), for instance 0x1.
    pub guest_features: u64,
    /// Kernel, initrd and command line measured through the SEV hashes table (direct boot).
    pub kernel: Option<PathBuf>,
    /// Initrd (with `kernel`).
    pub initrd: Option<PathBuf>,
    /// Kernel command line (with `kernel`).
    pub append: Option<String>,
    /// `qemu` (default) or `ec2`.
    pub vmm_type: Option<String>,
}

/// Computes the launch digest (48 bytes).
///
/// # Errors
/// [`MeasureError::Format`] naming the input: an unknown vCPU type or VMM type, zero vCPUs, a
/// firmware without SEV metadata, a kernel given for a firmware without an `SNP_KERNEL_HASHES`
/// section (as `sev-snp-measure` refuses it), initrd or command line without a kernel;
/// [`MeasureError::Io`] for an unreadable file.
pub fn launch_digest(i: &SnpInputs) -> Result<[u8; 48], MeasureError> {
    let bad = |field: &str, reason: String| MeasureError::Format {
        input: "SNP measurement",
        field: field.into(),
        reason,
    };
    if i.vcpus == 0 {
        return Err(bad("vcpus", "must be at least 1".into()));
    }
    let vcpu_type = CpuType::try_from(i.vcpu_type.as_str()).map_err(|_| {
        bad(
            "vcpu_type",
            format!(
                "unknown `{}` (QEMU names: EPYC-v4, EPYC-Milan, EPYC-Genoa, ...)",
                i.vcpu_type
            ),
        )
    })?;
    let vmm_type = match i.vmm_type.as_deref() {
        None | Some("qemu") => VMMType::QEMU,
        Some("ec2") => VMMType::EC2,
        Some(v) => return Err(bad("vmm_type", format!("unknown `{v}` (qemu or ec2)"))),
    };
    for p in std::iter::once(&i.ovmf)
        .chain(i.kernel.iter())
        .chain(i.initrd.iter())
    {
        std::fs::metadata(p).map_err(|e| MeasureError::Io {
            path: p.display().to_string(),
            reason: e.to_string(),
        })?;
    }
    let ovmf = OVMF::new(i.ovmf.clone()).map_err(|e| MeasureError::Format {
        input: "firmware",
        field: i.ovmf.display().to_string(),
        reason: format!("not an OVMF image with SEV metadata: {e}"),
    })?;
    if i.kernel.is_none() && (i.initrd.is_some() || i.append.is_some()) {
        return Err(bad("kernel", "initrd and append need a kernel".into()));
    }
    if i.kernel.is_some()
        && !ovmf
            .metadata_items()
            .iter()
            .any(|s| s.section_type == SectionType::SnpKernelHashes)
    {
        return Err(MeasureError::Format {
            input: "firmware",
            field: i.ovmf.display().to_string(),
            reason: "a kernel was given, but the firmware's SEV metadata has no SNP_KERNEL_HASHES section (it cannot measure a kernel)".into(),
        });
    }
    let ld = snp_calc_launch_digest(SnpMeasurementArgs {
        vcpus: i.vcpus,
        vcpu_type,
        ovmf_file: i.ovmf.clone(),
        guest_features: GuestFeatures(i.guest_features),
        kernel_file: i.kernel.clone(),
        initrd_file: i.initrd.clone(),
        append: i.append.as_deref(),
        ovmf_hash_str: None,
        vmm_type: Some(vmm_type),
    })
    .map_err(|e| bad("launch digest", e.to_string()))?;
    let v: Vec<u8> = ld
        .try_into()
        .map_err(|e: sev::error::MeasurementError| bad("launch digest", e.to_string()))?;
    v.try_into()
        .map_err(|_| bad("launch digest", "not 48 bytes".into()))
}
