//! Azure HCL reports, TPMS_ATTEST quotes and SNP certificate tables: parsing never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = ccr_attest::vtpm::HclReport::parse(data) {
        let _ = h.ak_pub();
        let _ = h.hw_report().len();
        if let Ok(r) = ccr_attest::snp::SnpReport::parse(h.hw_report()) {
            let _ = r.claims(ccr_attest::Platform::AzSnpVtpm);
        }
    }
    let _ = ccr_attest::vtpm::QuoteInfo::parse(data);
    let _ = ccr_attest::certtable::parse(data);
});
