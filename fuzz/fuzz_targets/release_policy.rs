//! Release-policy parsing and evaluation never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = ccr_policy::ReleasePolicy::from_json(data) {
        let claims = serde_json::json!({"platform": "sim", "measurement": "00", "vmpl": 0, "debug": false});
        let _ = p.evaluate(&claims, "local");
    }
});
