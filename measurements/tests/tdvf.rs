//! TDVF metadata and MRTD on Debian's OVMF.fd (its reset vector carries TDVF metadata).

use std::path::Path;

use ccr_measurements::tdvf::{PageAddOrder, mrtd, sections};

const OVMF: &str = "/usr/share/ovmf/OVMF.fd";

fn image() -> Option<Vec<u8>> {
    if !Path::new(OVMF).is_file() {
        assert!(
            std::env::var("CCR_REQUIRE_PYTHON").as_deref() != Ok("1"),
            "{OVMF} is absent (apt-get install ovmf)"
        );
        println!("skipped: {OVMF} is absent (apt-get install ovmf)");
        return None;
    }
    Some(std::fs::read(OVMF).unwrap())
}

#[test]
fn debian_ovmf_has_the_tdvf_sections_and_an_mrtd() {
    let Some(img) = image() else { return };
    let s = sections(&img).unwrap();
    // BFV (measured), CFV, TempMem ×2, TD_HOB, TempMem: as the metadata block lists them.
    let got: Vec<(u64, u64, u32, u32)> = s
        .iter()
        .map(|x| {
            (
                x.memory_address,
                x.memory_data_size,
                x.section_type,
                x.attributes,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (0xffe2_0000, 0x1e_0000, 0, 1),
            (0xffe0_0000, 0x2_0000, 1, 0),
            (0x81_0000, 0x1_0000, 3, 0),
            (0x80_b000, 0x2000, 3, 0),
            (0x80_9000, 0x2000, 2, 0),
            (0x80_0000, 0x6000, 3, 0),
        ]
    );
    assert_eq!(
        (s[0].data_offset, s[0].raw_data_size),
        (0x2_0000, 0x1e_0000)
    );
    let one = mrtd(&img, PageAddOrder::SinglePass).unwrap();
    let two = mrtd(&img, PageAddOrder::TwoPass).unwrap();
    println!("MRTD single pass {}", hex::encode(one));
    println!("MRTD two pass    {}", hex::encode(two));
    assert_ne!(one, two, "the order is part of the measurement");
    // A byte of the measured BFV changes it; a byte of the unmeasured CFV does not.
    let mut bfv = img.clone();
    bfv[0x2_0000 + 0x1234] ^= 1;
    assert_ne!(mrtd(&bfv, PageAddOrder::SinglePass).unwrap(), one);
    let mut cfv = img.clone();
    cfv[0x100] ^= 1;
    assert_eq!(mrtd(&cfv, PageAddOrder::SinglePass).unwrap(), one);
    // A hostile MemoryDataSize is refused, not allocated.
    let meta = img.windows(4).position(|w| w == b"TDVF").unwrap();
    let mut huge = img;
    huge[meta + 16 + 16..meta + 16 + 24].copy_from_slice(&(1u64 << 60).to_le_bytes());
    let e = mrtd(&huge, PageAddOrder::SinglePass)
        .unwrap_err()
        .to_string();
    assert!(e.contains("MemoryDataSize"), "{e}");
}

#[test]
fn an_image_without_tdvf_metadata_is_refused() {
    let e = sections(&vec![0u8; 4096]).unwrap_err().to_string();
    assert!(e.contains("GUIDed table footer"), "{e}");
}
