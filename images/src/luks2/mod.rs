//! LUKS2 images as DEPA's `generatefs.sh` makes them (`cryptsetup luksFormat --type luks2
//! --cipher aes-xts-plain64 --sector-size 4096 --pbkdf pbkdf2`, an ext4 file system inside),
//! opened in user space: no root, no device-mapper, no mount.
//!
//! [`Luks2Image::open`] reads and checks both binary headers and the JSON metadata
//! ([`header`]); [`Luks2Image::unlock`] opens a keyslot with the key file ([`keyslot`]) and
//! gives a [`Volume`]: random-access reads of the `crypt` segment's plaintext, decrypted sector
//! by sector as dm-crypt does ([`cipher`]).
//!
//! aes-xts has no integrity: a host can swap or replay ciphertext sectors unseen. Pinning the
//! image's SHA-256 in the contract is what detects that (see README).

pub mod cipher;
pub mod files;
pub mod header;
pub mod keyslot;
pub mod source;

use std::fs::File;
use std::path::Path;

use rayon::prelude::*;
use zeroize::Zeroizing;

use self::cipher::SectorCipher;
use self::header::{BIN_HEADER_LEN, Header, SECONDARY_OFFSETS, number};
use self::source::Source;
pub use self::source::{ImagePin, PinCheck};

/// What can go wrong opening a LUKS2 image.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Luks2Error {
    /// The file does not start with a LUKS magic.
    #[error("not a LUKS image (no LUKS magic at its start)")]
    NotLuks,
    /// A LUKS1 header.
    #[error("a LUKS1 header: ccr reads LUKS2 only (`cryptsetup convert --type luks2` converts it)")]
    Luks1,
    /// One header copy fails a check.
    #[error("{which} LUKS2 header: {what}")]
    Header {
        /// `primary` or `secondary`.
        which: &'static str,
        /// The check that failed.
        what: String,
    },
    /// Neither header copy can be used.
    #[error("both LUKS2 headers are damaged: {primary}; {secondary}")]
    BothHeaders {
        /// Why the primary failed.
        primary: String,
        /// Why the secondary failed.
        secondary: String,
    },
    /// The metadata is inconsistent.
    #[error("LUKS2 metadata: {0}")]
    Metadata(String),
    /// A feature ccr does not read.
    #[error("LUKS2: not supported: {0}")]
    Unsupported(String),
    /// No keyslot opens with the key file.
    #[error("the key file opens no keyslot (wrong key)")]
    WrongKey,
    /// A read past the segment or of the file failed.
    #[error("LUKS2 image: {0}")]
    Io(String),
    /// The ext4 file system inside cannot be read.
    #[error("ext4 inside the LUKS2 image: {0}")]
    Ext4(String),
    /// The image is not the one the contract pins (or changed while it was read).
    #[error("image pin: {0}")]
    Pin(String),
    /// A file or path of the image that is not read.
    #[error("`{path}` in the image: refused: {why}")]
    Refused {
        /// The path, relative to the image's root.
        path: String,
        /// What it is.
        why: String,
    },
}

fn io(e: std::io::Error) -> Luks2Error {
    Luks2Error::Io(e.to_string())
}

/// A LUKS2 image file with a checked header.
#[derive(Debug)]
pub struct Luks2Image {
    source: Source,
    pin: Option<PinCheck>,
    size: u64,
    /// The header copy in use.
    pub header: Header,
    /// Why the primary header was not used, when the secondary is.
    pub primary_damaged: Option<String>,
}

/// Reads one header copy at `offset`: its binary header, then `hdr_size` bytes.
fn read_copy(f: &Source, size: u64, offset: u64, secondary: bool) -> Result<Header, Luks2Error> {
    let which = if secondary { "secondary" } else { "primary" };
    let mut bin = vec![0u8; BIN_HEADER_LEN];
    if offset + BIN_HEADER_LEN as u64 > size {
        return Err(Luks2Error::Header {
            which,
            what: "past the end of the image".into(),
        });
    }
    f.read_at(offset, &mut bin)?;
    let mut hs = [0u8; 8];
    hs.copy_from_slice(&bin[8..16]);
    let hdr_size = u64::from_be_bytes(hs);
    if SECONDARY_OFFSETS.contains(&hdr_size) && offset + hdr_size <= size {
        bin.resize(hdr_size as usize, 0);
        f.read_at(offset + BIN_HEADER_LEN as u64, &mut bin[BIN_HEADER_LEN..])?;
    }
    header::parse(&bin, secondary)
}

