//! Tink's streaming AEAD, AES-GCM-HKDF, as a sans-I/O-friendly pair of stream adapters.
//!
//! Wire format (Tink, `AesGcmHkdfStreaming`, the "streaming AEAD" section of Tink's wire-format
//! documentation; identical in Java, C++, Go and Python):
//!
//! ```text
//! ciphertext = header || segment_0 || segment_1 || ... || segment_n
//! header     = header_len (1 byte, = 1 + 32 + 7 = 40) || salt (32 bytes) || nonce_prefix (7 bytes)
//! segment_i  = AES-256-GCM(derived_key, nonce_i, plaintext_i, aad = "") = ct || tag (16 bytes)
//! nonce_i    = nonce_prefix (7) || i (u32, big-endian) || last (1 byte: 1 for the last segment)
//! derived_key = HKDF-SHA256(ikm = key, salt = salt, info = associated data, L = 32)   (RFC 5869)
//! ```
//!
//! Every ciphertext segment is [`SEGMENT_SIZE`] bytes (1 MiB) but the last; the first carries the
//! header, so it holds [`FIRST_SEGMENT_PLAINTEXT`] plaintext bytes and the others
//! [`SEGMENT_PLAINTEXT`]. An empty plaintext is one empty last segment (header + tag). As in
//! Tink, a plaintext that fills its last segment exactly is sealed with that full segment marked
//! last, never with a trailing empty segment.
//!
//! Because the segment index and the last-segment flag are in the nonce, and the associated data
//! is bound into the derived key, reordering, truncating, extending, renaming (the relative path
//! is in the associated data) or moving a file to another dataset all fail authentication.

use std::io::{self, Read, Write};

use hkdf::Hkdf;
use rand::RngCore;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::StreamError;

/// Size in bytes of a DEK for AES256_GCM_HKDF_1MB (the HKDF input key material).
pub const KEY_LEN: usize = 32;
/// Size in bytes of the HKDF-derived AES-256-GCM key (Tink's `derived_key_size`).
pub const DERIVED_KEY_LEN: usize = 32;
/// Size in bytes of the random HKDF salt in the header (equal to the derived key size in Tink).
pub const SALT_LEN: usize = DERIVED_KEY_LEN;
/// Size in bytes of the nonce prefix in the header (Tink `NONCE_PREFIX_IN_BYTES`).
pub const NONCE_PREFIX_LEN: usize = 7;
/// Size in bytes of the header: the length byte, the salt and the nonce prefix.
pub const HEADER_LEN: usize = 1 + SALT_LEN + NONCE_PREFIX_LEN;
/// Size in bytes of an AES-GCM tag.
pub const TAG_LEN: usize = 16;
/// Ciphertext segment size in bytes (Tink template `AES256_GCM_HKDF_1MB`: 1 MiB).
pub const SEGMENT_SIZE: usize = 1 << 20;
/// Plaintext bytes in the first segment (which also carries the header).
pub const FIRST_SEGMENT_PLAINTEXT: usize = SEGMENT_SIZE - HEADER_LEN - TAG_LEN;
/// Plaintext bytes in every later full segment.
pub const SEGMENT_PLAINTEXT: usize = SEGMENT_SIZE - TAG_LEN;

/// A 32-byte data encryption key (DEK) for the streaming AEAD. Zeroized on drop; its `Debug`
/// never shows the bytes.
#[derive(Clone)]
pub struct DatasetKey(Zeroizing<[u8; KEY_LEN]>);

impl DatasetKey {
    /// Wraps raw key bytes.
    ///
    /// # Errors
    /// [`StreamError::KeyLength`] when `bytes` is not exactly [`KEY_LEN`] (32) bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, StreamError> {
        let arr: [u8; KEY_LEN] = bytes
            .try_into()
            .map_err(|_| StreamError::KeyLength { got: bytes.len() })?;
        Ok(Self(Zeroizing::new(arr)))
    }

    /// Wraps a key array (taken over, zeroized on drop).
    pub fn from_array(bytes: Zeroizing<[u8; KEY_LEN]>) -> Self {
        Self(bytes)
    }

    /// A fresh random key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut k = Zeroizing::new([0u8; KEY_LEN]);
        rand::rngs::OsRng.fill_bytes(k.as_mut());
        Self(k)
    }

    /// The raw key bytes (32). Handle with care: never log or persist them unwrapped.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for DatasetKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DatasetKey(..)")
    }
}

