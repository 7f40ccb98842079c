//! The functions a graph applies (`F.*`, `torch.*` and the parameterless `nn.*` layers), each
//! with its output shape (checked before training: a shape that does not fit is an error naming
//! the step, never a panic) and its Burn implementation on a value of rank 1 to 4.
//!
//! Dimension arguments follow PyTorch (negative counts from the end). The batch is dimension 0
//! and stays there: an op that would move or merge it is refused.

use burn::tensor::module::{adaptive_avg_pool2d, avg_pool2d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, MaxPoolOptions};
use burn::tensor::{Distribution, Tensor, activation as act};

use super::error::{SpecError, err};
use super::params::Params;
pub use super::params::PoolSpec;

/// Applies an expression to the tensor of any rank, keeping the rank.
macro_rules! each {
    ($v:expr, $t:ident => $e:expr) => {
        match $v {
            Val::R1($t) => Val::R1($e),
            Val::R2($t) => Val::R2($e),
            Val::R3($t) => Val::R3($e),
            Val::R4($t) => Val::R4($e),
        }
    };
}
pub(crate) use each;

/// Evaluates an expression of the tensor of any rank.
macro_rules! with {
    ($v:expr, $t:ident => $e:expr) => {
        match $v {
            Val::R1($t) => $e,
            Val::R2($t) => $e,
            Val::R3($t) => $e,
            Val::R4($t) => $e,
        }
    };
}
#[allow(unused_imports)]
pub(crate) use with;

/// A function of one or more values.
#[derive(Debug, Clone, PartialEq)]
pub enum Func {
    /// `max(0, x)`.
    Relu,
    /// `F.leaky_relu(negative_slope=0.01)`.
    LeakyRelu(f64),
    /// `F.gelu(approximate="none"|"tanh")`: `true` for tanh.
    Gelu(bool),
    /// Logistic sigmoid.
    Sigmoid,
    /// Hyperbolic tangent.
    Tanh,
    /// `x · sigmoid(x)`.
    Silu,
    /// `F.elu(alpha=1)`.
    Elu(f64),
    /// `softmax(dim)`.
    Softmax(i64),
    /// `log_softmax(dim)`.
    LogSoftmax(i64),
    /// `exp`.
    Exp,
    /// `log`.
    Log,
    /// `log(1 + x)`.
    Log1p,
    /// Dropout with drop probability `p`, applied while training only.
    Dropout(f64),
    /// 2-d max pooling.
    MaxPool2d(PoolSpec),
    /// 2-d average pooling.
    AvgPool2d(PoolSpec),
    /// 2-d adaptive average pooling to `[h, w]`.
    AdaptiveAvgPool2d([usize; 2]),
    /// `flatten(start_dim, end_dim)`.
    Flatten(i64, i64),
    /// `reshape(shape)`, the first entry -1 (the batch).
    Reshape(Vec<i64>),
    /// `permute(dims)`, dimension 0 first.
    Permute(Vec<i64>),
    /// `transpose(dim0, dim1)`.
    Transpose(i64, i64),
    /// `unsqueeze(dim)`.
    Unsqueeze(i64),
    /// `squeeze(dim)`.
    Squeeze(i64),
    /// `cat(tensors, dim)`.
    Cat(i64),
    /// `stack(tensors, dim)`.
    Stack(i64),
    /// `sum(dim, keepdim)`.
    Sum(i64, bool),
    /// `mean(dim, keepdim)`.
    Mean(i64, bool),
    /// `matmul(a, b)` (`mm`, `bmm`).
    Matmul,
    /// The input unchanged (`nn.Identity`).
    Identity,
}

