//! `ccr dataset inspect` as a data provider runs it on a LUKS2 image made with DEPA's
//! parameters: the metadata and the pin without a key, the ext4 files with it; a wrong key and
//! a file that is not LUKS are errors naming the image, with a non-zero exit.

#[path = "../../tests/common/mod.rs"]
mod common;
#[path = "../../../images/tests/support/luks2.rs"]
mod luks2_support;

use std::process::Command;

use common::*;

fn inspect(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(ccr())
        .args(["dataset", "inspect"])
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn inspect_prints_metadata_pin_and_files_and_names_bad_input() {
    if luks2_support::tools().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("nested dir")).unwrap();
    std::fs::write(src.join("data.csv"), "id,v\n1,2\n").unwrap();
    std::fs::write(src.join("nested dir/ü.txt"), "x".repeat(5000)).unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, [9u8; 32]).unwrap();
    let img = dir.path().join("data.img");
    luks2_support::make_image(&img, &src, 16, &key, &luks2_support::DEPA);
    let img_s = img.to_str().unwrap();

    let (code, out, err) = inspect(&[img_s]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("header primary"), "{out}");
    assert!(out.contains("cipher aes-xts-plain64 sector 4096"), "{out}");
    assert!(out.contains("pbkdf2 sha256 1000 iterations"), "{out}");
    let bytes = std::fs::read(&img).unwrap();
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    assert!(
        out.contains(&format!("imageSha256 {sha}  imageSize {}", bytes.len())),
        "{out}"
    );
    assert!(!out.contains("ext4:"), "no files without the key: {out}");

    let (code, out, err) = inspect(&["--key", key.to_str().unwrap(), img_s]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ext4: 2 file(s)"), "{out}");
    assert!(out.contains(&format!("{:>12}  data.csv", 9)), "{out}");
    assert!(
        out.contains(&format!("{:>12}  nested dir/ü.txt", 5000)),
        "{out}"
    );

    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, [1u8; 32]).unwrap();
    let (code, _, err) = inspect(&["--key", wrong.to_str().unwrap(), img_s]);
    assert_ne!(code, 0);
    assert!(err.contains(img_s) && err.contains("wrong key"), "{err}");

    let (code, _, err) = inspect(&[key.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(err.contains("not a LUKS image"), "{err}");
}