impl Luks2Image {
    /// Opens an image and checks its headers: the primary and the secondary are both read; the
    /// newer valid one (larger `seqid`) is used, and when the primary is damaged
    /// [`Luks2Image::primary_damaged`] says why.
    ///
    /// # Errors
    /// [`Luks2Error::NotLuks`], [`Luks2Error::Luks1`], [`Luks2Error::BothHeaders`],
    /// [`Luks2Error::Io`].
    pub fn open(path: &Path) -> Result<Self, Luks2Error> {
        Self::open_pinned(path, None)
    }

    /// [`Luks2Image::open`], with every byte read from the image checked against `pin` (see
    /// [`source`]): a size that is not the pinned one is refused at once; the digest's verdict
    /// comes from [`Luks2Image::pin_check`] (and [`Volume::pin_check`]).
    ///
    /// # Errors
    /// As [`Luks2Image::open`], and [`Luks2Error::Pin`].
    pub fn open_pinned(path: &Path, pin: Option<&ImagePin>) -> Result<Self, Luks2Error> {
        let file = File::open(path).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        let (file, pin) = Source::new(file, size, pin)?;
        let mut start = [0u8; 8];
        if size < 8 {
            return Err(Luks2Error::NotLuks);
        }
        file.read_at(0, &mut start)?;
        match header::version(&start) {
            None => return Err(Luks2Error::NotLuks),
            Some(1) => return Err(Luks2Error::Luks1),
            Some(_) => {}
        }
        let primary = read_copy(&file, size, 0, false);
        // The secondary sits at the primary's hdr_size; probe every allowed offset otherwise.
        let mut offsets: Vec<u64> = SECONDARY_OFFSETS.to_vec();
        if let Ok(p) = &primary {
            offsets.retain(|&o| o != p.hdr_size);
            offsets.insert(0, p.hdr_size);
        }
        let mut secondary = Err(Luks2Error::Header {
            which: "secondary",
            what: "not found at any offset LUKS2 allows".into(),
        });
        for o in offsets {
            match read_copy(&file, size, o, true) {
                Ok(h) => {
                    secondary = Ok(h);
                    break;
                }
                Err(e @ Luks2Error::Header { .. }) if primary.is_ok() => {
                    secondary = Err(e);
                    break;
                }
                Err(e) => secondary = Err(e),
            }
        }
        let (header, primary_damaged) = match (primary, secondary) {
            (Ok(p), Ok(s)) if s.seqid > p.seqid => (s, None),
            (Ok(p), _) => (p, None),
            (Err(p), Ok(s)) => (s, Some(p.to_string())),
            (Err(p), Err(s)) => {
                return Err(Luks2Error::BothHeaders {
                    primary: p.to_string(),
                    secondary: s.to_string(),
                });
            }
        };
        Ok(Self {
            source: file,
            pin,
            size,
            header,
            primary_damaged,
        })
    }

    /// The pinned digest's verdict, when the image was opened with a pin.
    pub fn pin_check(&self) -> Option<PinCheck> {
        self.pin.clone()
    }

