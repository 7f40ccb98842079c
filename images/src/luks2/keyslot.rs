//! Opening a keyslot with the key file (LUKS2 On-Disk Format §3.2, LUKS1 §2.4 for the AF
//! splitter): the KDF turns the key file into the area key, the area decrypts to
//! `key_size × stripes` bytes of AF-split material, the AF merge gives the volume key, and the
//! digest (PBKDF2 of the volume key) says whether it is the right one.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::Luks2Error;
use super::header::{Af, Digest, Kdf};

/// The largest argon2 memory cost cryptsetup sets, KiB.
const MAX_ARGON2_KIB: u32 = 4 * 1024 * 1024;

fn b64(s: &str, field: &str) -> Result<Vec<u8>, Luks2Error> {
    STANDARD
        .decode(s.trim())
        .map_err(|_| Luks2Error::Metadata(format!("{field} is not base64")))
}

/// PBKDF2-HMAC-`hash` of `password`, `len` bytes.
fn pbkdf2(
    hash: &str,
    password: &[u8],
    salt: &[u8],
    iterations: u32,
    len: usize,
) -> Result<Zeroizing<Vec<u8>>, Luks2Error> {
    let mut out = Zeroizing::new(vec![0u8; len]);
    let r = match hash {
        "sha1" => pbkdf2::pbkdf2::<hmac::Hmac<sha1::Sha1>>(password, salt, iterations, &mut out),
        "sha256" => {
            pbkdf2::pbkdf2::<hmac::Hmac<sha2::Sha256>>(password, salt, iterations, &mut out)
        }
        "sha512" => {
            pbkdf2::pbkdf2::<hmac::Hmac<sha2::Sha512>>(password, salt, iterations, &mut out)
        }
        other => {
            return Err(Luks2Error::Unsupported(format!("PBKDF2 hash `{other}`")));
        }
    };
    r.map_err(|_| Luks2Error::Metadata("PBKDF2 parameters are invalid".into()))?;
    Ok(out)
}

/// The area key: the keyslot's KDF of the key file, `len` bytes.
///
/// # Errors
/// [`Luks2Error::Metadata`] for a bad salt or parameters; [`Luks2Error::Unsupported`] for an
/// unknown hash.
pub fn derive(kdf: &Kdf, key_file: &[u8], len: usize) -> Result<Zeroizing<Vec<u8>>, Luks2Error> {
    let argon = |alg, time, memory, cpus, salt: &str| {
        let salt = b64(salt, "kdf.salt")?;
        // cryptsetup's ceiling (4 GiB): more is a header asking ccr to exhaust memory.
        if memory > MAX_ARGON2_KIB {
            return Err(Luks2Error::Metadata(format!(
                "argon2 memory {memory} KiB is over cryptsetup's limit of {MAX_ARGON2_KIB} KiB"
            )));
        }
        let params = argon2::Params::new(memory, time, cpus, Some(len))
            .map_err(|e| Luks2Error::Metadata(format!("argon2 parameters: {e}")))?;
        let mut out = Zeroizing::new(vec![0u8; len]);
        argon2::Argon2::new(alg, argon2::Version::V0x13, params)
            .hash_password_into(key_file, &salt, &mut out)
            .map_err(|e| Luks2Error::Metadata(format!("argon2: {e}")))?;
        Ok(out)
    };
    match kdf {
        Kdf::Pbkdf2 {
            hash,
            iterations,
            salt,
        } => pbkdf2(hash, key_file, &b64(salt, "kdf.salt")?, *iterations, len),
        Kdf::Argon2i {
            time,
            memory,
            cpus,
            salt,
        } => argon(argon2::Algorithm::Argon2i, *time, *memory, *cpus, salt),
        Kdf::Argon2id {
            time,
            memory,
            cpus,
            salt,
        } => argon(argon2::Algorithm::Argon2id, *time, *memory, *cpus, salt),
    }
}

