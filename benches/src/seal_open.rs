//! Seal and open throughput of ccr's sealed images, in MB/s (10^6 bytes per second).
//!
//! `cargo run --release -p ccr-benches --bin seal-open [SIZE_MIB] [DIR]`
//!
//! Measures, on one thread:
//! - `stream seal` / `stream open`: the Tink streaming AEAD alone, memory to memory;
//! - `image seal` / `image open`: a SIZE_MIB file sealed into an image and opened again
//!   (`Image::stream_file`: reads the ciphertext file, checks its SHA-256, decrypts), in DIR
//!   (default: the system temporary folder; use a tmpfs to leave the disk out).
//!
//! Each figure is the best of 5 runs. Compare with `openssl speed -evp aes-256-gcm -bytes 16384`
//! on the same machine (see BENCHMARKS.md).

use std::io::{Read, Write};
use std::time::Instant;

use ccr_images::{DatasetKey, Image, OpenReader, SealWriter, seal_path};

const RUNS: usize = 5;

fn best<F: FnMut() -> usize>(mut f: F) -> f64 {
    let mut best = f64::MAX;
    let mut bytes = 0;
    for _ in 0..RUNS {
        let t = Instant::now();
        bytes = f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    bytes as f64 / best / 1e6
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mib: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(256);
    let dir = args
        .get(2)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let n = mib << 20;
    let pt: Vec<u8> = (0..n)
        .map(|i| (i as u32).wrapping_mul(2654435761).to_le_bytes()[3])
        .collect();
    let key = DatasetKey::generate();
    let ad = b"bench/data.bin";

    let mut ct = Vec::with_capacity(n + n / 1000 + 64);
    let seal = best(|| {
        ct.clear();
        let mut w = SealWriter::new(&key, ad, &mut ct).expect("seal");
        for c in pt.chunks(1 << 20) {
            w.write_all(c).expect("write");
        }
        w.finish().expect("finish");
        n
    });
    let mut out = vec![0u8; 1 << 20];
    let open = best(|| {
        let mut r = OpenReader::new(&key, ad, &ct[..]);
        let mut total = 0;
        loop {
            let k = r.read(&mut out).expect("open");
            if k == 0 {
                break;
            }
            total += k;
        }
        assert_eq!(total, n);
        total
    });
    println!("stream seal  {mib} MiB: {seal:8.0} MB/s");
    println!("stream open  {mib} MiB: {open:8.0} MB/s");

    let work = tempdir_in(&dir);
    let src = work.join("data.bin");
    std::fs::write(&src, &pt).expect("write plaintext");
    let mut k = 0;
    let image_seal = best(|| {
        k += 1;
        let img = work.join(format!("img{k}"));
        seal_path(&src, &img, "bench", "kid", &key).expect("seal image");
        n
    });
    let img = Image::load(&work.join("img1")).expect("load");
    let entry = img.manifest().files[0].clone();
    let image_open = best(|| {
        let mut total = 0;
        img.stream_file(&entry, "bench", &key, |c| {
            total += c.len();
            Ok(())
        })
        .expect("open image");
        total
    });
    println!(
        "image seal   {mib} MiB: {image_seal:8.0} MB/s  (in {})",
        dir.display()
    );
    println!(
        "image open   {mib} MiB: {image_open:8.0} MB/s  (in {})",
        dir.display()
    );
    let _ = std::fs::remove_dir_all(&work);
}

fn tempdir_in(dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join(format!("ccr-bench-{}", std::process::id()));
    std::fs::create_dir_all(&p).expect("bench folder");
    p
}