    /// Opens the `crypt` segment with the key file: each keyslot bound to the segment's digest
    /// is tried, and the first whose volume key matches the digest opens it.
    ///
    /// # Errors
    /// [`Luks2Error::WrongKey`]; [`Luks2Error::Unsupported`] for a segment other than one
    /// `crypt` segment (reencryption in progress, dm-integrity, `linear`), a cipher other than
    /// aes-xts-plain64/plain and aes-cbc-essiv:sha256, a mandatory requirement; [`Luks2Error::Metadata`].
    pub fn unlock(self, key_file: &[u8]) -> Result<Volume, Luks2Error> {
        let m = &self.header.metadata;
        let mandatory = m
            .config
            .requirements
            .as_ref()
            .and_then(|r| r.get("mandatory"))
            .and_then(|v| v.as_array())
            .filter(|a| !a.is_empty());
        if let Some(req) = mandatory {
            return Err(Luks2Error::Unsupported(format!(
                "mandatory requirements {req:?} (an unfinished reencryption?)"
            )));
        }
        if m.segments.len() != 1 {
            return Err(Luks2Error::Unsupported(format!(
                "{} data segments (an unfinished reencryption?); one crypt segment is read",
                m.segments.len()
            )));
        }
        let (seg_id, seg) = m
            .segments
            .iter()
            .next()
            .ok_or_else(|| Luks2Error::Metadata("no data segment".into()))?;
        if seg.kind != "crypt" {
            return Err(Luks2Error::Unsupported(format!(
                "segment type `{}`",
                seg.kind
            )));
        }
        if seg.integrity.is_some() {
            return Err(Luks2Error::Unsupported(
                "an authenticated segment (dm-integrity)".into(),
            ));
        }
        if !matches!(seg.sector_size, 512 | 1024 | 2048 | 4096) {
            return Err(Luks2Error::Metadata(format!(
                "sector_size {}",
                seg.sector_size
            )));
        }
        let offset = number(&seg.offset, "segment offset")?;
        let iv_tweak = number(&seg.iv_tweak, "segment iv_tweak")?;
        let end = if seg.size == "dynamic" {
            self.size
        } else {
            offset.saturating_add(number(&seg.size, "segment size")?)
        };
        if offset > end || end > self.size {
            return Err(Luks2Error::Metadata(format!(
                "segment {offset}..{end} is outside the image ({} bytes)",
                self.size
            )));
        }
        let digest = m
            .digests
            .values()
            .find(|d| d.segments.contains(seg_id))
            .ok_or_else(|| Luks2Error::Metadata("no digest for the crypt segment".into()))?;
        for ks_id in &digest.keyslots {
            let Some(ks) = m.keyslots.get(ks_id) else {
                continue;
            };
            if ks.kind != "luks2" {
                continue;
            }
            // Sizes from the (unauthenticated) metadata bound allocations: AES keys only.
            if !matches!(ks.key_size, 16 | 32 | 64) || !matches!(ks.area.key_size, 16 | 32 | 64) {
                return Err(Luks2Error::Unsupported(format!(
                    "keyslot {ks_id}: key_size {} / area key_size {} (AES-XTS keys are 32 or 64 bytes, AES-CBC keys 16 or 32)",
                    ks.key_size, ks.area.key_size
                )));
            }
            let area_key = keyslot::derive(&ks.kdf, key_file, ks.area.key_size)?;
            let area_at = number(&ks.area.offset, "keyslot area offset")?;
            let area_size = number(&ks.area.size, "keyslot area size")?;
            let need = (ks.key_size as u64)
                .saturating_mul(u64::from(ks.af.stripes))
                .div_ceil(512)
                * 512;
            if need > area_size || area_at.saturating_add(need) > self.size {
                return Err(Luks2Error::Metadata(format!(
                    "keyslot {ks_id}'s area is smaller than its key material"
                )));
            }
            let mut ct = vec![0u8; need as usize];
            self.source.read_at(area_at, &mut ct)?;
            let material = cipher::decrypt_area(&ks.area.encryption, &area_key, &ct)?;
            let vk = keyslot::af_merge(&material, ks.key_size, &ks.af)?;
            if keyslot::digest_matches(digest, &vk)? {
                let cipher = SectorCipher::new(&seg.encryption, &vk)?;
                return Ok(Volume {
                    source: self.source,
                    pin: self.pin,
                    window: Zeroizing::new(Vec::with_capacity(WINDOW as usize)),
                    window_at: 0,
                    cipher,
                    offset,
                    size: end - offset,
                    sector_size: seg.sector_size,
                    iv_tweak,
                });
            }
        }
        Err(Luks2Error::WrongKey)
    }
}

