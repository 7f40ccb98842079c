//! The `crypt` segment's and keyslot areas' cipher: dm-crypt's `aes-xts-plain64` (IEEE
//! 1619-2007 XTS-AES with the sector number as the tweak, little-endian, 64 bits) and
//! `aes-xts-plain` (the sector number's low 32 bits), AES-128 or AES-256 (a 32- or 64-byte key:
//! two AES keys); and `aes-cbc-essiv:sha256` (CBC, each sector's IV the little-endian sector
//! number encrypted with AES-256 under SHA-256 of the volume key; a 16- or 32-byte key). XTS itself (IEEE 1619-2007 §5.4) is composed here over the `aes` crate so that
//! each sector's blocks go through AES in one batched, pipelined call (the `xts-mode` crate
//! decrypts block by block; its output is the tests' reference).
//!
//! The IV counts 512-byte sectors whatever the encryption sector size (dm-crypt without
//! `iv_large_sectors`, as cryptsetup opens LUKS2): with 4096-byte sectors, the sector at byte
//! `4096·k` of the segment has IV `8k + iv_tweak`. Checked against images cryptsetup makes
//! (`images/tests/luks2.rs`).

use aes::cipher::consts::U16;
use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockDecrypt, BlockEncrypt, BlockSizeUser, KeyInit};
use aes::{Aes128, Aes256, Block};
use sha2::Digest as _;
use zeroize::Zeroizing;

use super::Luks2Error;

/// IV numbering of a cipher spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Iv {
    Plain64,
    Plain,
}

/// The keys of a sector cipher: XTS's data (`K1`) and tweak (`K2`) keys, or CBC's data key and
/// ESSIV's salt key (AES-256 under SHA-256 of the volume key).
enum Keys {
    A128(Box<(Aes128, Aes128)>),
    A256(Box<(Aes256, Aes256)>),
    Cbc128(Box<(Aes128, Aes256)>),
    Cbc256(Box<(Aes256, Aes256)>),
}

/// A sector cipher (XTS or CBC-ESSIV) with its IV numbering.
pub struct SectorCipher {
    keys: Keys,
    iv: Iv,
}

/// CBC-decrypts one sector whose IV is `iv` (`E_salt(sector)`, dm-crypt's ESSIV): every block
/// through AES in one batched call, then each XORed with the ciphertext block before it.
fn decrypt_cbc_sector<D>(k: &D, sector: &mut [u8], iv: [u8; 16], scratch: &mut [Block])
where
    D: BlockDecrypt + BlockSizeUser<BlockSize = U16>,
{
    for (c, b) in sector.chunks_exact(16).zip(scratch.iter_mut()) {
        b.copy_from_slice(c);
    }
    k.decrypt_blocks(scratch);
    let mut prev = iv;
    for (c, b) in sector.chunks_exact_mut(16).zip(scratch.iter()) {
        let mut this = [0u8; 16];
        this.copy_from_slice(c);
        for ((o, x), p) in c.iter_mut().zip(b.iter()).zip(prev.iter()) {
            *o = x ^ p;
        }
        prev = this;
    }
}

/// dm-crypt's ESSIV IVs of `n` sectors: `E_salt(le64(sector))` in one batched call.
fn essiv(salt: &Aes256, ivs: impl Iterator<Item = u128>) -> Vec<[u8; 16]> {
    let mut t: Vec<Block> = ivs.map(|iv| Block::from(iv.to_le_bytes())).collect();
    salt.encrypt_blocks(&mut t);
    t.iter().map(|b| (*b).into()).collect()
}

/// `t · α` in GF(2¹²⁸) (IEEE 1619-2007 §5.2: little-endian, reduction by x⁷ + x² + x + 1).
fn mul_alpha(t: u128) -> u128 {
    (t << 1) ^ ((t >> 127) * 0x87)
}

/// XTS-decrypts one sector (IEEE 1619-2007 §5.4, whole blocks) whose first tweak `t`
/// (`E_K2(IV)`) is given: every block of the sector goes through AES in one batched call (the
/// `aes` crate pipelines eight blocks at a time). `scratch` holds the sector's blocks.
fn decrypt_sector<D>(k1: &D, sector: &mut [u8], t: u128, scratch: &mut [Block])
where
    D: BlockDecrypt + BlockSizeUser<BlockSize = U16>,
{
    let mut tw = t;
    for (c, b) in sector.chunks_exact(16).zip(scratch.iter_mut()) {
        let x = u128::from_le_bytes(c.try_into().unwrap_or([0; 16])) ^ tw;
        *b = Block::from(x.to_le_bytes());
        tw = mul_alpha(tw);
    }
    k1.decrypt_blocks(scratch);
    let mut tw = t;
    for (c, b) in sector.chunks_exact_mut(16).zip(scratch.iter()) {
        let x = u128::from_le_bytes((*b).into()) ^ tw;
        c.copy_from_slice(&x.to_le_bytes());
        tw = mul_alpha(tw);
    }
}

/// The first tweak of each of `n` sectors, `E_K2(IV)`, in one batched call.
fn first_tweaks<E>(k2: &E, ivs: impl Iterator<Item = u128>) -> Vec<u128>
where
    E: BlockEncrypt + BlockSizeUser<BlockSize = U16>,
{
    let mut t: Vec<Block> = ivs.map(|iv| Block::from(iv.to_le_bytes())).collect();
    k2.encrypt_blocks(&mut t);
    t.iter().map(|b| u128::from_le_bytes((*b).into())).collect()
}

