//! TD quote parsing (through dcap-qvl) and claim extraction never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(q) = ccr_attest::tdx::TdQuote::parse(data) {
        let _ = q
            .claims(ccr_attest::Platform::Tdx, None, Vec::new())
            .to_policy_input();
        let _ = q.report_data();
    }
});
