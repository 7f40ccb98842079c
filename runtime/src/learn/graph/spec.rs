//! DEPA-Training's `model_config` grammar (its `ModelFactory`, `model_constructor.py`), parsed
//! and checked: every layer class, parameter, op and name is resolved here, before any key is
//! released, and each error names its JSON path.
//!
//! ```json
//! {"submodules": {"Block": {"layers": {...}, "input": [...], "forward": [...], "output": [...]}},
//!  "layers":  {"conv1": {"class": "nn.Conv2d", "params": {"in_channels": 3, ...}},
//!              "b1":    {"submodule": "Block", "params": {"ch": 16}}},
//!  "input":   ["x"],
//!  "forward": [{"ops": ["conv1", "F.relu", ["torch.flatten", {"start_dim": 1}]],
//!               "input": ["x"], "output": "x1"}],
//!  "output":  ["x1"]}
//! ```
//!
//! DEPA's limits hold: at most [`MAX_FORWARD_STEPS`] steps, [`MAX_OPS_PER_STEP`] ops a step,
//! no kwarg named in [`DENYLIST_ARG_NAMES`]; a step reads only names defined before it (a name
//! defined by a later step is a cycle). `$name` placeholders in a submodule's layer params take
//! the values of the referring layer's `params`.

use serde_json::{Map, Value};

pub use super::error::SpecError;
pub(crate) use super::error::err;
use super::ops::Func;
pub(crate) use super::params::Params;

/// DEPA's `MAX_FORWARD_STEPS`.
pub const MAX_FORWARD_STEPS: usize = 200;
/// DEPA's `MAX_OPS_PER_STEP`.
pub const MAX_OPS_PER_STEP: usize = 10;
/// DEPA's `DENYLIST_ARG_NAMES` (compared case-insensitively).
pub const DENYLIST_ARG_NAMES: &[&str] = &[
    "out",
    "file",
    "filename",
    "path",
    "dir",
    "directory",
    "map_location",
];

/// A parsed graph: its layers, inputs, forward steps and outputs.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphSpec {
    /// The layers in config order (their names are PyTorch's `_layers.<name>`).
    pub layers: Vec<LayerEntry>,
    /// Input names, in argument order.
    pub inputs: Vec<String>,
    /// The forward steps, in order.
    pub steps: Vec<StepSpec>,
    /// Output names (one: the model's output).
    pub outputs: Vec<String>,
}

/// One named layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerEntry {
    /// The key in `layers`.
    pub name: String,
    /// What it is.
    pub def: LayerDef,
}

/// A layer: an `nn.*` class, or an instance of a submodule.
#[derive(Debug, Clone, PartialEq)]
pub enum LayerDef {
    /// An `nn.*` class with its parameters.
    Class(LayerClass),
    /// A submodule instance (its placeholders replaced).
    Sub(Box<GraphSpec>),
}

/// One forward step: ops applied in turn to the inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct StepSpec {
    /// The ops.
    pub ops: Vec<Op>,
    /// The names read.
    pub inputs: Vec<String>,
    /// The name written (`None`: the result is dropped).
    pub output: Option<String>,
}

/// An op of a step.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Calls the layer at this index of [`GraphSpec::layers`].
    Layer(usize),
    /// A function (`F.*`, `torch.*`).
    Func(Func),
}

/// The `nn.*` classes ccr builds, with PyTorch's parameters and defaults.
#[derive(Debug, Clone, PartialEq)]
pub enum LayerClass {
    /// `nn.Linear(in_features, out_features, bias=True)`: weight `[out, in]` in PyTorch.
    Linear {
        /// `in_features`.
        d_in: usize,
        /// `out_features`.
        d_out: usize,
        /// `bias`.
        bias: bool,
    },
    /// `nn.Conv1d` / `nn.Conv2d` (1-d as height 1): weight `[out, in/groups, kh, kw]`.
    Conv(ConvSpec),
    /// `nn.ConvTranspose2d`: weight `[in, out/groups, kh, kw]`.
    ConvTranspose2d(ConvSpec),
    /// `nn.BatchNorm1d` / `nn.BatchNorm2d(num_features, eps=1e-5, momentum=0.1)`.
    BatchNorm {
        /// `num_features`.
        features: usize,
        /// `eps`.
        eps: f64,
        /// `momentum`.
        momentum: f64,
    },
    /// `nn.GroupNorm(num_groups, num_channels, eps=1e-5, affine=True)`.
    GroupNorm {
        /// `num_groups`.
        groups: usize,
        /// `num_channels`.
        channels: usize,
        /// `eps`.
        eps: f64,
        /// `affine`.
        affine: bool,
    },
    /// `nn.LayerNorm(normalized_shape, eps=1e-5, elementwise_affine=True, bias=True)` over the
    /// last dimension.
    LayerNorm {
        /// `normalized_shape` (one size: the last dimension).
        d: usize,
        /// `eps`.
        eps: f64,
        /// `elementwise_affine`.
        affine: bool,
        /// `bias`.
        bias: bool,
    },
    /// `nn.Embedding(num_embeddings, embedding_dim)`: weight `[num, dim]`.
    Embedding {
        /// `num_embeddings`.
        num: usize,
        /// `embedding_dim`.
        dim: usize,
    },
    /// A layer without parameters (`nn.ReLU`, `nn.MaxPool2d`, `nn.Dropout`, `nn.Flatten`, ...),
    /// as the function it applies.
    Stateless(Func),
}

