//! Reading an ONNX model's tensors and attributes: initializer and `Constant` data of the
//! numeric types, attributes with ONNX's defaults, padding and reshape targets as ccr's graph
//! takes them.

use super::proto::{AttributeProto, TensorProto};

/// An ONNX base model that ccr cannot take, naming the node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("base model (ONNX): {at}: {reason}")]
pub struct ImportError {
    /// `node 3 (/fc1/Gemm, Gemm)`, or the part of the model.
    pub at: String,
    /// What is wrong.
    pub reason: String,
}

pub(crate) fn err(at: impl Into<String>, reason: impl Into<String>) -> ImportError {
    ImportError {
        at: at.into(),
        reason: reason.into(),
    }
}

/// A constant: shape and values (as f64, ints exact up to 2⁵³).
#[derive(Debug, Clone)]
pub(crate) struct Const {
    pub(crate) dims: Vec<usize>,
    pub(crate) values: Vec<f64>,
}

pub(crate) fn decode_tensor(t: &TensorProto, at: &str) -> Result<Const, ImportError> {
    if t.data_location == 1 {
        return Err(err(
            at,
            format!("tensor `{}` is stored outside the model file", t.name),
        ));
    }
    let dims: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| {
            usize::try_from(d)
                .map_err(|_| err(at, format!("tensor `{}` has dimension {d}", t.name)))
        })
        .collect::<Result<_, _>>()?;
    let n = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|&n| n > 0)
        .ok_or_else(|| {
            err(
                at,
                format!(
                    "tensor `{}` of shape {dims:?} is empty or too large",
                    t.name
                ),
            )
        })?;
    let raw = &t.raw_data;
    let values: Vec<f64> = match t.data_type {
        1 if !raw.is_empty() => raw
            .chunks_exact(4)
            .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        1 => t.float_data.iter().map(|&v| f64::from(v)).collect(),
        7 if !raw.is_empty() => raw
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f64)
            .collect(),
        7 => t.int64_data.iter().map(|&v| v as f64).collect(),
        6 if !raw.is_empty() => raw
            .chunks_exact(4)
            .map(|c| f64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        6 => t.int32_data.iter().map(|&v| f64::from(v)).collect(),
        11 if !raw.is_empty() => raw
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect(),
        11 => t.double_data.clone(),
        other => {
            return Err(err(
                at,
                format!(
                    "tensor `{}` has data type {other} (float, double, int32 or int64 are read)",
                    t.name
                ),
            ));
        }
    };
    if values.len() != n {
        return Err(err(
            at,
            format!(
                "tensor `{}` has {} values for shape {dims:?}",
                t.name,
                values.len()
            ),
        ));
    }
    Ok(Const { dims, values })
}

pub(crate) struct Attrs<'a>(pub(crate) &'a [AttributeProto]);

impl Attrs<'_> {
    pub(crate) fn get(&self, k: &str) -> Option<&AttributeProto> {
        self.0.iter().find(|a| a.name == k)
    }
    pub(crate) fn int(&self, k: &str, default: i64) -> i64 {
        self.get(k).map_or(default, |a| a.i)
    }
    pub(crate) fn float(&self, k: &str, default: f32) -> f32 {
        self.get(k).map_or(default, |a| a.f)
    }
    pub(crate) fn ints(&self, k: &str) -> Option<Vec<i64>> {
        self.get(k).map(|a| a.ints.clone())
    }
    pub(crate) fn string(&self, k: &str) -> Option<String> {
        self.get(k)
            .map(|a| String::from_utf8_lossy(&a.s).into_owned())
    }
}

pub(crate) fn check_auto_pad(a: &Attrs<'_>, at: &str) -> Result<(), ImportError> {
    match a.string("auto_pad").as_deref() {
        None | Some("NOTSET") | Some("") => Ok(()),
        Some(v) => Err(err(
            at,
            format!("auto_pad {v} is not read (give explicit pads)"),
        )),
    }
}

pub(crate) fn pair(v: Vec<i64>, at: &str, what: &str) -> Result<[usize; 2], ImportError> {
    match v[..] {
        [a, b] if a > 0 && b > 0 => Ok([a as usize, b as usize]),
        _ => Err(err(
            at,
            format!("`{what}` must be two positive values (2-d pooling)"),
        )),
    }
}

/// ONNX `pads` `[begin..., end...]`, symmetric; `[h, w]` (1-d: `[0, w]`).
pub(crate) fn pads(v: Option<Vec<i64>>, dims: usize, at: &str) -> Result<[usize; 2], ImportError> {
    let Some(v) = v else { return Ok([0, 0]) };
    if v.len() != 2 * dims || v.iter().any(|&p| p < 0) || v[..dims] != v[dims..] {
        return Err(err(
            at,
            format!("pads {v:?}: only symmetric padding is read"),
        ));
    }
    Ok(if dims == 1 {
        [0, v[0] as usize]
    } else {
        [v[0] as usize, v[1] as usize]
    })
}

/// ONNX Reshape's target (0 copies the input's dimension, one -1 is inferred) as ccr's
/// `[-1, d1, ...]`: the batch must stay first.
pub(crate) fn reshape_target(
    shape: &[f64],
    input: &[usize],
    static_batch: bool,
    at: &str,
) -> Result<Vec<i64>, ImportError> {
    let s: Vec<i64> = shape.iter().map(|&v| v as i64).collect();
    if s.first()
        .is_some_and(|&d| d != -1 && d != 0 && !(static_batch && d == 1))
    {
        return Err(err(
            at,
            format!("Reshape to {s:?} fixes the batch size (export with -1 or 0 first)"),
        ));
    }
    let mut out = vec![-1i64];
    let total: usize = input[1..].iter().product();
    let mut known = 1usize;
    let mut infer = None;
    for (i, &d) in s.iter().enumerate().skip(1) {
        let v = match d {
            0 => *input
                .get(i)
                .ok_or_else(|| err(at, "Reshape copies a dimension the input lacks"))?
                as i64,
            -1 => {
                if infer.is_some() {
                    return Err(err(at, "Reshape with two inferred dimensions"));
                }
                infer = Some(out.len());
                -1
            }
            d if d > 0 => d,
            d => return Err(err(at, format!("Reshape dimension {d}"))),
        };
        if v > 0 {
            known *= v as usize;
        }
        out.push(v);
    }
    if let Some(k) = infer {
        if known == 0 || !total.is_multiple_of(known) {
            return Err(err(at, format!("cannot reshape {input:?} to {s:?}")));
        }
        out[k] = (total / known) as i64;
    }
    Ok(out)
}

pub(crate) fn transpose(v: &[f64], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0f32; v.len()];
    for i in 0..rows {
        for j in 0..cols {
            t[j * rows + i] = v[i * cols + j] as f32;
        }
    }
    t
}

/// f64 values as f32.
pub(crate) fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}
