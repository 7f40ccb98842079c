//! The encrypted image's bytes, read at offsets: as they are, or checked against a SHA-256 and
//! size pinned in the contract ([`ImagePin`]).
//!
//! aes-xts has no integrity, and ext4 reads its blocks in any order, so one sequential hash of
//! the file cannot by itself vouch for the bytes the reader decrypts. A pinned image is
//! therefore read twice, concurrently:
//!
//! - a hashing thread reads the file from start to end once, and after every [`CHUNK`] bytes
//!   keeps the SHA-256 state of the prefix (FIPS 180-4 Merkle–Damgård: the state after chunk
//!   `i` is a function of the state after chunk `i - 1` and chunk `i`'s bytes); at the end it
//!   compares the digest and size with the pin ([`PinCheck::wait`]);
//! - each read of the reader covers whole chunks; a chunk is used only after the hashing thread
//!   has passed it, and only when the reader's bytes, hashed on from the state before the
//!   chunk, give the same prefix digest as the hashing thread's (else the file changed between
//!   the two reads: an error naming the offset).
//!
//! So every byte the reader decrypts is a byte of a file whose SHA-256 is the pinned one, or the
//! read fails; the caller keeps no plaintext until [`PinCheck::wait`] has said the whole file
//! matched. Cost: each byte is read and hashed twice (the second time on the reader's core).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use sha2::{Digest, Sha256};

use super::Luks2Error;

/// The pin of an encrypted image: its SHA-256 and size in bytes, as `sha256sum` and `stat`
/// print them (the contract's `datasets[].imageSha256` and `imageSize`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePin {
    /// SHA-256 of the whole image file.
    pub sha256: [u8; 32],
    /// The file's size in bytes.
    pub size: u64,
}

/// Bytes per checked chunk (a multiple of SHA-256's 64-byte block).
pub const CHUNK: u64 = 64 << 10;
/// Bytes the hashing thread reads at once.
const PASS_READ: usize = 1 << 20;

/// The image file, read at offsets.
pub(crate) enum Source {
    /// Unpinned: the bytes as they are on disk.
    Plain(File),
    /// Pinned: each chunk checked as the module says.
    Pinned(Pinned),
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Plain(_) => f.write_str("Source::Plain"),
            Self::Pinned(_) => f.write_str("Source::Pinned"),
        }
    }
}

fn io(e: std::io::Error) -> Luks2Error {
    Luks2Error::Io(e.to_string())
}

impl Source {
    /// Opens `file` (of `size` bytes); with a pin, refuses another size at once and starts the
    /// hashing thread.
    ///
    /// # Errors
    /// [`Luks2Error::Pin`] for a size that is not the pinned one, [`Luks2Error::Io`].
    pub(crate) fn new(
        file: File,
        size: u64,
        pin: Option<&ImagePin>,
    ) -> Result<(Self, Option<PinCheck>), Luks2Error> {
        let Some(pin) = pin else {
            return Ok((Self::Plain(file), None));
        };
        if size != pin.size {
            return Err(Luks2Error::Pin(format!(
                "the image is {size} bytes; the contract pins {} bytes",
                pin.size
            )));
        }
        let shared = Arc::new(Shared {
            progress: Mutex::new(Progress {
                states: vec![Sha256::new()],
                hashed: 0,
                verdict: None,
                stop: false,
            }),
            moved: Condvar::new(),
        });
        let pass_file = file.try_clone().map_err(io)?;
        let (s, want) = (shared.clone(), pin.clone());
        std::thread::Builder::new()
            .name("luks2-pin".into())
            .spawn(move || hash_pass(&pass_file, &want, &s))
            .map_err(io)?;
        Ok((
            Self::Pinned(Pinned {
                file,
                size,
                shared: shared.clone(),
            }),
            Some(PinCheck(shared)),
        ))
    }

    /// Fills `dst` with the bytes at `offset`.
    ///
    /// # Errors
    /// [`Luks2Error::Io`] for a read past the end or a failed read; [`Luks2Error::Pin`] when a
    /// pinned image's bytes are not the hashed ones.
    pub(crate) fn read_at(&self, offset: u64, dst: &mut [u8]) -> Result<(), Luks2Error> {
        match self {
            Self::Plain(f) => f.read_exact_at(dst, offset).map_err(io),
            Self::Pinned(p) => p.read_at(offset, dst),
        }
    }
}