impl LayerClass {
    /// Whether the layer has trainable parameters.
    pub fn has_params(&self) -> bool {
        !matches!(
            self,
            Self::Stateless(_)
                | Self::GroupNorm { affine: false, .. }
                | Self::LayerNorm { affine: false, .. }
        )
    }
}

/// A convolution's parameters (1-d convolutions have height 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvSpec {
    /// 1 or 2.
    pub dims: usize,
    /// `in_channels`.
    pub c_in: usize,
    /// `out_channels`.
    pub c_out: usize,
    /// `kernel_size` `[h, w]`.
    pub kernel: [usize; 2],
    /// `stride`.
    pub stride: [usize; 2],
    /// `padding`.
    pub padding: [usize; 2],
    /// `dilation`.
    pub dilation: [usize; 2],
    /// `groups`.
    pub groups: usize,
    /// `bias`.
    pub bias: bool,
    /// `output_padding` (transposed only).
    pub output_padding: [usize; 2],
}

impl ConvSpec {
    /// What Burn's convolutions need (they panic otherwise): a kernel, stride and dilation of at
    /// least 1, and groups that divide both channel counts.
    ///
    /// # Errors
    /// The parameter (PyTorch's name) and why.
    pub fn check(&self) -> Result<(), (&'static str, &'static str)> {
        if self.kernel.contains(&0) {
            return Err(("kernel_size", "must be at least 1"));
        }
        if self.stride.contains(&0) {
            return Err(("stride", "must be at least 1"));
        }
        if self.dilation.contains(&0) {
            return Err(("dilation", "must be at least 1"));
        }
        if self.groups == 0
            || !self.c_in.is_multiple_of(self.groups)
            || !self.c_out.is_multiple_of(self.groups)
        {
            return Err(("groups", "must divide in_channels and out_channels"));
        }
        Ok(())
    }
}

impl GraphSpec {
    /// Parses and checks DEPA's `model_config` JSON.
    ///
    /// # Errors
    /// [`SpecError`] naming the JSON path: an unknown key, class, param, op or function; a
    /// param of the wrong type; a step reading an undefined name (or one a later step defines:
    /// a cycle); more than [`MAX_FORWARD_STEPS`] steps or [`MAX_OPS_PER_STEP`] ops; a
    /// denylisted kwarg; a missing placeholder value.
    pub fn parse(v: &Value) -> Result<Self, SpecError> {
        let obj = v
            .as_object()
            .ok_or_else(|| err("", "expected an object with layers, input, forward, output"))?;
        let empty = Map::new();
        let subs = match obj.get("submodules") {
            None => &empty,
            Some(s) => s
                .as_object()
                .ok_or_else(|| err("submodules", "expected an object"))?,
        };
        parse_graph(obj, subs, "", &Map::new(), 0)
    }

    /// The number of ops of every step, submodules included (for the DoS limits' message).
    pub fn layer(&self, name: &str) -> Option<usize> {
        self.layers.iter().position(|l| l.name == name)
    }
}