/// The functions ccr supports, as a config writes them (for README and errors).
pub const SUPPORTED_FUNCTIONS: &str = "F.relu, F.leaky_relu, F.gelu, F.sigmoid, F.tanh, F.silu, F.elu, \
F.softmax, F.log_softmax, F.dropout, F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d, \
torch.relu, torch.sigmoid, torch.tanh, torch.exp, torch.log, torch.log1p, torch.softmax, \
torch.log_softmax, torch.flatten, torch.reshape, torch.permute, torch.transpose, torch.unsqueeze, \
torch.squeeze, torch.cat, torch.concat, torch.stack, torch.sum, torch.mean, torch.matmul, \
torch.mm, torch.bmm";

/// The parameterless `nn.*` classes ccr supports.
pub const SUPPORTED_STATELESS_LAYERS: &str = "nn.ReLU, nn.LeakyReLU, nn.GELU, nn.Sigmoid, \
nn.Tanh, nn.SiLU, nn.ELU, nn.Softmax, nn.LogSoftmax, nn.Dropout, nn.MaxPool2d, nn.AvgPool2d, \
nn.AdaptiveAvgPool2d, nn.Flatten, nn.Identity";

/// A dim index `d` (negative counts from the end) of a rank-`rank` shape.
fn dim(d: i64, rank: usize) -> Result<usize, String> {
    let i = if d < 0 { d + rank as i64 } else { d };
    if i < 0 || i >= rank as i64 {
        return Err(format!("dim {d} is out of range for rank {rank}"));
    }
    Ok(i as usize)
}

/// `i`, unless it is the batch dim, which `what` may not work over.
fn not_batch(i: usize, what: &str) -> Result<usize, String> {
    if i == 0 {
        Err(format!("{what} over dim 0 (the batch) is not supported"))
    } else {
        Ok(i)
    }
}

impl Func {
    /// A parameterless `nn.*` class (without its `nn.` prefix).
    pub(crate) fn from_class(class: &str, p: &mut Params) -> Result<Self, SpecError> {
        let _ = p.bool("inplace", false)?;
        Ok(match class {
            "ReLU" => Self::Relu,
            "LeakyReLU" => Self::LeakyRelu(p.f64("negative_slope", 0.01)?),
            "GELU" => Self::Gelu(gelu_tanh(p)?),
            "Sigmoid" => Self::Sigmoid,
            "Tanh" => Self::Tanh,
            "SiLU" => Self::Silu,
            "ELU" => Self::Elu(p.f64("alpha", 1.0)?),
            "Softmax" => Self::Softmax(p.req_i64("dim")?),
            "LogSoftmax" => Self::LogSoftmax(p.req_i64("dim")?),
            "Dropout" => Self::Dropout(prob(p)?),
            "MaxPool2d" => Self::MaxPool2d(p.pool(true)?),
            "AvgPool2d" => Self::AvgPool2d(p.pool(false)?),
            "AdaptiveAvgPool2d" => Self::AdaptiveAvgPool2d(adaptive(p)?),
            "Flatten" => Self::Flatten(p.i64("start_dim", 1)?, p.i64("end_dim", -1)?),
            "Identity" => Self::Identity,
            other => {
                return Err(err(
                    "",
                    format!(
                        "`nn.{other}` is not a layer ccr builds (supported: nn.Linear, nn.Conv1d, \
                         nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm1d, nn.BatchNorm2d, \
                         nn.GroupNorm, nn.LayerNorm, nn.Embedding, {SUPPORTED_STATELESS_LAYERS})"
                    ),
                ));
            }
        })
    }

