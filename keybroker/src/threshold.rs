//! k-of-n key shares (issue 17): a 32-byte DEK split by Shamir's secret sharing (Shamir, "How to
//! share a secret", CACM 1979) over GF(2⁸), byte by byte, with `vsss-rs`'s [`Gf256`] (constant
//! time, no lookup tables), so that any `k` of the `n` shares give the DEK back and `k − 1`
//! reveal nothing about it; each share is committed to by its SHA-256, which the contract
//! carries, so that a service answering another share, or random bytes, is caught before the
//! DEK is rebuilt.
//!
//! A share is its identifier `x` (1..=255: the share's place in the contract's list, counted
//! from 1) and its 32-byte value (the 32 byte polynomials `f_j` at `x`): the value is what a key
//! service holds, as it would hold a DEK (a Key Vault `oct-HSM` key, a ccr broker resource, a
//! Cloud KMS-wrapped DEK), and the identifier comes from the contract. Its commitment is
//! SHA-256(`x` ‖ value). With `k` = 1 the polynomials are constant: every value is the DEK.

use ccr_images::DatasetKey;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use vsss_rs::Gf256;
use zeroize::Zeroizing;

/// Bytes of one share: the identifier, then one byte per DEK byte (vsss-rs's layout).
pub const SHARE_LEN: usize = 1 + 32;

/// The most shares (GF(2⁸) has 255 non-zero identifiers; ccr's contracts take at most 255).
pub const MAX_SHARES: u8 = 255;

/// What can be wrong with a split, a share or a commitment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ThresholdError {
    /// `k` and `n` do not make a scheme (1 ≤ k ≤ n ≤ 255).
    #[error("threshold: k = {k}, n = {n}: need 1 <= k <= n <= 255")]
    Params {
        /// The threshold.
        k: usize,
        /// The number of shares.
        n: usize,
    },
    /// A share's bytes are not a share (the length or the identifier).
    #[error("share: {0}")]
    Share(String),
    /// A commitment is not 64 lowercase hex digits.
    #[error("commitment: {0}")]
    Commitment(String),
    /// The shares given cannot rebuild the key: fewer than `k`, or two with one identifier.
    #[error("combine: {0}")]
    Combine(String),
}

/// One share: identifier and values, zeroized on drop; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Share(Zeroizing<[u8; SHARE_LEN]>);

impl std::fmt::Debug for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Share(index {}, ..)", self.index())
    }
}

impl Share {
    /// Reads a share's 33 bytes.
    ///
    /// # Errors
    /// [`ThresholdError::Share`] for another length or identifier 0 (the secret's own point).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ThresholdError> {
        let arr: [u8; SHARE_LEN] = bytes.try_into().map_err(|_| {
            ThresholdError::Share(format!("{} bytes, a share is {SHARE_LEN}", bytes.len()))
        })?;
        if arr[0] == 0 {
            return Err(ThresholdError::Share(
                "identifier 0 (the secret itself) is not a share".into(),
            ));
        }
        Ok(Self(Zeroizing::new(arr)))
    }

    /// A share from its identifier (1..=255, its place in the contract's list) and its 32-byte
    /// value as a key service released it.
    ///
    /// # Errors
    /// [`ThresholdError::Share`] for identifier 0.
    pub fn from_value(index: u8, value: &DatasetKey) -> Result<Self, ThresholdError> {
        let mut b = Zeroizing::new([0u8; SHARE_LEN]);
        b[0] = index;
        b[1..].copy_from_slice(value.as_bytes());
        Self::from_bytes(b.as_slice())
    }

    /// The share's identifier `x`, 1..=255 (its index among the shares).
    pub fn index(&self) -> u8 {
        self.0[0]
    }

    /// The share's 32-byte value: what its key service holds.
    pub fn value(&self) -> DatasetKey {
        let mut v = Zeroizing::new([0u8; 32]);
        v.copy_from_slice(&self.0[1..]);
        DatasetKey::from_array(v)
    }

    /// The share's bytes (identifier first).
    pub fn as_bytes(&self) -> &[u8; SHARE_LEN] {
        &self.0
    }

    /// The share's commitment: SHA-256 of its 33 bytes (identifier ‖ value), 64 lowercase hex.
    pub fn commitment(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_slice()))
    }

    /// Whether the share is the one `commitment` commits to (compared in constant time).
    ///
    /// # Errors
    /// [`ThresholdError::Commitment`] when `commitment` is not 64 lowercase hex digits.
    pub fn matches(&self, commitment: &str) -> Result<bool, ThresholdError> {
        let want = parse_commitment(commitment)?;
        let got: [u8; 32] = Sha256::digest(self.0.as_slice()).into();
        Ok(subtle::ConstantTimeEq::ct_eq(&got[..], &want[..]).into())
    }
}