fn parse_graph(
    obj: &Map<String, Value>,
    subs: &Map<String, Value>,
    at: &str,
    placeholders: &Map<String, Value>,
    depth: usize,
) -> Result<GraphSpec, SpecError> {
    let p = |k: &str| format!("{at}{k}");
    if depth > 8 {
        return Err(err(
            at,
            "submodules nest deeper than 8 (a submodule that uses itself?)",
        ));
    }
    for k in obj.keys() {
        if !["layers", "input", "forward", "output", "submodules"].contains(&k.as_str()) {
            return Err(err(
                p(k),
                "unknown field (expected layers, submodules, input, forward, output)",
            ));
        }
    }
    let mut layers = Vec::new();
    if let Some(l) = obj.get("layers") {
        let l = l
            .as_object()
            .ok_or_else(|| err(p("layers"), "expected an object of named layers"))?;
        for (name, entry) in l {
            let lp = format!("{at}layers.{name}");
            let def = parse_layer(entry, subs, &lp, placeholders, depth)?;
            layers.push(LayerEntry {
                name: name.clone(),
                def,
            });
        }
    }
    let inputs = names(obj.get("input"), &p("input"))?;
    if inputs.is_empty() {
        return Err(err(p("input"), "at least one input name is required"));
    }
    let outputs = names(obj.get("output"), &p("output"))?;
    if outputs.len() != 1 {
        return Err(err(p("output"), "exactly one output name is required"));
    }
    let forward = obj
        .get("forward")
        .and_then(Value::as_array)
        .ok_or_else(|| err(p("forward"), "expected a list of steps"))?;
    if forward.len() > MAX_FORWARD_STEPS {
        return Err(err(
            p("forward"),
            format!(
                "{} steps: more than DEPA's limit of {MAX_FORWARD_STEPS}",
                forward.len()
            ),
        ));
    }
    let mut spec = GraphSpec {
        layers,
        inputs,
        steps: Vec::new(),
        outputs,
    };
    for (i, step) in forward.iter().enumerate() {
        let sp = format!("{at}forward[{i}]");
        spec.steps.push(parse_step(step, &spec, &sp)?);
    }
    check_names(&spec, at)?;
    Ok(spec)
}

fn names(v: Option<&Value>, path: &str) -> Result<Vec<String>, SpecError> {
    let Some(v) = v else {
        return Err(err(path, "required"));
    };
    let arr = v
        .as_array()
        .ok_or_else(|| err(path, "expected a list of names"))?;
    arr.iter()
        .enumerate()
        .map(|(i, n)| {
            n.as_str()
                .map(str::to_string)
                .ok_or_else(|| err(format!("{path}[{i}]"), "expected a name"))
        })
        .collect()
}

/// Every name a step reads is defined before it; the output is defined.
fn check_names(spec: &GraphSpec, at: &str) -> Result<(), SpecError> {
    let mut defined: Vec<&str> = spec.inputs.iter().map(String::as_str).collect();
    for (i, s) in spec.steps.iter().enumerate() {
        for (j, n) in s.inputs.iter().enumerate() {
            if !defined.contains(&n.as_str()) {
                let later = spec.steps[i..]
                    .iter()
                    .position(|t| t.output.as_deref() == Some(n));
                let why = match later {
                    Some(k) => format!(
                        "`{n}` is read before it is defined (by forward[{}]): a cycle",
                        i + k
                    ),
                    None => format!("`{n}` is not defined by the inputs or an earlier step"),
                };
                return Err(err(format!("{at}forward[{i}].input[{j}]"), why));
            }
        }
        if let Some(o) = &s.output {
            defined.push(o);
        }
    }
    let o = &spec.outputs[0];
    if !defined.contains(&o.as_str()) {
        return Err(err(
            format!("{at}output[0]"),
            format!("`{o}` is not defined by any step"),
        ));
    }
    Ok(())
}