    /// A function by its dotted name with its kwargs.
    pub(crate) fn from_function(name: &str, p: &mut Params) -> Result<Self, SpecError> {
        let f = if let Some(f) = name
            .strip_prefix("F.")
            .or_else(|| name.strip_prefix("torch.nn.functional."))
        {
            match f {
                "relu" => Self::Relu,
                "leaky_relu" => Self::LeakyRelu(p.f64("negative_slope", 0.01)?),
                "gelu" => Self::Gelu(gelu_tanh(p)?),
                "sigmoid" => Self::Sigmoid,
                "tanh" => Self::Tanh,
                "silu" => Self::Silu,
                "elu" => Self::Elu(p.f64("alpha", 1.0)?),
                "softmax" => Self::Softmax(p.req_i64("dim")?),
                "log_softmax" => Self::LogSoftmax(p.req_i64("dim")?),
                "dropout" => {
                    let _ = p.bool("training", true)?;
                    Self::Dropout(prob(p)?)
                }
                "max_pool2d" => Self::MaxPool2d(p.pool(true)?),
                "avg_pool2d" => Self::AvgPool2d(p.pool(false)?),
                "adaptive_avg_pool2d" => Self::AdaptiveAvgPool2d(adaptive(p)?),
                _ => return Err(unsupported(name)),
            }
        } else if let Some(f) = name.strip_prefix("torch.") {
            match f {
                "relu" => Self::Relu,
                "sigmoid" => Self::Sigmoid,
                "tanh" => Self::Tanh,
                "exp" => Self::Exp,
                "log" => Self::Log,
                "log1p" => Self::Log1p,
                "softmax" => Self::Softmax(p.req_i64("dim")?),
                "log_softmax" => Self::LogSoftmax(p.req_i64("dim")?),
                "flatten" => Self::Flatten(p.i64("start_dim", 0)?, p.i64("end_dim", -1)?),
                "reshape" => Self::Reshape(int_list(p, "shape")?),
                "permute" => Self::Permute(int_list(p, "dims")?),
                "transpose" => Self::Transpose(p.req_i64("dim0")?, p.req_i64("dim1")?),
                "unsqueeze" => Self::Unsqueeze(p.req_i64("dim")?),
                "squeeze" => Self::Squeeze(p.req_i64("dim")?),
                "cat" | "concat" => Self::Cat(p.i64("dim", 0)?),
                "stack" => Self::Stack(p.i64("dim", 0)?),
                "sum" => Self::Sum(p.req_i64("dim")?, p.bool("keepdim", false)?),
                "mean" => Self::Mean(p.req_i64("dim")?, p.bool("keepdim", false)?),
                "matmul" | "mm" | "bmm" => Self::Matmul,
                _ => return Err(unsupported(name)),
            }
        } else {
            return Err(err(
                "",
                format!(
                    "`{name}` is neither a layer of this model nor a function (F.* or torch.*)"
                ),
            ));
        };
        Ok(f)
    }

    /// The number of inputs the function takes (`None`: any number, at least one).
    fn arity(&self) -> Option<usize> {
        match self {
            Self::Cat(_) | Self::Stack(_) => None,
            Self::Matmul => Some(2),
            _ => Some(1),
        }
    }

