//! The TDX event log parser, RTMR replay, TDVF metadata, ID blocks, reference-values files from untrusted
//! bytes: errors, never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(log) = ccr_measurements::ccel::parse(data) {
        let r = ccr_measurements::ccel::replay(&log.events);
        let _ = ccr_measurements::ccel::check_against(&r, &[[0u8; 48]; 4]);
        let _ = serde_json::to_string(&log);
    }
    if let Ok(r) = ccr_policy::reference::ReferenceValues::from_json(data) {
        let _ = r.to_policy();
        let _ = r.differences(&serde_json::json!({"platform": "snp", "measurement": "00"}));
    }
    let _ = ccr_measurements::aci::host_data(&String::from_utf8_lossy(data));
    if ccr_measurements::tdvf::sections(data).is_ok() {
        let _ = ccr_measurements::tdvf::mrtd(data, ccr_measurements::tdvf::PageAddOrder::SinglePass);
    }
    let _ = ccr_measurements::idblock::verify(data.get(..0x60).unwrap_or(data), data.get(0x60..).unwrap_or(&[]));
});
