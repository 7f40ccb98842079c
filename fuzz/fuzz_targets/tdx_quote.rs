//! TD quote parsing (through dcap-qvl), claim extraction and the no-collateral verification
//! (PCK chain from the quote, QE report, quote signature) never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(q) = ccr_attest::tdx::TdQuote::parse(data) {
        let _ = q
            .claims(ccr_attest::Platform::Tdx, None, Vec::new())
            .to_policy_input();
        let _ = q.report_data();
        let _ = ccr_attest::tdx::verify_signatures(
            &q,
            1_751_328_000,
            ccr_attest::Platform::Tdx,
            false,
        );
    }
});
