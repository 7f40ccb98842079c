//! Growing one tree on gradient histograms, as XGBoost's `hist` updater does with
//! `grow_policy=depthwise` (Chen and Guestrin, "XGBoost: A Scalable Tree Boosting System",
//! KDD 2016, §2.2 and §3.1–3.4; the histogram variant of its `hist` method):
//!
//! - a node's histogram holds `(Σg, Σh)` of its rows per feature and bin, the missing values in
//!   their own bin; it is built for the child with fewer rows and the sibling's is the parent's
//!   minus it (the subtraction trick);
//! - every split "bins `0..=b` left" of every feature is scored with missing values sent left
//!   and sent right: loss change `G_L²/(H_L+λ) + G_R²/(H_R+λ) − G²/(H+λ)`, both children's
//!   hessian sums at least `min_child_weight`, kept when above 10⁻⁶ (XGBoost's `kRtEps`);
//! - a leaf's value is `−η·G/(H+λ)` (0 when `H < min_child_weight`);
//! - nodes grow level by level up to `max_depth`.
//!
//! The training rows are kept in `positions`, each node a contiguous range of it (a stable
//! partition per split, so rows stay in ascending order and the histogram pass reads the bin
//! matrix forwards). The leaves' ranges update the training margins without walking the tree.

use rayon::prelude::*;

use super::bins::{BinMatrix, MISSING, SLOTS};
use super::tree::{NodeSplit, Tree};

/// One feature's histogram: `[Σg, Σh]` per bin (slot [`MISSING`]: the missing values).
type FeatureHist = [[f64; 2]; SLOTS];

/// Nodes with fewer rows than this build their histogram on one thread (the level's nodes are
/// spread over the threads instead).
const PAR_ROWS: usize = 1 << 15;
/// XGBoost's `kRtEps`: a split must reduce the loss by more than this.
const RT_EPS: f64 = 1e-6;

/// The tree parameters (XGBoost's names in the pipeline's `model_config`).
#[derive(Debug, Clone, Copy)]
pub struct GrowParams {
    /// `max_depth`: levels of splits.
    pub max_depth: usize,
    /// `learning_rate` (η), applied to the leaf values.
    pub eta: f64,
    /// `l2_regularization` (λ).
    pub lambda: f64,
    /// `min_child_weight`: least hessian sum of a child.
    pub min_child_weight: f64,
}

impl GrowParams {
    fn gain(&self, s: [f64; 2]) -> f64 {
        s[0] * s[0] / (s[1] + self.lambda)
    }

    fn weight(&self, s: [f64; 2]) -> f64 {
        if s[1] < self.min_child_weight {
            0.0
        } else {
            -s[0] / (s[1] + self.lambda)
        }
    }
}

/// A leaf's rows: `positions[start..end]` get `value` added to their margin.
#[derive(Debug, Clone, Copy)]
pub struct LeafRange {
    /// First position.
    pub start: usize,
    /// One past the last position.
    pub end: usize,
    /// The leaf value.
    pub value: f32,
}

/// The training rows as [`grow`] works on them: their bins and gradient pairs kept in node order
/// (each node's rows one contiguous range, so that a histogram pass reads memory forwards), and
/// `order`, the training row each position holds. A split moves its rows' bins and gradients
/// into the other buffer, left rows first (stable).
pub struct Workspace {
    /// Each feature's cut points (from [`BinMatrix`]).
    pub cuts: Vec<Vec<f32>>,
    /// Training row index at each position.
    pub order: Vec<u32>,
    d: usize,
    bins: Vec<u8>,
    g: Vec<[f32; 2]>,
    bins_next: Vec<u8>,
    g_next: Vec<[f32; 2]>,
    order_next: Vec<u32>,
}

impl Workspace {
    /// Takes the bin matrix (rows in training order).
    pub fn new(m: BinMatrix) -> Workspace {
        let n = m.bins.len() / m.d.max(1);
        Workspace {
            cuts: m.cuts,
            order: (0..n as u32).collect(),
            d: m.d,
            bins_next: vec![0; m.bins.len()],
            bins: m.bins,
            g: vec![[0.0; 2]; n],
            g_next: vec![[0.0; 2]; n],
            order_next: vec![0; n],
        }
    }

    /// Loads each position's gradient pair: `gpair(r)` for the training row `r` it holds.
    pub fn load_gradients(&mut self, gpair: impl Fn(usize) -> [f32; 2] + Sync) {
        self.g
            .par_chunks_mut(8192)
            .zip(self.order.par_chunks(8192))
            .for_each(|(g, o)| {
                for (g, &r) in g.iter_mut().zip(o) {
                    *g = gpair(r as usize);
                }
            });
    }
}

