//! Reading a LUKS2 image's files in ccr (user space: keyslot, XTS, ext4), as the decrypt step
//! does: `cargo run --profile opt -p ccr-images --example luks2_read IMAGE KEY_FILE [SHA256_HEX]`. Prints the bytes read, the seconds and MB/s
//! (10^6 bytes per second) for the whole read, header and keyslot included; with a SHA-256, the
//! image is pinned (every byte hashed and checked as `ccr_images::luks2::source` says).
//! `benches/luks2_read.sh` makes a 1 GiB image and runs this beside `openssl speed`.

use std::io::Read;
use std::time::Instant;

use ccr_images::luks2::cipher::SectorCipher;
use ccr_images::luks2::files::Files;
use ccr_images::luks2::{ImagePin, Luks2Image};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: luks2_read IMAGE KEY_FILE [SHA256_HEX]");
        std::process::exit(2);
    }
    let key = std::fs::read(&args[1]).expect("key file");
    let pin = args.get(2).map(|h| {
        let mut sha256 = [0u8; 32];
        hex::decode_to_slice(h, &mut sha256).expect("SHA-256 hex");
        let size = std::fs::metadata(&args[0]).expect("image").len();
        ImagePin { sha256, size }
    });
    let t = Instant::now();
    let img = Luks2Image::open_pinned(args[0].as_ref(), pin.as_ref()).expect("open");
    let vol = img.unlock(&key).expect("unlock");
    let check = vol.pin_check();
    let files = Files::load(vol).expect("ext4");
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    for f in files.list("").expect("list") {
        let mut r = files.open(&f.path).expect("open file");
        loop {
            let n = r.read(&mut buf).expect("read");
            if n == 0 {
                break;
            }
            total += n as u64;
        }
    }
    if let Some(c) = check {
        c.wait().expect("pin");
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "ccr luks2 read{}: {total} bytes in {s:.3} s = {:.0} MB/s",
        if pin.is_some() { " (pinned)" } else { "" },
        total as f64 / s / 1e6
    );
    if pin.is_none() {
        cipher_only();
    }
}

/// The XTS composition alone, one thread, memory to memory: 256 MiB of 4096-byte sectors
/// decrypted in place in 1 MiB calls (what one core gives without I/O or ext4).
fn cipher_only() {
    let key: Vec<u8> = (0..64u8).collect();
    let c = SectorCipher::new("aes-xts-plain64", &key).expect("cipher");
    let mut buf = vec![0x5au8; 1 << 20];
    let t = Instant::now();
    for i in 0..256u64 {
        c.decrypt(&mut buf, 4096, i * 2048);
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "ccr aes-xts-plain64 alone, one thread: {:.0} MB/s",
        (256u64 << 20) as f64 / s / 1e6
    );
}
