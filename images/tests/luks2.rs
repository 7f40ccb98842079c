//! LUKS2 images made by cryptsetup, read by ccr in user space: an ext4 file system made from a
//! folder (`mkfs.ext4 -d`), encrypted offline (`cryptsetup reencrypt --encrypt`, which needs no
//! device-mapper) with DEPA's parameters (aes-xts-plain64, 4096-byte sectors, pbkdf2 with 1000
//! iterations, a 32-byte key file), with cryptsetup's defaults (argon2id, 512-byte sectors)
//! and in aes-cbc-essiv:sha256. Every file reads back byte-identical (a file over 100 MB, nested
//! folders, an empty file, names with spaces and UTF-8); a wrong key, damaged headers, LUKS1 and another cipher
//! are clear errors; a flipped ciphertext byte is refused when the image's SHA-256 is pinned and
//! goes unnoticed by XTS when it is not.
//!
//! Needs `cryptsetup` and `mkfs.ext4` ([`support::tools`]): skipped with a printed reason when
//! they are missing, unless `CCR_REQUIRE_CRYPTSETUP=1`.

#[path = "support/luks2.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{DEPA, FAST_PBKDF, make_image, run, tools};

use std::io::Read;

use ccr_images::luks2::files::Files;
use ccr_images::luks2::source::pin_of;
use ccr_images::luks2::{ImagePin, Luks2Error, Luks2Image};

/// The source folder: nested folders, an empty file, names with spaces and UTF-8, and (when
/// `big`) a 101 MiB file.
fn source(dir: &Path, big: bool) -> PathBuf {
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("a b/dëep/er")).unwrap();
    std::fs::write(src.join("a b/x.csv"), "id,v\n1,2\n").unwrap();
    std::fs::write(src.join("empty"), b"").unwrap();
    std::fs::write(src.join("a b/dëep/er/fïlé ü.txt"), "ünï\n".repeat(1000)).unwrap();
    if big {
        let mut s = 1u64;
        let data: Vec<u8> = (0..101 << 20)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
                (s >> 56) as u8
            })
            .collect();
        std::fs::write(src.join("big.bin"), data).unwrap();
    }
    src
}

/// An ext4 image of `src`, then LUKS2 by offline encryption with `args`; returns the image
/// and its key file.
fn image(dir: &Path, src: &Path, fs_mb: u64, args: &[&str]) -> (PathBuf, PathBuf) {
    let img = dir.join("img");
    let key = dir.join("key");
    std::fs::write(
        &key,
        (0..32u8)
            .map(|i| i.wrapping_mul(37) ^ 0x5a)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    make_image(&img, src, fs_mb, &key, args);
    (img, key)
}

fn check_files(img: &Path, key: &Path, src: &Path) -> usize {
    let v = Luks2Image::open(img)
        .unwrap()
        .unlock(&std::fs::read(key).unwrap())
        .unwrap();
    let files = Files::load(v).unwrap();
    let list = files.list("").unwrap();
    for f in &list {
        let mut bytes = Vec::new();
        files
            .open(&f.path)
            .unwrap()
            .read_to_end(&mut bytes)
            .unwrap();
        let want = std::fs::read(src.join(&f.path)).unwrap();
        assert_eq!(bytes.len() as u64, f.size, "{}", f.path);
        assert!(bytes == want, "{} differs", f.path);
    }
    list.len()
}

#[test]
fn depa_parameters_and_cryptsetup_defaults_read_byte_identical() {
    if tools().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path(), true);
    let (img, key) = image(dir.path(), &src, 160, &DEPA);
    assert_eq!(check_files(&img, &key, &src), 4);
    let h = Luks2Image::open(&img).unwrap().header;
    assert_eq!(h.metadata.segments["0"].sector_size, 4096);
    std::fs::remove_file(&img).unwrap();
    // cryptsetup's defaults: argon2id, 512-byte sectors (for the smaller folder).
    let small = source(&dir.path().join("small"), false);
    let (img, key) = image(dir.path(), &small, 16, &["--sector-size", "512"]);
    let h = Luks2Image::open(&img).unwrap().header;
    assert!(
        matches!(
            h.metadata.keyslots["0"].kdf,
            ccr_images::luks2::header::Kdf::Argon2id { .. }
        ),
        "{:?}",
        h.metadata.keyslots["0"].kdf
    );
    assert_eq!(check_files(&img, &key, &small), 3);
    // aes-cbc-essiv:sha256 (LUKS1's old default, still accepted by cryptsetup for LUKS2).
    std::fs::remove_file(&img).unwrap();
    let (img, key) = image(
        dir.path(),
        &small,
        16,
        &[
            "--cipher",
            "aes-cbc-essiv:sha256",
            "--key-size",
            "256",
            "--pbkdf",
            "pbkdf2",
            "--pbkdf-force-iterations",
            "1000",
        ],
    );
    let h = Luks2Image::open(&img).unwrap().header;
    assert_eq!(h.metadata.segments["0"].encryption, "aes-cbc-essiv:sha256");
    assert_eq!(check_files(&img, &key, &small), 3);
}