/// The decrypted `crypt` segment: random-access reads of whole sectors read from the image and
/// decrypted. The last [`WINDOW`] bytes decrypted are kept (zeroized when replaced or dropped)
/// so that ext4's block-sized reads of a file go through the cipher in large batches; nothing is
/// written anywhere.
pub struct Volume {
    source: Source,
    pin: Option<PinCheck>,
    cipher: SectorCipher,
    offset: u64,
    size: u64,
    sector_size: u64,
    iv_tweak: u64,
    /// Plaintext of the segment at `window_at..window_at + window.len()`.
    window: Zeroizing<Vec<u8>>,
    window_at: u64,
}

impl std::fmt::Debug for Volume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Volume")
            .field("offset", &self.offset)
            .field("size", &self.size)
            .field("sector_size", &self.sector_size)
            .finish_non_exhaustive()
    }
}

/// Bytes decrypted ahead of a read that misses the window.
pub const WINDOW: u64 = 1 << 20;
/// A window is read and decrypted in pieces of this size on rayon's pool (the cores share the
/// XTS work); pieces start on the pin's chunk grid so that each piece is hashed once.
const PIECE: u64 = source::CHUNK;

impl Volume {
    /// The segment's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The pinned digest's verdict, when the image was opened with a pin: callers keep no
    /// plaintext until [`PinCheck::wait`] returns `Ok`.
    pub fn pin_check(&self) -> Option<PinCheck> {
        self.pin.clone()
    }

    /// Fills `dst` with the plaintext at byte `start` of the segment.
    ///
    /// # Errors
    /// [`Luks2Error::Io`] for a read past the segment or a failed read; [`Luks2Error::Pin`]
    /// when a pinned image's bytes are not the pinned ones.
    pub fn read_at(&mut self, start: u64, dst: &mut [u8]) -> Result<(), Luks2Error> {
        let end = start.saturating_add(dst.len() as u64);
        if end > self.size {
            return Err(Luks2Error::Io(format!(
                "read of {}..{end} past the segment's {} bytes",
                start, self.size
            )));
        }
        let mut done = 0usize;
        while done < dst.len() {
            let at = start + done as u64;
            let w_end = self.window_at + self.window.len() as u64;
            if at < self.window_at || at >= w_end {
                self.fill_window(at)?;
                continue;
            }
            let skip = (at - self.window_at) as usize;
            let n = (self.window.len() - skip).min(dst.len() - done);
            dst[done..done + n].copy_from_slice(&self.window[skip..skip + n]);
            done += n;
        }
        Ok(())
    }

    /// Reads and decrypts the window holding byte `at`: [`WINDOW`] bytes from a [`PIECE`]
    /// boundary (a sector boundary when the segment's offset is not on one), in pieces on
    /// rayon's pool.
    fn fill_window(&mut self, at: u64) -> Result<(), Luks2Error> {
        let ss = self.sector_size;
        let grid = if self.offset.is_multiple_of(PIECE) {
            PIECE
        } else {
            ss
        };
        let from = at / grid * grid;
        let to = (from + WINDOW).min(self.size.div_ceil(ss) * ss);
        // Never past the capacity (WINDOW is a multiple of every sector size): no reallocation
        // leaves plaintext behind.
        self.window
            .resize(((to - from) as usize).min(WINDOW as usize), 0);
        self.window_at = from;
        let piece = if grid == PIECE {
            PIECE as usize
        } else {
            self.window.len()
        };
        let (source, cipher, offset, tweak) =
            (&self.source, &self.cipher, self.offset, self.iv_tweak);
        let r: Result<(), Luks2Error> =
            self.window
                .par_chunks_mut(piece)
                .enumerate()
                .try_for_each(|(i, p)| {
                    let start = from + (i * piece) as u64;
                    source.read_at(offset + start, p)?;
                    // The IV counts 512-byte sectors from the segment's start, plus iv_tweak.
                    cipher.decrypt(p, ss as usize, (start / 512).wrapping_add(tweak));
                    Ok(())
                });
        if r.is_err() {
            self.window.clear();
        }
        r
    }
}

impl ext4_view::Ext4Read for Volume {
    fn read(
        &mut self,
        start_byte: u64,
        dst: &mut [u8],
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        self.read_at(start_byte, dst).map_err(Into::into)
    }
}
