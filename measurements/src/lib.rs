//! # ccr-measurements: what auditors recompute
//!
//! Reserved for the values a release policy pins and an auditor must be able to reproduce from
//! published inputs with no trust in ccr: the SEV-SNP launch digest (firmware, kernel hashes,
//! vCPUs, guest features), TDX MRTD and RTMR replay from the CCEL event log, the Azure
//! confidential-container policy digest (`host_data`), and reproducible image digests.
//!
//! The `sim` platform's measurement is defined in `ccr_attest::sim::sim_measurement`.

#![forbid(unsafe_code)]