    /// The output shape (batch first) of the function on inputs of these shapes.
    ///
    /// # Errors
    /// Why the shapes do not fit (the caller names the step).
    pub fn out_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        match self.arity() {
            Some(n) if ins.len() != n => {
                return Err(format!("takes {n} input(s), the step gives {}", ins.len()));
            }
            None if ins.is_empty() => return Err("takes at least one input".into()),
            _ => {}
        }
        let s = &ins[0];
        let r = s.len();
        Ok(match self {
            Self::Relu
            | Self::LeakyRelu(_)
            | Self::Gelu(_)
            | Self::Sigmoid
            | Self::Tanh
            | Self::Silu
            | Self::Elu(_)
            | Self::Exp
            | Self::Log
            | Self::Log1p
            | Self::Dropout(_)
            | Self::Identity => s.clone(),
            Self::Softmax(d) | Self::LogSoftmax(d) => {
                not_batch(dim(*d, r)?, "softmax")?;
                s.clone()
            }
            Self::MaxPool2d(p) | Self::AvgPool2d(p) => {
                if r != 4 {
                    return Err(format!("2-d pooling takes [N, C, H, W], got {s:?}"));
                }
                let o = |i: usize| {
                    let k = p.dilation[i] * (p.kernel[i] - 1) + 1;
                    let padded = s[2 + i] + 2 * p.padding[i];
                    (padded >= k).then(|| (padded - k) / p.stride[i] + 1)
                };
                match (o(0), o(1)) {
                    (Some(h), Some(w)) => vec![s[0], s[1], h, w],
                    _ => return Err(format!("the {:?} window is larger than {s:?}", p.kernel)),
                }
            }
            Self::AdaptiveAvgPool2d([h, w]) => {
                if r != 4 {
                    return Err(format!("2-d pooling takes [N, C, H, W], got {s:?}"));
                }
                vec![s[0], s[1], *h, *w]
            }
            Self::Flatten(..)
            | Self::Reshape(_)
            | Self::Permute(_)
            | Self::Transpose(..)
            | Self::Unsqueeze(_)
            | Self::Squeeze(_) => self.layout_shape(s)?,
            Self::Cat(_) | Self::Stack(_) | Self::Sum(..) | Self::Mean(..) | Self::Matmul => {
                self.combine_shape(ins)?
            }
        })
    }

    /// [`Func::out_shape`] of the ops that rearrange one input: flatten, reshape, permute,
    /// transpose, (un)squeeze.
    fn layout_shape(&self, s: &[usize]) -> Result<Vec<usize>, String> {
        let r = s.len();
        Ok(match self {
            Self::Flatten(a, b) => {
                let (a, b) = (dim(*a, r)?, dim(*b, r)?);
                not_batch(a, "flatten")?;
                if b < a {
                    return Err(format!("end_dim {b} is before start_dim {a}"));
                }
                let mut o = s[..a].to_vec();
                o.push(s[a..=b].iter().product());
                o.extend_from_slice(&s[b + 1..]);
                o
            }
            Self::Reshape(shape) => {
                if shape.first() != Some(&-1) || shape.iter().skip(1).any(|&d| d < 1) {
                    return Err(
                        "the shape must be [-1, d1, ...] (the batch first, the others positive)"
                            .into(),
                    );
                }
                let rest: usize = shape[1..].iter().map(|&d| d as usize).product();
                let total: usize = s[1..].iter().product();
                if rest != total || shape.len() > 4 {
                    return Err(format!("cannot reshape {s:?} to {shape:?}"));
                }
                let mut o = vec![s[0]];
                o.extend(shape[1..].iter().map(|&d| d as usize));
                o
            }
            Self::Permute(dims) => {
                if dims.len() != r {
                    return Err(format!("{} dims for a rank-{r} input", dims.len()));
                }
                let idx: Vec<usize> = dims.iter().map(|&d| dim(d, r)).collect::<Result<_, _>>()?;
                let mut seen = idx.clone();
                seen.sort_unstable();
                if seen != (0..r).collect::<Vec<_>>() || idx[0] != 0 {
                    return Err("dims must be a permutation that keeps dim 0 first".into());
                }
                idx.iter().map(|&i| s[i]).collect()
            }
            Self::Transpose(a, b) => {
                let (a, b) = (dim(*a, r)?, dim(*b, r)?);
                not_batch(a.min(b), "transpose")?;
                let mut o = s.to_vec();
                o.swap(a, b);
                o
            }
            Self::Unsqueeze(d) => {
                let i = not_batch(dim(*d, r + 1)?, "unsqueeze")?;
                if r + 1 > 4 {
                    return Err("ranks above 4 are not supported".into());
                }
                let mut o = s.to_vec();
                o.insert(i, 1);
                o
            }
            Self::Squeeze(d) => {
                let i = not_batch(dim(*d, r)?, "squeeze")?;
                if s[i] != 1 || r == 1 {
                    return Err(format!("dim {i} of {s:?} is not of size 1"));
                }
                let mut o = s.to_vec();
                o.remove(i);
                o
            }
            _ => unreachable!("dispatched by out_shape"),
        })
    }

    /// [`Func::out_shape`] of the ops that combine or reduce: cat, stack, sum, mean, matmul.
    fn combine_shape(&self, ins: &[Vec<usize>]) -> Result<Vec<usize>, String> {
        let s = &ins[0];
        let r = s.len();
        Ok(match self {
            Self::Cat(d) => {
                let i = not_batch(dim(*d, r)?, "cat")?;
                let mut o = s.clone();
                for t in &ins[1..] {
                    if t.len() != r || (0..r).any(|k| k != i && t[k] != s[k]) {
                        return Err(format!("cannot concatenate {s:?} and {t:?} on dim {i}"));
                    }
                    o[i] += t[i];
                }
                o
            }
            Self::Stack(d) => {
                let i = not_batch(dim(*d, r + 1)?, "stack")?;
                if ins.iter().any(|t| t != s) || r + 1 > 4 {
                    return Err("stack takes inputs of one shape, rank at most 3".into());
                }
                let mut o = s.clone();
                o.insert(i, ins.len());
                o
            }
            Self::Sum(d, keep) | Self::Mean(d, keep) => {
                let i = not_batch(dim(*d, r)?, "a reduction")?;
                let mut o = s.clone();
                if *keep {
                    o[i] = 1;
                } else {
                    o.remove(i);
                }
                o
            }
            Self::Matmul => {
                let t = &ins[1];
                if r < 2 || t.len() != r || s[r - 1] != t[r - 2] || s[..r - 2] != t[..r - 2] {
                    return Err(format!("cannot multiply {s:?} by {t:?}"));
                }
                let mut o = s.clone();
                o[r - 1] = t[r - 1];
                o
            }
            _ => unreachable!("dispatched by out_shape"),
        })
    }

    /// Applies the function (`train`: dropout is active). The shapes were checked by
    /// [`Func::out_shape`].
    pub fn apply(&self, ins: Vec<Val>, train: bool) -> Val {
        let shapes: Vec<Vec<usize>> = ins.iter().map(Val::dims).collect();
        let mut it = ins.into_iter();
        let Some(x) = it.next() else {
            unreachable!("checked: at least one input")
        };
        let r = x.rank() as i64;
        let norm = |d: i64, rank: i64| (if d < 0 { d + rank } else { d }) as usize;
        match self {
            Self::Relu => each!(x, t => act::relu(t)),
            Self::LeakyRelu(a) => each!(x, t => act::leaky_relu(t, *a)),
            Self::Gelu(false) => each!(x, t => act::gelu(t)),
            Self::Gelu(true) => each!(x, t => act::gelu_approximate(t)),
            Self::Sigmoid => each!(x, t => act::sigmoid(t)),
            Self::Tanh => each!(x, t => act::tanh(t)),
            Self::Silu => each!(x, t => act::silu(t)),
            Self::Elu(a) => each!(x, t => act::elu(t, *a)),
            Self::Softmax(d) => each!(x, t => act::softmax(t, norm(*d, r))),
            Self::LogSoftmax(d) => each!(x, t => act::log_softmax(t, norm(*d, r))),
            Self::Exp => each!(x, t => t.exp()),
            Self::Log => each!(x, t => t.log()),
            Self::Log1p => each!(x, t => t.log1p()),
            Self::Dropout(p) => {
                if !train || *p == 0.0 {
                    return x;
                }
                let keep = 1.0 - p;
                each!(x, t => {
                    let mask = t.random_like(Distribution::Bernoulli(keep));
                    t * mask / keep
                })
            }
            Self::MaxPool2d(p) => Val::R4(max_pool2d(
                x.r4(),
                MaxPoolOptions {
                    kernel_size: p.kernel,
                    stride: p.stride,
                    padding: p.padding.map(|q| (q, q)),
                    dilation: p.dilation,
                    ceil_mode: false,
                },
            )),
            Self::AvgPool2d(p) => Val::R4(avg_pool2d(
                x.r4(),
                AvgPoolOptions {
                    kernel_size: p.kernel,
                    stride: p.stride,
                    padding: p.padding.map(|q| (q, q)),
                    count_include_pad: p.count_include_pad,
                    ceil_mode: false,
                },
            )),
            Self::AdaptiveAvgPool2d(o) => Val::R4(adaptive_avg_pool2d(x.r4(), *o)),
            Self::Flatten(..) | Self::Reshape(_) | Self::Unsqueeze(_) | Self::Squeeze(_) => {
                let out = self.out_shape(&shapes).expect("checked");
                x.reshape(&out)
            }
            Self::Permute(dims) => {
                let d: Vec<usize> = dims.iter().map(|&d| norm(d, r)).collect();
                match x {
                    Val::R1(t) => Val::R1(t),
                    Val::R2(t) => Val::R2(t.permute([d[0], d[1]])),
                    Val::R3(t) => Val::R3(t.permute([d[0], d[1], d[2]])),
                    Val::R4(t) => Val::R4(t.permute([d[0], d[1], d[2], d[3]])),
                }
            }
            Self::Transpose(a, b) => each!(x, t => t.swap_dims(norm(*a, r), norm(*b, r))),
            Self::Cat(d) => {
                let d = norm(*d, r);
                match x {
                    Val::R1(t) => Val::R1(t),
                    Val::R2(t) => Val::R2(Tensor::cat(
                        std::iter::once(t).chain(it.map(Val::r2)).collect(),
                        d,
                    )),
                    Val::R3(t) => Val::R3(Tensor::cat(
                        std::iter::once(t).chain(it.map(Val::r3)).collect(),
                        d,
                    )),
                    Val::R4(t) => Val::R4(Tensor::cat(
                        std::iter::once(t).chain(it.map(Val::r4)).collect(),
                        d,
                    )),
                }
            }
            Self::Stack(d) => {
                let d = norm(*d, r + 1);
                match x {
                    Val::R1(t) => Val::R2(Tensor::stack(
                        std::iter::once(t).chain(it.map(Val::r1)).collect(),
                        d,
                    )),
                    Val::R2(t) => Val::R3(Tensor::stack(
                        std::iter::once(t).chain(it.map(Val::r2)).collect(),
                        d,
                    )),
                    Val::R3(t) => Val::R4(Tensor::stack(
                        std::iter::once(t).chain(it.map(Val::r3)).collect(),
                        d,
                    )),
                    Val::R4(t) => Val::R4(t),
                }
            }
            Self::Sum(d, keep) | Self::Mean(d, keep) => {
                let i = norm(*d, r);
                let mean = matches!(self, Self::Mean(..));
                let kept = each!(x, t => if mean { t.mean_dim(i) } else { t.sum_dim(i) });
                if *keep {
                    kept
                } else {
                    kept.reshape(&self.out_shape(&shapes).expect("checked"))
                }
            }
            Self::Matmul => {
                let y = it.next().expect("checked: two inputs");
                match (x, y) {
                    (Val::R2(a), Val::R2(b)) => Val::R2(a.matmul(b)),
                    (Val::R3(a), Val::R3(b)) => Val::R3(a.matmul(b)),
                    (Val::R4(a), Val::R4(b)) => Val::R4(a.matmul(b)),
                    (a, _) => a,
                }
            }
            Self::Identity => x,
        }
    }
}

