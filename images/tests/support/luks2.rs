//! Makes LUKS2 images as DEPA's `generatefs.sh` does, without root: an ext4 file system from a
//! folder (`mkfs.ext4 -d`), then LUKS2 by offline encryption (`cryptsetup reencrypt --encrypt`,
//! which needs no device-mapper). Shared by `images/tests/luks2.rs` and the runtime's end-to-end
//! tests (`#[path]`).
//!
//! Needs `cryptsetup` and `mkfs.ext4` (Debian: cryptsetup-bin, e2fsprogs; `.ci/run` installs
//! them): [`tools`] is `None` with a printed reason when they are missing, and panics instead
//! when `CCR_REQUIRE_CRYPTSETUP=1`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// DEPA's `generatefs.sh` parameters.
pub(crate) const DEPA: [&str; 8] = [
    "--cipher",
    "aes-xts-plain64",
    "--sector-size",
    "4096",
    "--pbkdf",
    "pbkdf2",
    "--pbkdf-force-iterations",
    "1000",
];

/// pbkdf2 with DEPA's 1000 iterations and cryptsetup's other defaults (quick to unlock).
pub(crate) const FAST_PBKDF: [&str; 4] = ["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"];

fn tool(name: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// `cryptsetup` and `mkfs.ext4`, when installed.
pub(crate) fn tools() -> Option<(PathBuf, PathBuf)> {
    let t = tool("cryptsetup").zip(tool("mkfs.ext4"));
    if t.is_none() {
        assert!(
            std::env::var("CCR_REQUIRE_CRYPTSETUP").as_deref() != Ok("1"),
            "CCR_REQUIRE_CRYPTSETUP=1 but cryptsetup or mkfs.ext4 is missing"
        );
        eprintln!(
            "skipping: cryptsetup or mkfs.ext4 is missing (apt-get install cryptsetup-bin e2fsprogs)"
        );
    }
    t
}

/// Runs a command, panicking with its stderr when it fails.
pub(crate) fn run(cmd: &mut Command) {
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Writes the LUKS2 image `img` of folder `src` (an ext4 file system of `fs_mb` MiB), its
/// keyslot opened by the key file `key`, with cryptsetup's `args`.
pub(crate) fn make_image(img: &Path, src: &Path, fs_mb: u64, key: &Path, args: &[&str]) {
    let (cryptsetup, mkfs) = tools().unwrap();
    let f = std::fs::File::create(img).unwrap();
    f.set_len((fs_mb + 32) << 20).unwrap();
    run(Command::new(mkfs)
        .args(["-q", "-b", "4096", "-d"])
        .arg(src)
        .arg(img)
        .arg(format!("{fs_mb}M")));
    run(Command::new(cryptsetup)
        .args([
            "reencrypt",
            "--encrypt",
            "--type",
            "luks2",
            "--force-offline-reencrypt",
            "--reduce-device-size",
            "32M",
            "-q",
            // Without root, /run/cryptsetup is not writable: no lock is needed on a file.
            "--disable-locks",
            "--key-file",
        ])
        .arg(key)
        .args(args)
        .arg(img));
}
