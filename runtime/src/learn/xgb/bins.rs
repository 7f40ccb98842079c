//! Histogram bins, as XGBoost's `hist` tree method makes them: per feature, cut points at the
//! training rows' quantiles (every distinct value its own bin when there are few), and each
//! training row's bin index per feature (XGBoost's "gradient index"), one byte per value.
//!
//! A value `x` of feature `j` falls in bin `#{c ∈ cuts[j] : c ≤ x}`; a missing value (NaN) in
//! [`MISSING`]. A split "left of bin `b`" (bins `0..=b` go left) is therefore the threshold
//! `x < cuts[j][b]`, the test XGBoost's trees apply to raw values at prediction.

use rayon::prelude::*;

/// Histogram slots per feature: value bins `0..MISSING` and the missing bin.
pub const SLOTS: usize = 256;
/// The bin index of a missing value (NaN); value bins are `0..MISSING` (at most 255 of them,
/// so at most 254 cuts per feature; XGBoost's default `max_bin` is 256).
pub const MISSING: u8 = u8::MAX;
const MAX_CUTS: usize = MISSING as usize - 1;

/// Rows' bin indices, row-major `[n, d]` bytes.
pub struct BinMatrix {
    /// Each feature's cut points, ascending, at most 254.
    pub cuts: Vec<Vec<f32>>,
    /// `[n, d]` bin indices.
    pub bins: Vec<u8>,
    /// Features per row.
    pub d: usize,
}

impl BinMatrix {
    /// Bins the rows `rows` of the row-major `[_, d]` matrix `x` (NaN: missing), with cuts
    /// computed from those same rows.
    pub fn build(x: &[f32], d: usize, rows: &[usize]) -> BinMatrix {
        let cuts: Vec<Vec<f32>> = (0..d)
            .into_par_iter()
            .map(|j| {
                let mut v: Vec<f32> = rows
                    .iter()
                    .map(|&i| x[i * d + j])
                    .filter(|v| !v.is_nan())
                    .collect();
                v.sort_unstable_by(f32::total_cmp);
                cuts_of(&v)
            })
            .collect();
        let mut bins = vec![0u8; rows.len() * d];
        bins.par_chunks_mut(d.max(1) * 4096)
            .zip(rows.par_chunks(4096))
            .for_each(|(out, rs)| {
                for (o, &i) in out.chunks_exact_mut(d).zip(rs) {
                    for ((b, &v), c) in o.iter_mut().zip(&x[i * d..(i + 1) * d]).zip(&cuts) {
                        *b = bin_of(c, v);
                    }
                }
            });
        BinMatrix { cuts, bins, d }
    }

    /// Row `r`'s bins.
    pub fn row(&self, r: usize) -> &[u8] {
        &self.bins[r * self.d..(r + 1) * self.d]
    }
}

/// The bin of value `v` given a feature's cuts.
pub fn bin_of(cuts: &[f32], v: f32) -> u8 {
    if v.is_nan() {
        MISSING
    } else {
        cuts.partition_point(|&c| c <= v) as u8
    }
}

/// Cut points of one feature from its sorted non-missing values: each distinct value after the
/// smallest when there are at most 255 distinct values, else the values at 254 evenly spaced
/// ranks (deduplicated, so ties give fewer bins).
fn cuts_of(sorted: &[f32]) -> Vec<f32> {
    let mut distinct: Vec<f32> = Vec::new();
    for &v in sorted {
        if distinct.last() != Some(&v) {
            distinct.push(v);
            if distinct.len() > MAX_CUTS + 1 {
                break;
            }
        }
    }
    if distinct.len() <= MAX_CUTS + 1 {
        return distinct.into_iter().skip(1).collect();
    }
    let n = sorted.len();
    let mut cuts: Vec<f32> = Vec::with_capacity(MAX_CUTS);
    for k in 1..=MAX_CUTS {
        let v = sorted[k * n / (MAX_CUTS + 1)];
        if v > sorted[0] && cuts.last().is_none_or(|&c| v > c) {
            cuts.push(v);
        }
    }
    cuts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_distinct_values_get_a_bin_each_and_missing_its_own() {
        // Feature 0: values 3, 1, 2, NaN; feature 1: constant.
        let x = [3.0, 5.0, 1.0, 5.0, 2.0, 5.0, f32::NAN, 5.0];
        let m = BinMatrix::build(&x, 2, &[0, 1, 2, 3]);
        assert_eq!(m.cuts[0], vec![2.0, 3.0]);
        assert!(m.cuts[1].is_empty());
        assert_eq!(m.bins, vec![2, 0, 0, 0, 1, 0, MISSING, 0]);
        // The threshold of "bins 0..=b go left" is cuts[b]: x < 2 is bin 0, x < 3 bins 0..=1.
        assert_eq!(bin_of(&m.cuts[0], 1.999), 0);
        assert_eq!(bin_of(&m.cuts[0], 2.0), 1);
    }

    #[test]
    fn many_distinct_values_get_quantile_cuts() {
        let v: Vec<f32> = (0..10_000).map(|i| i as f32).collect();
        let c = cuts_of(&v);
        assert_eq!(c.len(), MAX_CUTS);
        assert!(c.windows(2).all(|w| w[0] < w[1]));
        // Evenly spaced ranks: about 10 000 / 255 rows per bin.
        assert_eq!(c[0], (10_000 / 255) as f32);
        let per_bin = v.iter().fold(vec![0usize; 256], |mut h, &x| {
            h[bin_of(&c, x) as usize] += 1;
            h
        });
        assert!(
            per_bin[..255].iter().all(|&k| (38..=41).contains(&k)),
            "{per_bin:?}"
        );
    }
}