fn unsupported(name: &str) -> SpecError {
    err(
        "",
        format!("`{name}` is not a function ccr supports (supported: {SUPPORTED_FUNCTIONS})"),
    )
}

fn gelu_tanh(p: &mut Params) -> Result<bool, SpecError> {
    match p.take("approximate").as_deref() {
        None | Some("none") => Ok(false),
        Some("tanh") => Ok(true),
        Some(_) => Err(err(
            format!("{}.approximate", p.path),
            "expected \"none\" or \"tanh\"",
        )),
    }
}

fn prob(p: &mut Params) -> Result<f64, SpecError> {
    let v = p.f64("p", 0.5)?;
    if !(0.0..1.0).contains(&v) {
        return Err(err(format!("{}.p", p.path), "must be in [0, 1)"));
    }
    Ok(v)
}

fn adaptive(p: &mut Params) -> Result<[usize; 2], SpecError> {
    let o = p.req_pair("output_size", 2)?;
    Ok(o)
}

fn int_list(p: &mut Params, k: &str) -> Result<Vec<i64>, SpecError> {
    match p.take_value(k) {
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .map(|v| v.as_i64())
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| err(format!("{}.{k}", p.path), "expected a list of integers")),
        _ => Err(err(
            format!("{}.{k}", p.path),
            "required: a list of integers",
        )),
    }
}