impl SectorCipher {
    /// The cipher `spec` (e.g. `aes-xts-plain64`) under `key`.
    ///
    /// # Errors
    /// [`Luks2Error::Unsupported`] for another cipher or a key that is not 32 or 64 bytes.
    pub fn new(spec: &str, key: &[u8]) -> Result<Self, Luks2Error> {
        if spec == "aes-cbc-essiv:sha256" {
            // ESSIV (dm-crypt): the salt key is SHA-256 of the volume key, AES-256.
            let salt = sha2::Sha256::digest(key);
            let salt = Aes256::new_from_slice(&salt).map_err(|_| bad_key(key.len()))?;
            let keys = match key.len() {
                16 => Keys::Cbc128(Box::new((
                    Aes128::new_from_slice(key).map_err(|_| bad_key(key.len()))?,
                    salt,
                ))),
                32 => Keys::Cbc256(Box::new((
                    Aes256::new_from_slice(key).map_err(|_| bad_key(key.len()))?,
                    salt,
                ))),
                n => return Err(bad_key(n)),
            };
            return Ok(Self {
                keys,
                iv: Iv::Plain64,
            });
        }
        let iv = match spec {
            "aes-xts-plain64" => Iv::Plain64,
            "aes-xts-plain" => Iv::Plain,
            other => {
                return Err(Luks2Error::Unsupported(format!(
                    "cipher `{other}` (ccr reads aes-xts-plain64, aes-xts-plain and aes-cbc-essiv:sha256)"
                )));
            }
        };
        let half = key.len() / 2;
        let keys = match key.len() {
            32 => Keys::A128(Box::new((
                Aes128::new_from_slice(&key[..half]).map_err(|_| bad_key(key.len()))?,
                Aes128::new_from_slice(&key[half..]).map_err(|_| bad_key(key.len()))?,
            ))),
            64 => Keys::A256(Box::new((
                Aes256::new_from_slice(&key[..half]).map_err(|_| bad_key(key.len()))?,
                Aes256::new_from_slice(&key[half..]).map_err(|_| bad_key(key.len()))?,
            ))),
            n => return Err(bad_key(n)),
        };
        Ok(Self { keys, iv })
    }

    /// Decrypts whole sectors in place: `buf` is `k × sector_size` bytes and its first sector's
    /// IV is `first_iv` (in 512-byte units: each next sector's is `sector_size / 512` more).
    pub fn decrypt(&self, buf: &mut [u8], sector_size: usize, first_iv: u64) {
        let step = (sector_size / 512) as u64;
        let n = buf.len() / sector_size;
        let plain = self.iv == Iv::Plain;
        let ivs = (0..n as u64).map(|i| {
            let iv = first_iv.wrapping_add(i.wrapping_mul(step));
            u128::from(if plain { iv & 0xffff_ffff } else { iv })
        });
        let mut scratch = vec![Block::default(); sector_size / 16];
        match &self.keys {
            Keys::A128(k) => {
                for (s, t) in buf
                    .chunks_exact_mut(sector_size)
                    .zip(first_tweaks(&k.1, ivs))
                {
                    decrypt_sector(&k.0, s, t, &mut scratch);
                }
            }
            Keys::A256(k) => {
                for (s, t) in buf
                    .chunks_exact_mut(sector_size)
                    .zip(first_tweaks(&k.1, ivs))
                {
                    decrypt_sector(&k.0, s, t, &mut scratch);
                }
            }
            Keys::Cbc128(k) => {
                for (s, iv) in buf.chunks_exact_mut(sector_size).zip(essiv(&k.1, ivs)) {
                    decrypt_cbc_sector(&k.0, s, iv, &mut scratch);
                }
            }
            Keys::Cbc256(k) => {
                for (s, iv) in buf.chunks_exact_mut(sector_size).zip(essiv(&k.1, ivs)) {
                    decrypt_cbc_sector(&k.0, s, iv, &mut scratch);
                }
            }
        }
        scratch.fill(GenericArray::default());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decrypts_as_the_xts_mode_crate_does() {
        // Random sectors encrypted by xts-mode (IEEE 1619 XTS over the `aes` crate) with the
        // plain64 tweak, decrypted here, for AES-128 and AES-256, 512 and 4096-byte sectors.
        for (klen, ss) in [(32usize, 512usize), (64, 4096), (64, 512)] {
            let key: Vec<u8> = (0..klen as u8).map(|i| i.wrapping_mul(29) ^ 0xa5).collect();
            let plain: Vec<u8> = (0..ss * 3).map(|i| (i * 7 % 251) as u8).collect();
            let mut ct = plain.clone();
            let h = klen / 2;
            match klen {
                32 => xts_mode::Xts128::new(
                    Aes128::new_from_slice(&key[..h]).unwrap(),
                    Aes128::new_from_slice(&key[h..]).unwrap(),
                )
                .encrypt_area(&mut ct, ss, 40, |s| {
                    xts_mode::get_tweak_default(s * (ss as u128 / 512))
                }),
                _ => xts_mode::Xts128::new(
                    Aes256::new_from_slice(&key[..h]).unwrap(),
                    Aes256::new_from_slice(&key[h..]).unwrap(),
                )
                .encrypt_area(&mut ct, ss, 40, |s| {
                    xts_mode::get_tweak_default(s * (ss as u128 / 512))
                }),
            }
            assert_ne!(ct, plain);
            let c = SectorCipher::new("aes-xts-plain64", &key).unwrap();
            c.decrypt(&mut ct, ss, 40 * (ss as u64 / 512));
            assert_eq!(ct, plain, "AES-{} XTS, {ss}-byte sectors", klen * 4);
        }
    }
}