/// Reads a commitment (64 lowercase hex digits).
///
/// # Errors
/// [`ThresholdError::Commitment`] naming what is wrong.
pub fn parse_commitment(c: &str) -> Result<[u8; 32], ThresholdError> {
    if c.len() != 64
        || !c
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(ThresholdError::Commitment(format!(
            "`{c}` is not 64 lowercase hex digits (SHA-256)"
        )));
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(c, &mut out)
        .map_err(|e| ThresholdError::Commitment(format!("`{c}`: {e}")))?;
    Ok(out)
}

fn check_params(k: usize, n: usize) -> Result<(), ThresholdError> {
    if k == 0 || k > n || n > usize::from(MAX_SHARES) {
        return Err(ThresholdError::Params { k, n });
    }
    Ok(())
}

/// Splits `dek` into `n` shares, any `k` of which rebuild it; identifiers 1..=n in order. The
/// polynomials' coefficients come from the operating system's CSPRNG.
///
/// # Errors
/// [`ThresholdError::Params`] unless 1 ≤ k ≤ n ≤ 255.
pub fn split(dek: &DatasetKey, k: usize, n: usize) -> Result<Vec<Share>, ThresholdError> {
    check_params(k, n)?;
    let secret = dek.as_bytes();
    if k == 1 {
        // A constant polynomial: each share is the DEK at its identifier.
        return (1..=n)
            .map(|i| {
                let mut b = [0u8; SHARE_LEN];
                b[0] = i as u8;
                b[1..].copy_from_slice(secret);
                let s = Share::from_bytes(&b);
                zeroize::Zeroize::zeroize(&mut b);
                s
            })
            .collect();
    }
    let raw = Gf256::split_array(k, n, secret, OsRng)
        .map_err(|e| ThresholdError::Params { k, n }.with_reason(&e))?;
    let mut shares = Vec::with_capacity(n);
    for r in raw {
        let r = Zeroizing::new(r);
        shares.push(Share::from_bytes(&r)?);
    }
    Ok(shares)
}

/// Rebuilds the DEK from `k` or more shares (the first `k` are used; a scheme with threshold
/// `k` gives one answer for any `k` of its shares).
///
/// # Errors
/// [`ThresholdError::Combine`] for fewer than `k` shares or two with one identifier.
pub fn combine(shares: &[Share], k: usize) -> Result<DatasetKey, ThresholdError> {
    if k == 0 || shares.len() < k {
        return Err(ThresholdError::Combine(format!(
            "{} share(s), the threshold is {k}",
            shares.len()
        )));
    }
    let used = &shares[..k];
    for (i, a) in used.iter().enumerate() {
        if used[i + 1..].iter().any(|b| b.index() == a.index()) {
            return Err(ThresholdError::Combine(format!(
                "two shares with identifier {}",
                a.index()
            )));
        }
    }
    let secret = if k == 1 {
        Zeroizing::new(used[0].as_bytes()[1..].to_vec())
    } else {
        let raw: Vec<Vec<u8>> = used.iter().map(|s| s.as_bytes().to_vec()).collect();
        let raw = Zeroizing::new(raw);
        Zeroizing::new(
            Gf256::combine_array(raw.as_slice())
                .map_err(|e| ThresholdError::Combine(e.to_string()))?,
        )
    };
    DatasetKey::from_slice(&secret).map_err(|e| ThresholdError::Combine(e.to_string()))
}