/// What the hashing thread and the reader share.
struct Shared {
    progress: Mutex<Progress>,
    moved: Condvar,
}

struct Progress {
    /// The SHA-256 state after 0, 1, 2, … chunks (the last one after the whole file).
    states: Vec<Sha256>,
    /// Bytes hashed so far.
    hashed: u64,
    /// `Some` once the whole file was hashed (or the pass failed).
    verdict: Option<Result<(), String>>,
    /// Set when the reader is gone: the thread stops.
    stop: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The hashing thread: the whole file once, in order.
fn hash_pass(file: &File, pin: &ImagePin, shared: &Shared) {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; PASS_READ];
    let mut at = 0u64;
    let verdict = loop {
        if shared.lock().stop {
            break Err("the read was abandoned before the whole image was hashed".into());
        }
        let n = (pin.size - at).min(PASS_READ as u64) as usize;
        if n == 0 {
            let got: [u8; 32] = h.clone().finalize().into();
            break if got == pin.sha256 {
                Ok(())
            } else {
                Err(format!(
                    "the image's SHA-256 is {}; the contract pins {}",
                    hex::encode(got),
                    hex::encode(pin.sha256)
                ))
            };
        }
        if let Err(e) = file.read_exact_at(&mut buf[..n], at) {
            break Err(format!("reading the image at byte {at}: {e}"));
        }
        let mut states = Vec::with_capacity(n.div_ceil(CHUNK as usize));
        for c in buf[..n].chunks(CHUNK as usize) {
            h.update(c);
            states.push(h.clone());
        }
        at += n as u64;
        let mut p = shared.lock();
        p.states.extend(states);
        p.hashed = at;
        drop(p);
        shared.moved.notify_all();
    };
    shared.lock().verdict = Some(verdict);
    shared.moved.notify_all();
}

/// The reader's side of a pinned image.
pub(crate) struct Pinned {
    file: File,
    size: u64,
    shared: Arc<Shared>,
}

impl Drop for Pinned {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
    }
}

impl Pinned {
    fn read_at(&self, offset: u64, dst: &mut [u8]) -> Result<(), Luks2Error> {
        let end = offset.saturating_add(dst.len() as u64);
        if end > self.size {
            return Err(Luks2Error::Io(format!(
                "read of {offset}..{end} past the image's {} bytes",
                self.size
            )));
        }
        if dst.is_empty() {
            return Ok(());
        }
        let (first, last) = (offset / CHUNK, (end - 1) / CHUNK);
        let span_end = ((last + 1) * CHUNK).min(self.size);
        // The states before and after each chunk, once the hashing thread has passed them.
        let states: Vec<Sha256> = {
            let mut p = self.shared.lock();
            loop {
                if let Some(Err(e)) = &p.verdict {
                    return Err(Luks2Error::Pin(e.clone()));
                }
                if p.hashed >= span_end {
                    break;
                }
                p = self.shared.moved.wait(p).unwrap_or_else(|e| e.into_inner());
            }
            p.states[first as usize..=last as usize + 1].to_vec()
        };
        let at = first * CHUNK;
        // Read straight into `dst` when it is the span (aligned reads), else through a copy.
        let mut copy = Vec::new();
        let aligned = at == offset && span_end == end;
        let buf: &mut [u8] = if aligned {
            dst
        } else {
            copy.resize((span_end - at) as usize, 0);
            &mut copy
        };
        self.file.read_exact_at(buf, at).map_err(io)?;
        for (i, c) in buf.chunks(CHUNK as usize).enumerate() {
            let mut h = states[i].clone();
            h.update(c);
            if h.finalize() != states[i + 1].clone().finalize() {
                return Err(Luks2Error::Pin(format!(
                    "the bytes at {}..{} changed after they were hashed",
                    at + i as u64 * CHUNK,
                    at + i as u64 * CHUNK + c.len() as u64
                )));
            }
        }
        if !aligned {
            let skip = (offset - at) as usize;
            dst.copy_from_slice(&copy[skip..skip + dst.len()]);
        }
        Ok(())
    }
}

