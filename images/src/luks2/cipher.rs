//! The `crypt` segment's and keyslot areas' cipher: dm-crypt's `aes-xts-plain64` (IEEE
//! 1619-2007 XTS-AES with the sector number as the tweak, little-endian, 64 bits) and
//! `aes-xts-plain` (the sector number's low 32 bits), AES-128 or AES-256 (a 32- or 64-byte key:
//! two AES keys).
//!
//! The IV counts 512-byte sectors whatever the encryption sector size (dm-crypt without
//! `iv_large_sectors`, as cryptsetup opens LUKS2): with 4096-byte sectors, the sector at byte
//! `4096·k` of the segment has IV `8k + iv_tweak`. Checked against images cryptsetup makes
//! (`images/tests/luks2.rs`).

use aes::cipher::KeyInit;
use aes::{Aes128, Aes256};
use xts_mode::{Xts128, get_tweak_default};
use zeroize::Zeroizing;

use super::Luks2Error;

/// IV numbering of a cipher spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Iv {
    Plain64,
    Plain,
}

enum Aes {
    A128(Box<Xts128<Aes128>>),
    A256(Box<Xts128<Aes256>>),
}

/// An XTS cipher with its IV numbering.
pub struct SectorCipher {
    aes: Aes,
    iv: Iv,
}

impl SectorCipher {
    /// The cipher `spec` (e.g. `aes-xts-plain64`) under `key`.
    ///
    /// # Errors
    /// [`Luks2Error::Unsupported`] for another cipher or a key that is not 32 or 64 bytes.
    pub fn new(spec: &str, key: &[u8]) -> Result<Self, Luks2Error> {
        let iv = match spec {
            "aes-xts-plain64" => Iv::Plain64,
            "aes-xts-plain" => Iv::Plain,
            other => {
                return Err(Luks2Error::Unsupported(format!(
                    "cipher `{other}` (ccr reads aes-xts-plain64 and aes-xts-plain)"
                )));
            }
        };
        let half = key.len() / 2;
        let aes = match key.len() {
            32 => Aes::A128(Box::new(Xts128::new(
                Aes128::new_from_slice(&key[..half]).map_err(|_| bad_key(key.len()))?,
                Aes128::new_from_slice(&key[half..]).map_err(|_| bad_key(key.len()))?,
            ))),
            64 => Aes::A256(Box::new(Xts128::new(
                Aes256::new_from_slice(&key[..half]).map_err(|_| bad_key(key.len()))?,
                Aes256::new_from_slice(&key[half..]).map_err(|_| bad_key(key.len()))?,
            ))),
            n => return Err(bad_key(n)),
        };
        Ok(Self { aes, iv })
    }

    /// Decrypts whole sectors in place: `buf` is `k × sector_size` bytes and its first sector's
    /// IV is `first_iv` (in 512-byte units: each next sector's is `sector_size / 512` more).
    pub fn decrypt(&self, buf: &mut [u8], sector_size: usize, first_iv: u64) {
        let step = (sector_size / 512) as u64;
        for (i, sector) in buf.chunks_exact_mut(sector_size).enumerate() {
            let iv = first_iv.wrapping_add((i as u64).wrapping_mul(step));
            let iv = if self.iv == Iv::Plain {
                iv & 0xffff_ffff
            } else {
                iv
            };
            let t = get_tweak_default(u128::from(iv));
            match &self.aes {
                Aes::A128(x) => x.decrypt_sector(sector, t),
                Aes::A256(x) => x.decrypt_sector(sector, t),
            }
        }
    }
}

fn bad_key(n: usize) -> Luks2Error {
    Luks2Error::Unsupported(format!(
        "an XTS key of {n} bytes (32 or 64 are AES-128/256-XTS)"
    ))
}

/// Decrypts a keyslot area's `len` bytes of key material (512-byte sectors numbered from 0 at
/// the area's start, as cryptsetup writes them).
pub fn decrypt_area(
    spec: &str,
    key: &[u8],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, Luks2Error> {
    let c = SectorCipher::new(spec, key)?;
    let mut out = Zeroizing::new(ciphertext.to_vec());
    let whole = out.len() / 512 * 512;
    c.decrypt(&mut out[..whole], 512, 0);
    Ok(out)
}
