//! # ccr-measurements: what auditors recompute
//!
//! The values a release policy pins, recomputed from a deployment's published inputs with no
//! trust in ccr:
//! - [`snp`]: the SEV-SNP launch digest (`MEASUREMENT`) from the firmware (OVMF with SEV
//!   metadata), the kernel hashes table (kernel, initrd, command line), vCPU count and type,
//!   guest features and VMM type — through the `sev` crate's measurement code (AMD SEV-SNP ABI
//!   spec §8.17, `SNP_LAUNCH_UPDATE`);
//! - [`ccel`]: the TDX event log (ACPI CCEL) parser and RTMR replay;
//! - [`aci`]: the `host_data` of an Azure confidential container group: SHA-256 of its
//!   base64-decoded CCE policy;
//! - [`oci`]: a deterministic OCI image layout for `ccr-init` and its digests.
//!
//! The `sim` platform's measurement is defined in `ccr_attest::sim::sim_measurement`.

#![forbid(unsafe_code)]

pub mod aci;
pub mod ccel;
pub mod idblock;
pub mod oci;

pub mod snp;
pub mod tdvf;

/// A measurement error: the input and the field at fault, or which value differs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MeasureError {
    /// An input is malformed.
    #[error("{input}: {field}: {reason}")]
    Format {
        /// `event log`, `firmware`, `CCE policy`, ...
        input: &'static str,
        /// The field (and offset) at fault.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// Reading a file failed.
    #[error("{path}: {reason}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        reason: String,
    },
    /// A recomputed value differs from the one given.
    #[error("mismatch: {0}")]
    Mismatch(String),
}