/// A node still to split: its tree index, positions `start..end`, gradient sums and
/// histogram.
struct Open {
    node: usize,
    start: usize,
    end: usize,
    sum: [f64; 2],
    hist: Vec<FeatureHist>,
}

/// The best split of a node.
#[derive(Clone, Copy)]
struct Candidate {
    feature: usize,
    bin: u8,
    default_left: bool,
    loss_change: f64,
    left: [f64; 2],
    right: [f64; 2],
}

/// Grows one tree on the workspace's rows and gradients (see [`Workspace`]); on return each
/// leaf's rows are one range of `ws.order`, given by the returned leaf ranges.
pub fn grow(ws: &mut Workspace, p: &GrowParams) -> (Tree, Vec<LeafRange>) {
    let d = ws.d;
    let mut tree = Tree::default();
    let sum =
        ws.g.par_iter()
            .map(|&[g, h]| [f64::from(g), f64::from(h)])
            .reduce(|| [0.0; 2], |a, b| [a[0] + b[0], a[1] + b[1]]);
    let root = tree.push(i32::MAX, p.weight(sum) as f32, sum[1] as f32);
    let mut level = vec![Open {
        node: root,
        start: 0,
        end: ws.order.len(),
        sum,
        hist: build_hist(&ws.bins, &ws.g, d),
    }];
    let mut leaves = Vec::new();
    for depth in 0..=p.max_depth {
        let splits: Vec<Option<Candidate>> = if depth == p.max_depth {
            vec![None; level.len()]
        } else {
            level
                .par_iter()
                .map(|o| best_split(&o.hist, &ws.cuts, o.sum, p))
                .collect()
        };
        let n_left = if splits.iter().any(Option::is_some) {
            partition_level(ws, &level, &splits)
        } else {
            vec![0; level.len()]
        };
        let mut next = Vec::new();
        let mut jobs: Vec<(usize, usize)> = Vec::new();
        for ((o, c), nl) in level.into_iter().zip(&splits).zip(n_left) {
            let Some(c) = c else {
                let v = (p.weight(o.sum) * p.eta) as f32;
                tree.set_leaf(o.node, v);
                leaves.push(LeafRange {
                    start: o.start,
                    end: o.end,
                    value: v,
                });
                continue;
            };
            let l = tree.push(o.node as i32, p.weight(c.left) as f32, c.left[1] as f32);
            let r = tree.push(o.node as i32, p.weight(c.right) as f32, c.right[1] as f32);
            let split = NodeSplit {
                feature: c.feature as u32,
                threshold: ws.cuts[c.feature][usize::from(c.bin)],
                default_left: c.default_left,
                loss_change: c.loss_change as f32,
            };
            tree.split(o.node, split, l, r);
            let mid = o.start + nl;
            let left = Open {
                node: l,
                start: o.start,
                end: mid,
                sum: c.left,
                hist: Vec::new(),
            };
            let right = Open {
                node: r,
                start: mid,
                end: o.end,
                sum: c.right,
                hist: o.hist,
            };
            // The smaller child's rows get a histogram pass; the larger child's is the
            // parent's minus it (held in the right child's `hist` until then).
            let small = if nl <= o.end - mid { 0 } else { 1 };
            jobs.push((next.len() + small, next.len() + 1 - small));
            next.push(left);
            next.push(right);
        }
        // Children at `max_depth` are leaves: they need no histogram.
        if depth + 1 == p.max_depth {
            jobs.clear();
        }
        let built: Vec<Vec<FeatureHist>> = jobs
            .par_iter()
            .map(|&(s, _)| {
                let (a, b) = (next[s].start, next[s].end);
                build_hist(&ws.bins[a * d..b * d], &ws.g[a..b], d)
            })
            .collect();
        for ((s, l), h) in jobs.into_iter().zip(built) {
            let mut parent = std::mem::take(&mut next[s | 1].hist);
            subtract(&mut parent, &h);
            next[l].hist = parent;
            next[s].hist = h;
        }
        level = next;
        if level.is_empty() {
            break;
        }
    }
    (tree, leaves)
}