/// The verdict on a pinned image: whether the whole file has the pinned SHA-256.
#[derive(Clone)]
pub struct PinCheck(Arc<Shared>);

impl std::fmt::Debug for PinCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PinCheck")
    }
}

impl PinCheck {
    /// Waits until the hashing thread has read the whole image.
    ///
    /// # Errors
    /// [`Luks2Error::Pin`] naming both digests when they differ, or the failed read.
    pub fn wait(&self) -> Result<(), Luks2Error> {
        let mut p = self.0.lock();
        loop {
            if let Some(v) = &p.verdict {
                return v.clone().map_err(Luks2Error::Pin);
            }
            p = self.0.moved.wait(p).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// The SHA-256 and size of an image file, for a provider to pin (`ccr dataset inspect`).
///
/// # Errors
/// The file's read error.
pub fn pin_of(path: &std::path::Path) -> std::io::Result<ImagePin> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let size = std::io::copy(&mut f, &mut h)?;
    Ok(ImagePin {
        sha256: h.finalize().into(),
        size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(bytes: &[u8]) -> (tempfile::NamedTempFile, File) {
        let t = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(t.path(), bytes).unwrap();
        let f = File::open(t.path()).unwrap();
        (t, f)
    }

    fn bytes(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn a_pinned_file_reads_as_written_at_any_offset() {
        let data = bytes(3 * CHUNK as usize + 1000);
        let (t, f) = file_with(&data);
        let pin = pin_of(t.path()).unwrap();
        assert_eq!(pin.sha256, <[u8; 32]>::from(Sha256::digest(&data)));
        let (s, check) = Source::new(f, data.len() as u64, Some(&pin)).unwrap();
        for (at, n) in [
            (0usize, 10usize),
            (65530, 20),
            (3 * 65536 + 500, 500),
            (7, 190_000),
        ] {
            let mut got = vec![0u8; n];
            s.read_at(at as u64, &mut got).unwrap();
            assert_eq!(got, data[at..at + n], "read at {at}");
        }
        check.unwrap().wait().unwrap();
    }

    #[test]
    fn another_digest_or_size_is_refused_naming_both() {
        let data = bytes(100_000);
        let (t, f) = file_with(&data);
        let mut pin = pin_of(t.path()).unwrap();
        pin.sha256[0] ^= 1;
        let (s, check) = Source::new(f, data.len() as u64, Some(&pin)).unwrap();
        let e = check.unwrap().wait().unwrap_err().to_string();
        assert!(e.contains("the contract pins"), "{e}");
        // A read after the verdict fails too.
        let e = s.read_at(99_000, &mut [0u8; 100]).unwrap_err().to_string();
        assert!(e.contains("the contract pins"), "{e}");
        let f = File::open(t.path()).unwrap();
        pin.size += 1;
        let e = Source::new(f, data.len() as u64, Some(&pin)).unwrap_err();
        assert!(
            e.to_string()
                .contains("100000 bytes; the contract pins 100001"),
            "{e}"
        );
    }

    #[test]
    fn bytes_changed_after_hashing_are_caught() {
        let data = bytes(4 * CHUNK as usize);
        let (t, f) = file_with(&data);
        let pin = pin_of(t.path()).unwrap();
        let (s, check) = Source::new(f, data.len() as u64, Some(&pin)).unwrap();
        check.unwrap().wait().unwrap();
        // The host rewrites a byte of chunk 2 after the hashing pass.
        let w = std::fs::OpenOptions::new()
            .write(true)
            .open(t.path())
            .unwrap();
        w.write_all_at(&[data[2 * CHUNK as usize + 5] ^ 0xff], 2 * CHUNK + 5)
            .unwrap();
        s.read_at(0, &mut [0u8; 100]).unwrap();
        let e = s
            .read_at(2 * CHUNK + 1, &mut [0u8; 10])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("131072..196608 changed after they were hashed"),
            "{e}"
        );
    }
}
