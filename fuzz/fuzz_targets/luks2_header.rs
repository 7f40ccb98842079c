//! LUKS2 header parsing never panics: the bytes as a header copy (primary and secondary), and
//! as the JSON area of a header whose binary part and checksum are valid, so that the fuzzer
//! reaches the metadata parser.
#![no_main]
use ccr_images::luks2::header;
use libfuzzer_sys::fuzz_target;
use sha2::Digest;

fuzz_target!(|data: &[u8]| {
    let _ = header::version(data);
    let _ = header::parse(data, false);
    let _ = header::parse(data, true);
    let mut area = vec![0u8; 0x4000];
    area[..6].copy_from_slice(b"LUKS\xba\xbe");
    area[6..8].copy_from_slice(&2u16.to_be_bytes());
    area[8..16].copy_from_slice(&0x4000u64.to_be_bytes());
    area[72..78].copy_from_slice(b"sha256");
    let n = data.len().min(0x4000 - 4096);
    area[4096..4096 + n].copy_from_slice(&data[..n]);
    let sum = sha2::Sha256::digest(&area);
    area[448..480].copy_from_slice(&sum);
    if let Ok(h) = header::parse(&area, false) {
        for (_, s) in &h.metadata.segments {
            let _ = header::number(&s.offset, "offset");
        }
    }
});