/// `(Σg, Σh)` per feature and bin over rows given by their bins (`[n, d]`) and gradients.
fn build_hist(bins: &[u8], g: &[[f32; 2]], d: usize) -> Vec<FeatureHist> {
    let zero = || vec![[[0.0f64; 2]; SLOTS]; d];
    let add = |mut h: Vec<FeatureHist>, (bs, gs): (&[u8], &[[f32; 2]])| {
        for (row, &[g, hs]) in bs.chunks_exact(d).zip(gs) {
            let (g, hs) = (f64::from(g), f64::from(hs));
            for (fh, &b) in h.iter_mut().zip(row) {
                let s = &mut fh[usize::from(b)];
                s[0] += g;
                s[1] += hs;
            }
        }
        h
    };
    if g.len() < PAR_ROWS {
        return add(zero(), (bins, g));
    }
    let chunk = g.len().div_ceil(rayon::current_num_threads() * 4).max(4096);
    bins.par_chunks(chunk * d)
        .zip(g.par_chunks(chunk))
        .fold(zero, add)
        .reduce(zero, |mut a, b| {
            add_hist(&mut a, &b);
            a
        })
}

fn add_hist(a: &mut [FeatureHist], b: &[FeatureHist]) {
    for (x, y) in a.iter_mut().zip(b) {
        for (s, t) in x.iter_mut().zip(y) {
            s[0] += t[0];
            s[1] += t[1];
        }
    }
}

fn subtract(a: &mut [FeatureHist], b: &[FeatureHist]) {
    for (x, y) in a.iter_mut().zip(b) {
        for (s, t) in x.iter_mut().zip(y) {
            s[0] -= t[0];
            s[1] -= t[1];
        }
    }
}

/// The split with the largest loss change over all features, bins and both directions of
/// the missing values; `None` when none reduces the loss by more than [`RT_EPS`].
fn best_split(
    h: &[FeatureHist],
    cuts: &[Vec<f32>],
    total: [f64; 2],
    p: &GrowParams,
) -> Option<Candidate> {
    let parent = p.gain(total);
    let mut best: Option<Candidate> = None;
    let mut best_change = RT_EPS;
    for (j, fh) in h.iter().enumerate() {
        let bins = cuts[j].len() + 1;
        let miss = fh[usize::from(MISSING)];
        let has_missing = miss[1] > 0.0 || miss[0] != 0.0;
        let mut cum = [0.0f64; 2];
        for (b, s) in fh.iter().enumerate().take(bins - 1) {
            cum[0] += s[0];
            cum[1] += s[1];
            for default_left in [false, true] {
                if default_left && !has_missing {
                    continue;
                }
                let left = if default_left {
                    [cum[0] + miss[0], cum[1] + miss[1]]
                } else {
                    cum
                };
                let right = [total[0] - left[0], total[1] - left[1]];
                if left[1] < p.min_child_weight || right[1] < p.min_child_weight {
                    continue;
                }
                let change = p.gain(left) + p.gain(right) - parent;
                if change > best_change {
                    best_change = change;
                    best = Some(Candidate {
                        feature: j,
                        bin: b as u8,
                        default_left,
                        loss_change: change,
                        left,
                        right,
                    });
                }
            }
        }
    }
    best
}

/// `s` cut into the consecutive ranges `ranges` (ascending, disjoint), each scaled by `w`.
fn cut<'a, T>(mut s: &'a mut [T], ranges: &[(usize, usize)], w: usize) -> Vec<&'a mut [T]> {
    let mut out = Vec::with_capacity(ranges.len());
    let mut at = 0;
    for &(a, b) in ranges {
        let (_, tail) = s.split_at_mut((a - at) * w);
        let (mid, tail) = tail.split_at_mut((b - a) * w);
        out.push(mid);
        s = tail;
        at = b;
    }
    out
}

/// Partitions each split node's positions (stably: left rows first) and moves their bins and
/// gradients in the same order into the other buffers (a leaf's as they are), which then become
/// the current ones, so that positions, bins and gradients stay in step for the next tree too. Returns each node's
/// count of left rows (0 for a node that does not split).
fn partition_level(ws: &mut Workspace, level: &[Open], splits: &[Option<Candidate>]) -> Vec<usize> {
    let d = ws.d;
    let ranges: Vec<(usize, usize)> = level.iter().map(|o| (o.start, o.end)).collect();
    let (bins, g) = (&ws.bins, &ws.g);
    let order = cut(&mut ws.order, &ranges, 1);
    let scratch = cut(&mut ws.order_next, &ranges, 1);
    let bins_next = cut(&mut ws.bins_next, &ranges, d);
    let g_next = cut(&mut ws.g_next, &ranges, 1);
    let n_left = order
        .into_par_iter()
        .zip(scratch)
        .zip(bins_next)
        .zip(g_next)
        .zip(ranges.par_iter())
        .zip(splits)
        .map(|(((((order, scratch), bn), gn), &(a, b)), c)| {
            let src = (&bins[a * d..b * d], &g[a..b]);
            let Some(c) = c else {
                // A leaf: its rows stay where they are (in both buffers).
                bn.copy_from_slice(src.0);
                gn.copy_from_slice(src.1);
                return 0;
            };
            partition(c, d, src, order, scratch, (bn, gn))
        })
        .collect();
    std::mem::swap(&mut ws.bins, &mut ws.bins_next);
    std::mem::swap(&mut ws.g, &mut ws.g_next);
    n_left
}