fn parse_step(v: &Value, spec: &GraphSpec, sp: &str) -> Result<StepSpec, SpecError> {
    let obj = v
        .as_object()
        .ok_or_else(|| err(sp, "expected {ops, input, output}"))?;
    for k in obj.keys() {
        if !["ops", "input", "output"].contains(&k.as_str()) {
            return Err(err(
                format!("{sp}.{k}"),
                "unknown field (expected ops, input, output)",
            ));
        }
    }
    // DEPA accepts ["x"], ["x1", "x2"] and [["x1", "x2"]].
    let inputs = match obj.get("input").and_then(Value::as_array) {
        Some(a) if a.len() == 1 && a[0].is_array() => {
            names(Some(&a[0]), &format!("{sp}.input[0]"))?
        }
        _ => names(obj.get("input"), &format!("{sp}.input"))?,
    };
    let output = match obj.get("output") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Array(a)) if a.len() == 1 && a[0].is_string() => {
            a[0].as_str().map(str::to_string)
        }
        Some(_) => {
            return Err(err(
                format!("{sp}.output"),
                "expected one name (ccr's ops each return one tensor)",
            ));
        }
    };
    let ops_v = obj
        .get("ops")
        .and_then(Value::as_array)
        .ok_or_else(|| err(format!("{sp}.ops"), "expected a list of ops"))?;
    if ops_v.len() > MAX_OPS_PER_STEP {
        return Err(err(
            format!("{sp}.ops"),
            format!(
                "{} ops: more than DEPA's limit of {MAX_OPS_PER_STEP} a step",
                ops_v.len()
            ),
        ));
    }
    let mut ops = Vec::with_capacity(ops_v.len());
    for (k, op) in ops_v.iter().enumerate() {
        let op_path = format!("{sp}.ops[{k}]");
        let (name, kwargs) = match op {
            Value::String(s) => (s.as_str(), Map::new()),
            Value::Array(a) if !a.is_empty() && a.len() <= 2 => {
                let name = a[0]
                    .as_str()
                    .ok_or_else(|| err(format!("{op_path}[0]"), "expected an op name"))?;
                let kw = match a.get(1) {
                    None => Map::new(),
                    Some(Value::Object(m)) => m.clone(),
                    Some(_) => {
                        return Err(err(format!("{op_path}[1]"), "expected an object of kwargs"));
                    }
                };
                (name, kw)
            }
            _ => {
                return Err(err(
                    op_path,
                    "expected a layer or function name, or [name, {kwargs}]",
                ));
            }
        };
        for key in kwargs.keys() {
            if DENYLIST_ARG_NAMES.contains(&key.to_ascii_lowercase().as_str()) {
                return Err(err(
                    format!("{op_path}[1].{key}"),
                    "a denylisted kwarg (DEPA's DENYLIST_ARG_NAMES: out, file, filename, path, dir, directory, map_location)",
                ));
            }
        }
        if let Some(i) = spec.layer(name) {
            if !kwargs.is_empty() {
                return Err(err(
                    format!("{op_path}[1]"),
                    "a layer is called without kwargs",
                ));
            }
            ops.push(Op::Layer(i));
        } else {
            let mut prm = Params::new(kwargs, format!("{op_path}[1]"));
            let f = Func::from_function(name, &mut prm).map_err(|e| {
                if e.path.is_empty() {
                    err(op_path.clone(), e.reason)
                } else {
                    e
                }
            })?;
            prm.finish()?;
            ops.push(Op::Func(f));
        }
    }
    Ok(StepSpec {
        ops,
        inputs,
        output,
    })
}

fn parse_layer(
    entry: &Value,
    subs: &Map<String, Value>,
    lp: &str,
    placeholders: &Map<String, Value>,
    depth: usize,
) -> Result<LayerDef, SpecError> {
    let obj = entry
        .as_object()
        .ok_or_else(|| err(lp, "expected {class, params} or {submodule, params}"))?;
    for k in obj.keys() {
        if !["class", "submodule", "params"].contains(&k.as_str()) {
            return Err(err(
                format!("{lp}.{k}"),
                "unknown field (expected class or submodule, and params)",
            ));
        }
    }
    let params = match obj.get("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(err(format!("{lp}.params"), "expected an object")),
    };
    let params = replace_placeholders(params, placeholders, &format!("{lp}.params"))?;
    match (obj.get("class"), obj.get("submodule")) {
        (Some(c), None) => {
            let class = c
                .as_str()
                .ok_or_else(|| err(format!("{lp}.class"), "expected a class name"))?;
            let mut prm = Params::new(params, format!("{lp}.params"));
            let lc = layer_class(class, &mut prm).map_err(|e| {
                if e.path.is_empty() {
                    err(format!("{lp}.class"), e.reason)
                } else {
                    e
                }
            })?;
            prm.finish()?;
            Ok(LayerDef::Class(lc))
        }
        (None, Some(s)) => {
            let name = s
                .as_str()
                .ok_or_else(|| err(format!("{lp}.submodule"), "expected a submodule name"))?;
            let def = subs.get(name).and_then(Value::as_object).ok_or_else(|| {
                err(
                    format!("{lp}.submodule"),
                    format!("no submodule `{name}` in submodules"),
                )
            })?;
            let g = parse_graph(
                def,
                subs,
                &format!("submodules.{name}."),
                &params,
                depth + 1,
            )?;
            Ok(LayerDef::Sub(Box::new(g)))
        }
        _ => Err(err(lp, "a layer has either `class` or `submodule`")),
    }
}

