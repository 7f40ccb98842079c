//! Unwrapping an arbitrary KBS Response with the runtime key is an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(resp) = serde_json::from_slice::<kbs_types::Response>(data) {
        let _ = ccr_keybroker::RuntimeKey::generate().unwrap(&resp);
    }
});