/// Partitions one node: `order` in place (through `scratch`), and bins and gradients from `src`
/// into `dst`. Returns the number of left rows.
fn partition(
    c: &Candidate,
    d: usize,
    (bins, g): (&[u8], &[[f32; 2]]),
    order: &mut [u32],
    scratch: &mut [u32],
    (bn, gn): (&mut [u8], &mut [[f32; 2]]),
) -> usize {
    let goes_left = |i: usize| {
        let b = bins[i * d + c.feature];
        if b == MISSING {
            c.default_left
        } else {
            b <= c.bin
        }
    };
    let n_left = (0..order.len()).filter(|&i| goes_left(i)).count();
    let (mut l, mut r) = (0, n_left);
    for i in 0..order.len() {
        let k = if goes_left(i) { &mut l } else { &mut r };
        let k = std::mem::replace(k, *k + 1);
        scratch[k] = order[i];
        bn[k * d..(k + 1) * d].copy_from_slice(&bins[i * d..(i + 1) * d]);
        gn[k] = g[i];
    }
    order.copy_from_slice(scratch);
    n_left
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> GrowParams {
        GrowParams {
            max_depth: 3,
            eta: 1.0,
            lambda: 0.0,
            min_child_weight: 0.0,
        }
    }

    #[test]
    fn a_step_function_is_split_at_its_step_and_missing_goes_with_its_gradients() {
        // y = 1 for x >= 5, gradients of squared error at margin 0: g = −y, h = 1. Missing
        // rows have y = 1: they must go right.
        let mut x: Vec<f32> = (0..10).map(|i| i as f32).collect();
        x.push(f32::NAN);
        let y: Vec<f32> = (0..11).map(|i| if i >= 5 { 1.0 } else { 0.0 }).collect();
        let mut ws = Workspace::new(BinMatrix::build(&x, 1, &(0..11).collect::<Vec<_>>()));
        ws.load_gradients(|r| [-y[r], 1.0]);
        let p = GrowParams {
            max_depth: 1,
            ..params()
        };
        let (t, leaves) = grow(&mut ws, &p);
        let pos = &ws.order;
        assert_eq!(t.left.len(), 3);
        assert_eq!(t.value[0], 5.0);
        assert!(!t.default_left[0]);
        assert_eq!(t.predict(&[4.0]), 0.0);
        assert_eq!(t.predict(&[5.0]), 1.0);
        assert_eq!(t.predict(&[f32::NAN]), 1.0);
        assert_eq!(leaves.len(), 2);
        assert_eq!(&pos[leaves[0].start..leaves[0].end], &[0, 1, 2, 3, 4]);
    }

    #[test]
    fn leaf_ranges_agree_with_walking_the_tree() {
        // 3 features of pseudo-random values, some missing; gradients from a nonlinear target.
        let n = 5000;
        let mut s = 12345u64;
        let mut next = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 40) as f32 / (1u64 << 24) as f32
        };
        let x: Vec<f32> = (0..n * 3)
            .map(|i| if i % 17 == 0 { f32::NAN } else { next() })
            .collect();
        let gpair: Vec<[f32; 2]> = (0..n)
            .map(|r| {
                let v = x[r * 3].max(0.0) * 2.0 - x[r * 3 + 1].min(1.0);
                [v.sin(), 1.0]
            })
            .collect();
        let rows: Vec<usize> = (0..n).collect();
        let mut ws = Workspace::new(BinMatrix::build(&x, 3, &rows));
        // Two trees on the same workspace: the second starts from the first's row order.
        for _ in 0..2 {
            ws.load_gradients(|r| gpair[r]);
            let (t, leaves) = grow(&mut ws, &params());
            check(&t, &leaves, &ws.order, &x, n);
        }
    }

    fn check(t: &Tree, leaves: &[LeafRange], pos: &[u32], x: &[f32], n: usize) {
        assert_eq!(leaves.len(), t.leaves());
        assert!(t.leaves() > 4, "a depth-3 tree on this target splits");
        let mut covered = 0;
        for l in leaves {
            for &r in &pos[l.start..l.end] {
                let r = r as usize;
                assert_eq!(t.predict(&x[r * 3..r * 3 + 3]), l.value, "row {r}");
            }
            covered += l.end - l.start;
        }
        assert_eq!(covered, n);
    }
}