/// `H(i ‖ block)` over each hash-sized block of `buf` (the last one truncated): the AF
/// splitter's diffusion (LUKS1 spec §2.4, `diffuse`).
fn diffuse<H: sha2::Digest>(buf: &mut [u8]) {
    let size = <H as sha2::Digest>::output_size();
    for (i, block) in buf.chunks_mut(size).enumerate() {
        let mut h = H::new();
        h.update((i as u32).to_be_bytes());
        h.update(&*block);
        let d = h.finalize();
        block.copy_from_slice(&d[..block.len()]);
    }
}

/// The AF merge: `d = 0; d = diffuse(d ⊕ s_i)` for the first `stripes − 1` stripes, and the
/// volume key `d ⊕ s_last`.
///
/// # Errors
/// [`Luks2Error::Metadata`] when the material is shorter than `key_size × stripes`;
/// [`Luks2Error::Unsupported`] for an unknown hash.
pub fn af_merge(
    material: &[u8],
    key_size: usize,
    af: &Af,
) -> Result<Zeroizing<Vec<u8>>, Luks2Error> {
    let stripes = af.stripes as usize;
    if af.kind != "luks1" || stripes == 0 || key_size == 0 {
        return Err(Luks2Error::Unsupported(format!(
            "anti-forensic splitter `{}` with {stripes} stripes",
            af.kind
        )));
    }
    if material.len() < key_size.saturating_mul(stripes) {
        return Err(Luks2Error::Metadata(format!(
            "keyslot area holds {} bytes, fewer than key_size × stripes",
            material.len()
        )));
    }
    let mut d = Zeroizing::new(vec![0u8; key_size]);
    for s in material.chunks_exact(key_size).take(stripes - 1) {
        for (a, b) in d.iter_mut().zip(s) {
            *a ^= b;
        }
        match af.hash.as_str() {
            "sha1" => diffuse::<sha1::Sha1>(&mut d),
            "sha256" => diffuse::<sha2::Sha256>(&mut d),
            "sha512" => diffuse::<sha2::Sha512>(&mut d),
            other => return Err(Luks2Error::Unsupported(format!("AF hash `{other}`"))),
        }
    }
    let last = &material[(stripes - 1) * key_size..stripes * key_size];
    for (a, b) in d.iter_mut().zip(last) {
        *a ^= b;
    }
    Ok(d)
}

/// Whether `volume_key` matches the digest (PBKDF2 of it, compared in constant time).
///
/// # Errors
/// [`Luks2Error::Metadata`] or [`Luks2Error::Unsupported`] for the digest's fields.
pub fn digest_matches(d: &Digest, volume_key: &[u8]) -> Result<bool, Luks2Error> {
    if d.kind != "pbkdf2" {
        return Err(Luks2Error::Unsupported(format!("digest type `{}`", d.kind)));
    }
    let want = b64(&d.digest, "digest")?;
    let got = pbkdf2(
        &d.hash,
        volume_key,
        &b64(&d.salt, "digest salt")?,
        d.iterations,
        want.len(),
    )?;
    Ok(bool::from(got.ct_eq(&want)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn af_merge_undoes_the_split() {
        // Split a key as cryptsetup does (random stripes, then the last one), with sha256 and a
        // key longer than one hash block, and merge it back.
        let key: Vec<u8> = (0..40u8).collect();
        let stripes = 5usize;
        let mut material = Vec::new();
        let mut d = vec![0u8; key.len()];
        for i in 0..stripes - 1 {
            let s: Vec<u8> = (0..key.len()).map(|j| (i * 31 + j * 7) as u8).collect();
            for (a, b) in d.iter_mut().zip(&s) {
                *a ^= b;
            }
            diffuse::<sha2::Sha256>(&mut d);
            material.extend(s);
        }
        material.extend(d.iter().zip(&key).map(|(a, b)| a ^ b));
        let af = Af {
            kind: "luks1".into(),
            stripes: stripes as u32,
            hash: "sha256".into(),
        };
        assert_eq!(&af_merge(&material, key.len(), &af).unwrap()[..], &key[..]);
        assert!(af_merge(&material[..10], key.len(), &af).is_err());
    }
}