#[test]
fn wrong_key_damaged_headers_luks1_and_other_ciphers_are_named() {
    let Some((cryptsetup, _)) = tools() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path(), false);
    let (img, key) = image(dir.path(), &src, 16, &FAST_PBKDF);
    let e = Luks2Image::open(&img)
        .unwrap()
        .unlock(&[7u8; 32])
        .unwrap_err();
    assert!(matches!(e, Luks2Error::WrongKey), "{e}");
    // The primary header damaged: the secondary is used, and that is said.
    let mut bytes = std::fs::read(&img).unwrap();
    bytes[4096 + 10] ^= 0xff;
    std::fs::write(&img, &bytes).unwrap();
    let opened = Luks2Image::open(&img).unwrap();
    let why = opened.primary_damaged.clone().unwrap();
    assert!(why.contains("primary") && why.contains("checksum"), "{why}");
    assert_eq!(opened.header.which, "secondary");
    assert_eq!(check_files(&img, &key, &src), 3);
    // Both damaged.
    let off = opened.header.hdr_size as usize;
    bytes[off + 4096 + 10] ^= 0xff;
    std::fs::write(&img, &bytes).unwrap();
    let e = Luks2Image::open(&img).unwrap_err().to_string();
    assert!(e.contains("both LUKS2 headers"), "{e}");
    // LUKS1 (luksFormat writes a header without device-mapper).
    let f = dir.path().join("luks1");
    std::fs::File::create(&f)
        .unwrap()
        .set_len(32 << 20)
        .unwrap();
    run(Command::new(&cryptsetup)
        .args([
            "luksFormat",
            "-q",
            "--disable-locks",
            "--type",
            "luks1",
            "--pbkdf-force-iterations",
            "1000",
        ])
        .arg("--key-file")
        .arg(&key)
        .arg(&f));
    let e = Luks2Image::open(&f).unwrap_err();
    assert!(matches!(e, Luks2Error::Luks1), "{e}");
    // A segment cipher ccr does not read: the metadata says sm4-xts-plain64 (cryptsetup checks
    // a cipher with the kernel, so the header is edited and its checksums made again).
    let (img, key) = image(dir.path(), &src, 16, &FAST_PBKDF);
    let mut bytes = std::fs::read(&img).unwrap();
    let hdr_size = Luks2Image::open(&img).unwrap().header.hdr_size as usize;
    for at in [0, hdr_size] {
        let area = &mut bytes[at..at + hdr_size];
        let from = br#""encryption":"aes-xts-plain64","sector_size""#;
        let to = br#""encryption":"sm4-xts-plain64","sector_size""#;
        let i = area.windows(from.len()).position(|w| w == from).unwrap();
        area[i..i + to.len()].copy_from_slice(to);
        area[448..512].fill(0);
        let sum = <sha2::Sha256 as sha2::Digest>::digest(&*area);
        area[448..480].copy_from_slice(&sum);
    }
    std::fs::write(&img, &bytes).unwrap();
    let e = Luks2Image::open(&img)
        .unwrap()
        .unlock(&std::fs::read(&key).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("sm4-xts-plain64") && e.contains("not supported"),
        "{e}"
    );

    // A symlink out of the root and one inside are refused by name, not followed; so is `..`.
    let linked = dir.path().join("linked");
    let lsrc = source(&linked, false);
    std::os::unix::fs::symlink("../../../etc/passwd", lsrc.join("a b/escape")).unwrap();
    let (img, key) = image(&linked, &lsrc, 16, &FAST_PBKDF);
    let v = Luks2Image::open(&img)
        .unwrap()
        .unlock(&std::fs::read(&key).unwrap())
        .unwrap();
    let files = Files::load(v).unwrap();
    let e = files.list("").unwrap_err().to_string();
    assert!(e.contains("a b/escape") && e.contains("symlink"), "{e}");
    let e = files.open("a b/escape").unwrap_err().to_string();
    assert!(e.contains("symlink"), "{e}");
    let e = files.open("a b/../empty").unwrap_err().to_string();
    assert!(e.contains("under the image's root"), "{e}");
    assert_eq!(files.list("a b/dëep").unwrap().len(), 1);
}

