//! Shared by the measurement tests: where the `sev` crate's sources (and their test vectors) are.

#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

/// The `sev` 8.0.0 source folder in the cargo registry, if it holds `file`; prints why not.
pub fn sev_source(file: &str) -> Option<PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    let found = std::fs::read_dir(home.join("registry/src"))
        .ok()?
        .flatten()
        .map(|r| r.path().join("sev-8.0.0"))
        .find(|p| p.join(file).is_file());
    if found.is_none() {
        println!("skipped: the sev 8.0.0 sources ({file}) are not in the cargo registry");
    }
    found
}
