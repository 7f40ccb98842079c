//! A layer's or op's params as PyTorch names them, taken one by one with their defaults, so
//! that what is left over is an error naming its JSON path.

use serde_json::{Map, Value};

use super::error::{SpecError, err};

/// A pooling window: kernel, stride, padding, dilation (max only), `count_include_pad` (average
/// only). `ceil_mode` is false.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSpec {
    /// `kernel_size` `[h, w]`.
    pub kernel: [usize; 2],
    /// `stride` (default: the kernel).
    pub stride: [usize; 2],
    /// `padding`.
    pub padding: [usize; 2],
    /// `dilation`.
    pub dilation: [usize; 2],
    /// `count_include_pad`.
    pub count_include_pad: bool,
}

/// A layer's or op's params, taken one by one so that the leftovers are errors.
pub(crate) struct Params {
    map: Map<String, Value>,
    /// JSON path of the params object.
    pub(crate) path: String,
}

impl Params {
    pub(crate) fn new(map: Map<String, Value>, path: String) -> Self {
        Self { map, path }
    }

    fn at(&self, k: &str) -> String {
        format!("{}.{k}", self.path)
    }

    /// Removes a value.
    pub(crate) fn take_value(&mut self, k: &str) -> Option<Value> {
        self.map.remove(k)
    }

    /// Removes a string value.
    pub(crate) fn take(&mut self, k: &str) -> Option<String> {
        self.map
            .remove(k)
            .and_then(|v| v.as_str().map(str::to_string))
    }

    /// An unused param is an error.
    pub(crate) fn finish(self) -> Result<(), SpecError> {
        match self.map.keys().next() {
            Some(k) => Err(err(self.at(k), "unknown or unsupported parameter")),
            None => Ok(()),
        }
    }

    pub(crate) fn opt_i64(&mut self, k: &str) -> Result<Option<i64>, SpecError> {
        match self.map.remove(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| err(self.at(k), "expected an integer")),
        }
    }

    pub(crate) fn i64(&mut self, k: &str, default: i64) -> Result<i64, SpecError> {
        Ok(self.opt_i64(k)?.unwrap_or(default))
    }

    pub(crate) fn req_i64(&mut self, k: &str) -> Result<i64, SpecError> {
        self.opt_i64(k)?.ok_or_else(|| err(self.at(k), "required"))
    }

    pub(crate) fn usize(&mut self, k: &str, default: usize) -> Result<usize, SpecError> {
        match self.map.remove(k) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v
                .as_u64()
                .map(|n| n as usize)
                .ok_or_else(|| err(self.at(k), "expected a non-negative integer")),
        }
    }

    pub(crate) fn req_usize(&mut self, k: &str) -> Result<usize, SpecError> {
        if !self.map.contains_key(k) {
            return Err(err(self.at(k), "required"));
        }
        let n = self.usize(k, 0)?;
        if n == 0 {
            return Err(err(self.at(k), "must be at least 1"));
        }
        Ok(n)
    }

    pub(crate) fn f64(&mut self, k: &str, default: f64) -> Result<f64, SpecError> {
        match self.map.remove(k) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v
                .as_f64()
                .ok_or_else(|| err(self.at(k), "expected a number")),
        }
    }

    pub(crate) fn bool(&mut self, k: &str, default: bool) -> Result<bool, SpecError> {
        match self.map.remove(k) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| err(self.at(k), "expected true or false")),
        }
    }

    /// An int or a pair (`[h, w]`); `dims` 1 gives `[1, n]` (height 1).
    pub(crate) fn pair(
        &mut self,
        k: &str,
        dims: usize,
        default: [usize; 2],
    ) -> Result<[usize; 2], SpecError> {
        let v = match self.map.remove(k) {
            None | Some(Value::Null) => return Ok(default),
            Some(v) => v,
        };
        let n = |v: &Value| v.as_u64().map(|n| n as usize);
        let p = match (&v, dims) {
            (Value::Number(_), 1) => n(&v).map(|a| [default[0], a]),
            (Value::Number(_), _) => n(&v).map(|a| [a, a]),
            (Value::Array(a), 1) if a.len() == 1 => n(&a[0]).map(|x| [default[0], x]),
            (Value::Array(a), 2) if a.len() == 2 => n(&a[0]).zip(n(&a[1])).map(|(x, y)| [x, y]),
            _ => None,
        };
        p.ok_or_else(|| {
            err(
                self.at(k),
                format!(
                    "expected a non-negative integer{}",
                    if dims == 2 { " or [h, w]" } else { "" }
                ),
            )
        })
    }

    pub(crate) fn req_pair(&mut self, k: &str, dims: usize) -> Result<[usize; 2], SpecError> {
        if !self.map.contains_key(k) {
            return Err(err(self.at(k), "required"));
        }
        let p = self.pair(k, dims, [1, 1])?;
        if p.contains(&0) {
            return Err(err(self.at(k), "must be at least 1"));
        }
        Ok(p)
    }

    /// A pooling layer's or function's kernel, stride (default: the kernel), padding,
    /// dilation and ceil_mode.
    pub(crate) fn pool(&mut self, max: bool) -> Result<PoolSpec, SpecError> {
        let kernel = self.req_pair("kernel_size", 2)?;
        let stride = self.pair("stride", 2, kernel)?;
        let padding = self.pair("padding", 2, [0, 0])?;
        let dilation = if max {
            self.pair("dilation", 2, [1, 1])?
        } else {
            [1, 1]
        };
        let ceil = self.bool("ceil_mode", false)?;
        let count_include_pad = if max {
            true
        } else {
            self.bool("count_include_pad", true)?
        };
        if ceil {
            return Err(err(
                self.at("ceil_mode"),
                "only ceil_mode false is supported",
            ));
        }
        if stride.contains(&0) {
            return Err(err(self.at("stride"), "must be at least 1"));
        }
        if dilation.contains(&0) {
            return Err(err(self.at("dilation"), "must be at least 1"));
        }
        Ok(PoolSpec {
            kernel,
            stride,
            padding,
            dilation,
            count_include_pad,
        })
    }
}
