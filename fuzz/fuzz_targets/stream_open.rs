//! Opening arbitrary bytes as a Tink streaming AEAD ciphertext is an error, never a panic.
#![no_main]
use std::io::Read;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = ccr_images::DatasetKey::from_slice(&[7u8; 32]).unwrap();
    let mut out = Vec::new();
    let _ = ccr_images::OpenReader::new(&key, b"ds/f", data).read_to_end(&mut out);
});