/// Reads every file of an image opened with `pin`, then waits for the pin's verdict.
fn read_all(img: &Path, key: &Path, pin: Option<&ImagePin>) -> Result<Vec<Vec<u8>>, Luks2Error> {
    let v = Luks2Image::open_pinned(img, pin)?.unlock(&std::fs::read(key).unwrap())?;
    let check = v.pin_check();
    let files = Files::load(v)?;
    let mut out = Vec::new();
    for f in files.list("")? {
        let mut bytes = Vec::new();
        files
            .open(&f.path)?
            .read_to_end(&mut bytes)
            .map_err(|e| Luks2Error::Io(e.to_string()))?;
        out.push(bytes);
    }
    if let Some(c) = check {
        c.wait()?;
    }
    Ok(out)
}

#[test]
fn a_flipped_ciphertext_byte_is_refused_with_the_pin_and_undetected_without() {
    if tools().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path(), false);
    let (img, key) = image(dir.path(), &src, 16, &DEPA);
    let pin = pin_of(&img).unwrap();
    let clean = read_all(&img, &key, Some(&pin)).unwrap();
    assert_eq!(clean.len(), 3);
    // Flip one byte inside the ciphertext of the 4000-byte UTF-8 file's data block: found by
    // decrypting the volume and locating the file's plaintext.
    let offset = Luks2Image::open(&img).unwrap().header.metadata.segments["0"]
        .offset
        .parse::<u64>()
        .unwrap();
    let mut v = Luks2Image::open(&img)
        .unwrap()
        .unlock(&std::fs::read(&key).unwrap())
        .unwrap();
    let mut plain = vec![0u8; v.size() as usize];
    v.read_at(0, &mut plain).unwrap();
    let needle = "ünï\n".repeat(8);
    let at = plain
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
        .unwrap() as u64;
    let mut bytes = std::fs::read(&img).unwrap();
    bytes[(offset + at + 100) as usize] ^= 0x01;
    std::fs::write(&img, &bytes).unwrap();
    // Pinned: refused, naming both digests.
    let e = read_all(&img, &key, Some(&pin)).unwrap_err().to_string();
    assert!(
        e.contains("image pin: the image's SHA-256 is") && e.contains(&hex::encode(pin.sha256)),
        "{e}"
    );
    // Unpinned: XTS cannot tell; the file reads back with one 16-byte block garbled (ext4's
    // metadata checksums do not cover file data), which is what README says.
    let got = read_all(&img, &key, None).unwrap();
    let changed: Vec<usize> = (0..3).filter(|&i| got[i] != clean[i]).collect();
    assert_eq!(changed.len(), 1, "exactly one file differs");
    let (a, b) = (&got[changed[0]], &clean[changed[0]]);
    let diff = a.iter().zip(b.iter()).filter(|(x, y)| x != y).count();
    assert!((1..=16).contains(&diff), "{diff} bytes differ");
}