/// Replaces `"$name"` strings with `placeholders[name]`, recursively (DEPA's
/// `_replace_placeholders`).
fn replace_placeholders(
    params: Map<String, Value>,
    placeholders: &Map<String, Value>,
    path: &str,
) -> Result<Map<String, Value>, SpecError> {
    fn rep(v: Value, ph: &Map<String, Value>, path: &str) -> Result<Value, SpecError> {
        Ok(match v {
            Value::String(s) if s.starts_with('$') => {
                ph.get(&s[1..]).cloned().ok_or_else(|| {
                    err(
                        path,
                        format!("placeholder `{s}` has no value in the layer's params"),
                    )
                })?
            }
            Value::Array(a) => Value::Array(
                a.into_iter()
                    .enumerate()
                    .map(|(i, x)| rep(x, ph, &format!("{path}[{i}]")))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(m) => Value::Object(
                m.into_iter()
                    .map(|(k, x)| {
                        let p = format!("{path}.{k}");
                        rep(x, ph, &p).map(|x| (k, x))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            v => v,
        })
    }
    params
        .into_iter()
        .map(|(k, v)| {
            let p = format!("{path}.{k}");
            rep(v, placeholders, &p).map(|v| (k, v))
        })
        .collect()
}

fn layer_class(class: &str, p: &mut Params) -> Result<LayerClass, SpecError> {
    let short = class
        .strip_prefix("torch.nn.")
        .or_else(|| class.strip_prefix("nn."))
        .ok_or_else(|| err("", format!("`{class}`: layer classes are `nn.*`")))?;
    Ok(match short {
        "Linear" => LayerClass::Linear {
            d_in: p.req_usize("in_features")?,
            d_out: p.req_usize("out_features")?,
            bias: p.bool("bias", true)?,
        },
        "Conv1d" | "Conv2d" | "ConvTranspose2d" => {
            let dims = if short == "Conv1d" { 1 } else { 2 };
            let c_in = p.req_usize("in_channels")?;
            let c_out = p.req_usize("out_channels")?;
            let kernel = p.req_pair("kernel_size", dims)?;
            let spec = ConvSpec {
                dims,
                c_in,
                c_out,
                kernel,
                stride: p.pair("stride", dims, [1, 1])?,
                padding: p.pair("padding", dims, [0, 0])?,
                dilation: p.pair("dilation", dims, [1, 1])?,
                groups: p.usize("groups", 1)?,
                bias: p.bool("bias", true)?,
                output_padding: if short == "ConvTranspose2d" {
                    p.pair("output_padding", dims, [0, 0])?
                } else {
                    [0, 0]
                },
            };
            if let Some(m) = p.take("padding_mode")
                && m != "zeros"
            {
                return Err(err(
                    format!("{}.padding_mode", p.path),
                    "only \"zeros\" padding is supported",
                ));
            }
            if let Err((field, why)) = spec.check() {
                return Err(err(format!("{}.{field}", p.path), why));
            }
            if short == "ConvTranspose2d" {
                LayerClass::ConvTranspose2d(spec)
            } else {
                LayerClass::Conv(spec)
            }
        }
        "BatchNorm1d" | "BatchNorm2d" => {
            let features = p.req_usize("num_features")?;
            let eps = p.f64("eps", 1e-5)?;
            let momentum = p.f64("momentum", 0.1)?;
            if !p.bool("affine", true)? || !p.bool("track_running_stats", true)? {
                return Err(err(
                    p.path.clone(),
                    "BatchNorm without affine or running stats is not supported",
                ));
            }
            LayerClass::BatchNorm {
                features,
                eps,
                momentum,
            }
        }
        "GroupNorm" => LayerClass::GroupNorm {
            groups: p.req_usize("num_groups")?,
            channels: p.req_usize("num_channels")?,
            eps: p.f64("eps", 1e-5)?,
            affine: p.bool("affine", true)?,
        },
        "LayerNorm" => {
            let d = match p.take_value("normalized_shape") {
                Some(Value::Number(n)) => n.as_u64().map(|n| n as usize),
                Some(Value::Array(a)) if a.len() == 1 => a[0].as_u64().map(|n| n as usize),
                _ => None,
            }
            .ok_or_else(|| {
                err(
                    format!("{}.normalized_shape", p.path),
                    "expected one size (ccr normalizes over the last dimension)",
                )
            })?;
            LayerClass::LayerNorm {
                d,
                eps: p.f64("eps", 1e-5)?,
                affine: p.bool("elementwise_affine", true)?,
                bias: p.bool("bias", true)?,
            }
        }
        "Embedding" => {
            if p.take_value("padding_idx").is_some_and(|v| !v.is_null()) {
                return Err(err(
                    format!("{}.padding_idx", p.path),
                    "padding_idx is not supported",
                ));
            }
            LayerClass::Embedding {
                num: p.req_usize("num_embeddings")?,
                dim: p.req_usize("embedding_dim")?,
            }
        }
        other => LayerClass::Stateless(Func::from_class(other, p)?),
    })
}