struct SegmentCipher {
    key: LessSafeKey,
    nonce_prefix: [u8; NONCE_PREFIX_LEN],
}

impl SegmentCipher {
    fn new(key: &DatasetKey, salt: &[u8], nonce_prefix: [u8; NONCE_PREFIX_LEN], ad: &[u8]) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(salt), key.as_bytes());
        let mut derived = Zeroizing::new([0u8; DERIVED_KEY_LEN]);
        // 32 bytes is far below HKDF-SHA256's 255 * 32 limit, so expand cannot fail.
        hk.expand(ad, derived.as_mut())
            .unwrap_or_else(|_| unreachable!("HKDF-SHA256 output of 32 bytes is always valid"));
        let unbound = UnboundKey::new(&AES_256_GCM, derived.as_ref())
            .unwrap_or_else(|_| unreachable!("AES-256 key is 32 bytes"));
        Self {
            key: LessSafeKey::new(unbound),
            nonce_prefix,
        }
    }

    fn nonce(&self, index: u32, last: bool) -> Nonce {
        let mut n = [0u8; 12];
        n[..NONCE_PREFIX_LEN].copy_from_slice(&self.nonce_prefix);
        n[NONCE_PREFIX_LEN..NONCE_PREFIX_LEN + 4].copy_from_slice(&index.to_be_bytes());
        n[11] = u8::from(last);
        Nonce::assume_unique_for_key(n)
    }

    /// Encrypts `buf` in place and appends the tag.
    fn seal(&self, index: u32, last: bool, buf: &mut Vec<u8>) {
        let tag = self
            .key
            .seal_in_place_separate_tag(self.nonce(index, last), Aad::empty(), buf)
            .unwrap_or_else(|_| unreachable!("segment is far below AES-GCM's length limit"));
        buf.extend_from_slice(tag.as_ref());
    }

    /// Decrypts `buf` (ciphertext || tag) in place; returns the plaintext length.
    fn open_slice(&self, index: u32, last: bool, buf: &mut [u8]) -> Result<usize, ()> {
        self.key
            .open_in_place(self.nonce(index, last), Aad::empty(), buf)
            .map(|pt| pt.len())
            .map_err(|_| ())
    }
}

/// Seals a plaintext stream into a writer, holding one segment (1 MiB) at a time.
///
/// Write the plaintext, then call [`SealWriter::finish`]: without it the last segment is never
/// written and the ciphertext will not open. The associated data is bound at construction.
pub struct SealWriter<W: Write> {
    inner: W,
    cipher: SegmentCipher,
    buf: Vec<u8>,
    index: u32,
    written: u64,
}

impl<W: Write> SealWriter<W> {
    /// Writes the header to `inner` and returns a writer for the plaintext.
    ///
    /// `associated_data` is the Tink associated data, for ccr images `<dataset id>/<relative path>`.
    ///
    /// # Errors
    /// I/O errors of `inner`.
    pub fn new(key: &DatasetKey, associated_data: &[u8], mut inner: W) -> io::Result<Self> {
        let mut salt = [0u8; SALT_LEN];
        let mut nonce_prefix = [0u8; NONCE_PREFIX_LEN];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        rand::rngs::OsRng.fill_bytes(&mut nonce_prefix);
        let mut header = [0u8; HEADER_LEN];
        header[0] = HEADER_LEN as u8;
        header[1..1 + SALT_LEN].copy_from_slice(&salt);
        header[1 + SALT_LEN..].copy_from_slice(&nonce_prefix);
        inner.write_all(&header)?;
        Ok(Self {
            inner,
            cipher: SegmentCipher::new(key, &salt, nonce_prefix, associated_data),
            buf: Vec::with_capacity(SEGMENT_SIZE),
            index: 0,
            written: HEADER_LEN as u64,
        })
    }