impl ThresholdError {
    fn with_reason(self, e: &dyn std::fmt::Display) -> Self {
        match self {
            Self::Params { k, n } => Self::Combine(format!("split k = {k}, n = {n}: {e}")),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> DatasetKey {
        DatasetKey::from_slice(&[b; 32]).unwrap()
    }

    #[test]
    fn any_k_shares_rebuild_the_key_for_every_k_and_n_up_to_10() {
        for n in 1..=10usize {
            for k in 1..=n {
                let dek = DatasetKey::generate();
                let shares = split(&dek, k, n).unwrap();
                assert_eq!(shares.len(), n);
                let ids: Vec<u8> = shares.iter().map(Share::index).collect();
                assert_eq!(ids, (1..=n as u8).collect::<Vec<_>>(), "k {k} n {n}");
                // Every window of k shares, and the k last in reverse order.
                for start in 0..=n - k {
                    let got = combine(&shares[start..start + k], k).unwrap();
                    assert_eq!(got.as_bytes(), dek.as_bytes(), "k {k} n {n} from {start}");
                }
                let mut rev: Vec<Share> = shares.iter().rev().take(k).cloned().collect();
                rev.reverse();
                assert_eq!(combine(&rev, k).unwrap().as_bytes(), dek.as_bytes());
            }
        }
    }

    #[test]
    fn k_minus_one_shares_do_not_rebuild_the_key() {
        for (k, n) in [(2, 3), (3, 5), (5, 10)] {
            let dek = DatasetKey::generate();
            let shares = split(&dek, k, n).unwrap();
            assert!(matches!(
                combine(&shares[..k - 1], k),
                Err(ThresholdError::Combine(_))
            ));
            // Interpolating k - 1 shares as if they were a scheme of k - 1 gives another key.
            if k > 2 {
                let wrong = combine(&shares[..k - 1], k - 1).unwrap();
                assert_ne!(wrong.as_bytes(), dek.as_bytes(), "k {k} n {n}");
            }
        }
    }

    /// One share's bytes are uniform whatever the key: for two fixed keys (all zero, all
    /// 0xff), the first share's value bytes over many splits take each of the 256 values about
    /// equally often (a chi-square test at 255 degrees of freedom, bound 400: p < 1e-7 under
    /// uniformity), and so carry nothing the test can tell apart.
    #[test]
    fn one_share_is_distributed_independently_of_the_key() {
        for b in [0x00u8, 0xff] {
            let dek = key(b);
            let mut counts = [0u32; 256];
            for _ in 0..400 {
                let s = split(&dek, 2, 3).unwrap();
                for v in &s[0].as_bytes()[1..] {
                    counts[usize::from(*v)] += 1;
                }
            }
            let expected = 400.0 * 32.0 / 256.0;
            let chi2: f64 = counts
                .iter()
                .map(|&c| (f64::from(c) - expected).powi(2) / expected)
                .sum();
            assert!(chi2 < 400.0, "key byte {b:#x}: chi-square {chi2}");
        }
    }

    #[test]
    fn commitments_catch_another_share_and_random_bytes() {
        let dek = DatasetKey::generate();
        let shares = split(&dek, 2, 3).unwrap();
        let c: Vec<String> = shares.iter().map(Share::commitment).collect();
        assert!(shares[0].matches(&c[0]).unwrap());
        assert!(!shares[1].matches(&c[0]).unwrap(), "another share");
        let mut random = [7u8; SHARE_LEN];
        random[0] = 1;
        assert!(!Share::from_bytes(&random).unwrap().matches(&c[0]).unwrap());
        // Share 2's value answered for slot 1: the identifier is the contract's, so it fails.
        let swapped = Share::from_value(1, &shares[1].value()).unwrap();
        assert!(!swapped.matches(&c[0]).unwrap());
        // The value round-trips through a service as a 32-byte key.
        let back = Share::from_value(2, &shares[1].value()).unwrap();
        assert_eq!(back, shares[1]);
        assert!(back.matches(&c[1]).unwrap());
    }

    #[test]
    fn malformed_shares_commitments_and_parameters_are_errors() {
        for bad in [&[][..], &[1u8; 32][..], &[1u8; 34][..]] {
            assert!(matches!(
                Share::from_bytes(bad),
                Err(ThresholdError::Share(_))
            ));
        }
        let mut zero = [9u8; SHARE_LEN];
        zero[0] = 0;
        assert!(Share::from_bytes(&zero).is_err());
        for bad in ["", "abc", &"A".repeat(64), &"g".repeat(64), &"0".repeat(63)] {
            assert!(
                matches!(parse_commitment(bad), Err(ThresholdError::Commitment(_))),
                "{bad}"
            );
        }
        let dek = key(1);
        for (k, n) in [(0, 3), (4, 3), (2, 256)] {
            assert!(
                matches!(split(&dek, k, n), Err(ThresholdError::Params { .. })),
                "{k} {n}"
            );
        }
        let s = split(&dek, 2, 3).unwrap();
        let dup = vec![s[0].clone(), s[0].clone()];
        assert!(matches!(combine(&dup, 2), Err(ThresholdError::Combine(_))));
        // Debug never shows the share's values.
        let shown = format!("{:?}", s[0]);
        assert!(
            !shown.contains(&hex::encode(&s[0].as_bytes()[1..])),
            "{shown}"
        );
    }
}