/// Gradients by parameter, without autodiff.
pub type Grads = Vec<(burn::module::ParamId, Val)>;

/// A value of a graph: a float tensor of rank 1 to 4, the batch first.
#[derive(Debug, Clone)]
pub enum Val {
    /// Rank 1.
    R1(Tensor<1>),
    /// Rank 2.
    R2(Tensor<2>),
    /// Rank 3.
    R3(Tensor<3>),
    /// Rank 4.
    R4(Tensor<4>),
}

fn reshape_to<const D: usize>(t: Tensor<D>, s: &[usize]) -> Val {
    match s.len() {
        1 => Val::R1(t.reshape([s[0]])),
        2 => Val::R2(t.reshape([s[0], s[1]])),
        3 => Val::R3(t.reshape([s[0], s[1], s[2]])),
        _ => Val::R4(t.reshape([s[0], s[1], s[2], s[3]])),
    }
}

impl Val {
    /// The shape.
    pub fn dims(&self) -> Vec<usize> {
        with!(self, t => t.dims().to_vec())
    }

    /// The rank.
    pub fn rank(&self) -> usize {
        with!(self, t => t.dims().len())
    }

    /// The same elements in shape `s` (rank 1 to 4, same element count).
    pub fn reshape(self, s: &[usize]) -> Val {
        with!(self, t => reshape_to(t, s))
    }