    fn capacity(&self) -> usize {
        if self.index == 0 {
            FIRST_SEGMENT_PLAINTEXT
        } else {
            SEGMENT_PLAINTEXT
        }
    }

    fn flush_segment(&mut self, last: bool) -> io::Result<()> {
        self.cipher.seal(self.index, last, &mut self.buf);
        self.inner.write_all(&self.buf)?;
        self.written += self.buf.len() as u64;
        self.buf.clear();
        self.index = self.index.checked_add(1).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "more than 2^32 segments")
        })?;
        Ok(())
    }

    /// Seals the last segment and returns the inner writer and the ciphertext length in bytes.
    ///
    /// # Errors
    /// I/O errors of the inner writer.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        self.flush_segment(true)?;
        self.inner.flush()?;
        Ok((self.inner, self.written))
    }
}

impl<W: Write> Write for SealWriter<W> {
    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        let n = data.len();
        while !data.is_empty() {
            // A full buffer is sealed only once more data arrives, so the last segment may be
            // full (Tink does the same).
            if self.buf.len() == self.capacity() {
                self.flush_segment(false)?;
            }
            let take = (self.capacity() - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Opens a sealed stream as a plaintext reader, holding one segment (1 MiB) at a time.
///
/// A segment's plaintext is handed out only after its tag verified. Errors (`io::Error` wrapping
/// a [`StreamError`], see [`StreamError::from_io`]) name the segment; after an error the reader
/// returns that error again and no more plaintext. Besides `Read`, [`OpenReader::next_segment`]
/// hands out each verified segment without a copy.
pub struct OpenReader<R: Read> {
    inner: R,
    cipher: Option<SegmentCipher>,
    key: DatasetKey,
    ad: Vec<u8>,
    /// One segment of ciphertext plus one byte of look-ahead; decrypted in place. Allocated
    /// once, zeroized on drop (it holds plaintext).
    buf: Zeroizing<Vec<u8>>,
    /// Bytes of `buf` holding data read from `inner`.
    filled: usize,
    /// Verified plaintext is `buf[pos..pt_end]`.
    pos: usize,
    pt_end: usize,
    /// The look-ahead byte read past the current segment, if any.
    carry: Option<u8>,
    index: u32,
    done: bool,
    failed: Option<StreamError>,
    read_ciphertext: u64,
}

impl<R: Read> OpenReader<R> {
    /// Prepares to open `inner` with `key` and the associated data it was sealed with. The
    /// header is read on the first `read`.
    pub fn new(key: &DatasetKey, associated_data: &[u8], inner: R) -> Self {
        Self {
            inner,
            cipher: None,
            key: key.clone(),
            ad: associated_data.to_vec(),
            buf: Zeroizing::new(vec![0u8; SEGMENT_SIZE + 1]),
            filled: 0,
            pos: 0,
            pt_end: 0,
            carry: None,
            index: 0,
            done: false,
            failed: None,
            read_ciphertext: 0,
        }
    }

    /// Ciphertext bytes consumed so far, header included.
    pub fn ciphertext_read(&self) -> u64 {
        self.read_ciphertext
    }

    /// The inner reader (for instance to finish a digest over the ciphertext).
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Reads from `inner` until `buf[..want]` is filled or the stream ends.
    fn fill_to(&mut self, want: usize) -> Result<(), StreamError> {
        while self.filled < want {
            match self.inner.read(&mut self.buf[self.filled..want]) {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    self.filled += n;
                    self.read_ciphertext += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(StreamError::Io(e.to_string())),
            }
        }
        Ok(())
    }

    fn read_header(&mut self) -> Result<(), StreamError> {
        self.fill_to(HEADER_LEN)?;
        if self.filled < HEADER_LEN {
            return Err(StreamError::TruncatedHeader { got: self.filled });
        }
        if self.buf[0] as usize != HEADER_LEN {
            return Err(StreamError::BadHeaderLength {
                got: self.buf[0],
                want: HEADER_LEN as u8,
            });
        }
        let mut prefix = [0u8; NONCE_PREFIX_LEN];
        prefix.copy_from_slice(&self.buf[1 + SALT_LEN..HEADER_LEN]);
        self.cipher = Some(SegmentCipher::new(
            &self.key,
            &self.buf[1..1 + SALT_LEN],
            prefix,
            &self.ad,
        ));
        self.filled = 0;
        Ok(())
    }

    /// Reads, authenticates and decrypts the next segment into `buf[..pt_end]`.
    fn advance(&mut self) -> Result<(), StreamError> {
        if self.cipher.is_none() {
            self.read_header()?;
        }
        let seg_len = if self.index == 0 {
            SEGMENT_SIZE - HEADER_LEN
        } else {
            SEGMENT_SIZE
        };
        self.filled = 0;
        if let Some(b) = self.carry.take() {
            self.buf[0] = b;
            self.filled = 1;
        }
        // Read the segment and one byte beyond it: that byte tells whether this is the last.
        self.fill_to(seg_len + 1)?;
        let last = self.filled <= seg_len;
        let len = self.filled.min(seg_len);
        if !last {
            self.carry = Some(self.buf[seg_len]);
        }
        if len < TAG_LEN {
            return Err(StreamError::TruncatedSegment {
                index: self.index,
                got: len,
            });
        }
        let cipher = self
            .cipher
            .as_ref()
            .unwrap_or_else(|| unreachable!("header read above"));
        let pt_len = cipher
            .open_slice(self.index, last, &mut self.buf[..len])
            .map_err(|()| StreamError::Authentication { index: self.index })?;
        self.pos = 0;
        self.pt_end = pt_len;
        self.done = last;
        self.index = self
            .index
            .checked_add(1)
            .ok_or(StreamError::TooManySegments)?;
        Ok(())
    }

    /// The next verified segment's plaintext (up to 1 MiB), or `None` at the end.
    ///
    /// # Errors
    /// The [`StreamError`] naming the failing segment; it is returned again on later calls.
    pub fn next_segment(&mut self) -> Result<Option<&[u8]>, StreamError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        while self.pos == self.pt_end {
            if self.done {
                return Ok(None);
            }
            if let Err(e) = self.advance() {
                self.pt_end = 0;
                self.pos = 0;
                self.failed = Some(e.clone());
                return Err(e);
            }
        }
        let (start, end) = (self.pos, self.pt_end);
        self.pos = end;
        Ok(Some(&self.buf[start..end]))
    }
}

impl<R: Read> Read for OpenReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if let Some(e) = &self.failed {
            return Err(e.clone().into_io());
        }
        while self.pos == self.pt_end {
            if self.done {
                return Ok(0);
            }
            if let Err(e) = self.advance() {
                self.pt_end = 0;
                self.pos = 0;
                self.failed = Some(e.clone());
                return Err(e.into_io());
            }
        }
        let n = (self.pt_end - self.pos).min(out.len());
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The ciphertext length in bytes for a plaintext of `plaintext_len` bytes.
pub fn ciphertext_len(plaintext_len: u64) -> u64 {
    let first = FIRST_SEGMENT_PLAINTEXT as u64;
    let later = SEGMENT_PLAINTEXT as u64;
    let segments = if plaintext_len <= first {
        1
    } else {
        1 + (plaintext_len - first).div_ceil(later)
    };
    HEADER_LEN as u64 + plaintext_len + segments * TAG_LEN as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal(key: &DatasetKey, ad: &[u8], pt: &[u8]) -> Vec<u8> {
        let mut w = SealWriter::new(key, ad, Vec::new()).unwrap();
        // Odd-sized writes exercise the buffering.
        for chunk in pt.chunks(77_777) {
            w.write_all(chunk).unwrap();
        }
        w.finish().unwrap().0
    }

    fn open(key: &DatasetKey, ad: &[u8], ct: &[u8]) -> Result<Vec<u8>, StreamError> {
        let mut out = Vec::new();
        OpenReader::new(key, ad, ct)
            .read_to_end(&mut out)
            .map_err(|e| StreamError::from_io(&e).expect("stream error"))?;
        Ok(out)
    }

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn round_trips_at_segment_boundaries() {
        let key = DatasetKey::generate();
        for n in [
            0,
            1,
            FIRST_SEGMENT_PLAINTEXT - 1,
            FIRST_SEGMENT_PLAINTEXT,
            FIRST_SEGMENT_PLAINTEXT + 1,
            FIRST_SEGMENT_PLAINTEXT + SEGMENT_PLAINTEXT,
            FIRST_SEGMENT_PLAINTEXT + SEGMENT_PLAINTEXT + 5,
        ] {
            let pt = pattern(n);
            let ct = seal(&key, b"ds/a.csv", &pt);
            assert_eq!(ct.len() as u64, ciphertext_len(n as u64), "length for {n}");
            assert_eq!(
                open(&key, b"ds/a.csv", &ct).unwrap(),
                pt,
                "round trip for {n}"
            );
        }
    }

    #[test]
    fn tampered_segment_is_rejected_with_its_index() {
        let key = DatasetKey::generate();
        let pt = pattern(FIRST_SEGMENT_PLAINTEXT + 1000);
        let mut ct = seal(&key, b"ds/a.csv", &pt);
        let i = SEGMENT_SIZE + 10;
        ct[i] ^= 1;
        assert_eq!(
            open(&key, b"ds/a.csv", &ct).unwrap_err(),
            StreamError::Authentication { index: 1 }
        );
    }

    #[test]
    fn wrong_associated_data_or_key_fails_segment_zero() {
        let key = DatasetKey::generate();
        let ct = seal(&key, b"ds/a.csv", b"hello");
        assert_eq!(
            open(&key, b"ds/b.csv", &ct).unwrap_err(),
            StreamError::Authentication { index: 0 }
        );
        assert_eq!(
            open(&DatasetKey::generate(), b"ds/a.csv", &ct).unwrap_err(),
            StreamError::Authentication { index: 0 }
        );
    }

    #[test]
    fn truncation_at_a_segment_boundary_is_detected() {
        let key = DatasetKey::generate();
        let pt = pattern(FIRST_SEGMENT_PLAINTEXT + 1000);
        let ct = seal(&key, b"x", &pt);
        // Drop the whole last segment: segment 0 is now last but was sealed as not-last.
        assert_eq!(
            open(&key, b"x", &ct[..SEGMENT_SIZE]).unwrap_err(),
            StreamError::Authentication { index: 0 }
        );
        assert!(matches!(
            open(&key, b"x", &ct[..10]).unwrap_err(),
            StreamError::TruncatedHeader { got: 10 }
        ));
    }

    #[test]
    fn random_and_mutated_ciphertexts_are_errors_not_panics() {
        use rand::{Rng, SeedableRng};
        let key = DatasetKey::generate();
        let good = seal(&key, b"x", &pattern(5000));
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for _ in 0..500 {
            let mut m = good.clone();
            match rng.gen_range(0..3) {
                0 => {
                    let i = rng.gen_range(0..m.len());
                    m[i] ^= 1 << rng.gen_range(0..8);
                }
                1 => m.truncate(rng.gen_range(0..m.len())),
                _ => m.extend((0..rng.gen_range(1..64)).map(|_| rng.r#gen::<u8>())),
            }
            assert!(open(&key, b"x", &m).is_err());
        }
        for n in [0, 1, 39, 40, 41, 56, 57, 1000] {
            let junk: Vec<u8> = (0..n).map(|_| rng.r#gen()).collect();
            assert!(open(&key, b"x", &junk).is_err(), "{n} random bytes");
        }
    }

    #[test]
    fn key_debug_hides_bytes() {
        let key = DatasetKey::from_slice(&[7u8; 32]).unwrap();
        assert_eq!(format!("{key:?}"), "DatasetKey(..)");
        assert!(matches!(
            DatasetKey::from_slice(&[0u8; 16]),
            Err(StreamError::KeyLength { got: 16 })
        ));
    }
}
