//! SNP report parsing and claim extraction never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = ccr_attest::snp::SnpReport::parse(data) {
        let _ = r.claims(ccr_attest::Platform::Snp).to_policy_input();
    }
});