    /// As rank 1 (reshaped if needed).
    pub fn r1(self) -> Tensor<1> {
        match self {
            Val::R1(t) => t,
            v => {
                let n = v.dims().iter().product();
                match v.reshape(&[n]) {
                    Val::R1(t) => t,
                    _ => unreachable!(),
                }
            }
        }
    }

    /// As rank 2 (checked shapes make this the value's own rank).
    pub fn r2(self) -> Tensor<2> {
        match self {
            Val::R2(t) => t,
            v => {
                let d = v.dims();
                let rest = d[1..].iter().product::<usize>().max(1);
                match v.reshape(&[d[0], rest]) {
                    Val::R2(t) => t,
                    _ => unreachable!(),
                }
            }
        }
    }

    /// As rank 3 (checked shapes make this the value's own rank).
    pub fn r3(self) -> Tensor<3> {
        match self {
            Val::R3(t) => t,
            v => {
                let d = v.dims();
                let (a, b) = (d[0], d.get(1).copied().unwrap_or(1));
                let rest = d[2.min(d.len())..].iter().product::<usize>().max(1);
                match v.reshape(&[a, b, rest]) {
                    Val::R3(t) => t,
                    _ => unreachable!(),
                }
            }
        }
    }

    /// As rank 4 (checked shapes make this the value's own rank).
    pub fn r4(self) -> Tensor<4> {
        match self {
            Val::R4(t) => t,
            v => {
                let mut d = v.dims();
                while d.len() < 4 {
                    d.push(1);
                }
                match v.reshape(&d[..4]) {
                    Val::R4(t) => t,
                    _ => unreachable!(),
                }
            }
        }
    }
}
