//! Contract parsing and verification never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = ccr_policy::Contract::from_json(data) {
        let _ = c.verify(chrono_now());
    }
});

fn chrono_now() -> ccr_policy_time::DateTime {
    "2027-01-01T00:00:00Z".parse().unwrap()
}

mod ccr_policy_time {
    pub type DateTime = ::chrono::DateTime<::chrono::Utc>;
}
