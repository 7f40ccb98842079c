//! ONNX import: a base model as DEPA's `save_base_model.py` writes it (`torch.onnx.export`,
//! operator sets 11–17, weights as initializers) turned into ccr's model graph and its
//! `state_dict`, so that it trains like any other graph and is exported back.
//!
//! | ONNX | ccr |
//! | --- | --- |
//! | `Gemm` (`transA` 0, `alpha` = `beta` = 1), `MatMul` by an initializer (+ `Add` of one) | `nn.Linear` |
//! | `Conv`, `ConvTranspose` (explicit symmetric `pads`) | `nn.Conv1d`/`nn.Conv2d`, `nn.ConvTranspose2d` |
//! | `BatchNormalization`, `LayerNormalization` | `nn.BatchNorm*`, `nn.LayerNorm` |
//! | `Gather` of an initializer (axis 0) | `nn.Embedding` |
//! | `Relu`, `LeakyRelu`, `Sigmoid`, `Tanh`, `Elu`, `Exp`, `Log`, `Softmax`, `LogSoftmax` | the functions |
//! | `MaxPool`, `AveragePool`, `GlobalAveragePool` | 2-d pooling |
//! | `Flatten` (axis 1), `Reshape` (constant shape, batch first), `Transpose`, `Unsqueeze`, `Squeeze`, `Concat`, `ReduceSum`, `ReduceMean`, `MatMul` | the shape ops |
//! | `Dropout`, `Identity` | nothing (evaluation graphs) |
//! | `Constant` | a constant input of the ops above |
//!
//! Anything else is an error naming the node (its name, or its index) and its op. Layer names
//! come from the weight initializers' names (`fc1.weight` → layer `fc1`), so the trained
//! model's tensors keep the names PyTorch gave them.

use std::collections::HashMap;

use prost::Message;

use super::proto::{ModelProto, NodeProto};
pub use super::read::ImportError;
use super::read::{
    Attrs, Const, check_auto_pad, decode_tensor, err, f32s, pads, pair, reshape_target, transpose,
};
use crate::learn::graph::NamedTensor;
use crate::learn::graph::net::layer_shape;
use crate::learn::graph::ops::{Func, PoolSpec};
use crate::learn::graph::spec::{
    ConvSpec, GraphSpec, LayerClass, LayerDef, LayerEntry, Op, StepSpec,
};

/// The operator sets accepted (of the default domain).
pub const OPSETS: std::ops::RangeInclusive<i64> = 7..=18;

/// At most this many nodes (a bound on the work a base model can ask for).
pub const MAX_NODES: usize = 2000;

/// The imported model.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The graph.
    pub spec: GraphSpec,
    /// One sample's shape (the graph input's dimensions after the batch).
    pub sample_shape: Vec<usize>,
    /// The weights by `state_dict` name, in PyTorch's layouts.
    pub tensors: Vec<NamedTensor>,
    /// The default domain's operator set.
    pub opset: i64,
}

struct Importer {
    consts: HashMap<String, Const>,
    /// ONNX value name → (graph name, shape with a batch of 1).
    values: HashMap<String, (String, Vec<usize>)>,
    spec: GraphSpec,
    tensors: Vec<NamedTensor>,
    /// Linear layers made from a `MatMul` without bias: output value → layer index.
    bias_free: HashMap<String, usize>,
    opset: i64,
    /// The graph input's batch dimension is fixed at 1 (`torch.onnx.export` without
    /// `dynamic_axes`, as DEPA's scripts call it): a `Reshape` to 1 first keeps the batch.
    static_batch: bool,
}

impl Importer {
    fn layer_name(&self, weight: &str, node: &NodeProto, idx: usize) -> String {
        let base = weight
            .strip_suffix(".weight")
            .map(str::to_string)
            .unwrap_or_else(|| {
                let n = if node.name.is_empty() {
                    format!("node{idx}")
                } else {
                    node.name.clone()
                };
                n.trim_start_matches('/').replace(['/', '.'], "_")
            });
        let mut name = base.clone();
        let mut k = 1;
        while self.spec.layer(&name).is_some() {
            k += 1;
            name = format!("{base}_{k}");
        }
        name
    }

    fn input(&self, name: &str, at: &str) -> Result<(String, Vec<usize>), ImportError> {
        self.values.get(name).cloned().ok_or_else(|| {
            err(
                at,
                format!("input `{name}` is not produced by an earlier node"),
            )
        })
    }

    fn constant(&self, name: &str, at: &str) -> Result<&Const, ImportError> {
        self.consts
            .get(name)
            .ok_or_else(|| err(at, format!("`{name}` must be a constant (an initializer)")))
    }

    /// Adds a step applying `op` to `inputs`, writing ONNX value `out`.
    fn step(&mut self, op: Op, inputs: Vec<(String, Vec<usize>)>, out: &str, shape: Vec<usize>) {
        let name = format!("v{}", self.spec.steps.len());
        self.spec.steps.push(StepSpec {
            ops: vec![op],
            inputs: inputs.into_iter().map(|(n, _)| n).collect(),
            output: Some(name.clone()),
        });
        self.values.insert(out.to_string(), (name, shape));
    }

    fn add_layer(
        &mut self,
        name: String,
        class: LayerClass,
        x: (String, Vec<usize>),
        out: &str,
        at: &str,
    ) -> Result<usize, ImportError> {
        let shape = layer_shape(&class, &x.1).map_err(|r| err(at, r))?;
        self.spec.layers.push(LayerEntry {
            name,
            def: LayerDef::Class(class),
        });
        let i = self.spec.layers.len() - 1;
        self.step(Op::Layer(i), vec![x], out, shape);
        Ok(i)
    }

    fn func(
        &mut self,
        f: Func,
        ins: Vec<(String, Vec<usize>)>,
        out: &str,
        at: &str,
    ) -> Result<(), ImportError> {
        let shapes: Vec<Vec<usize>> = ins.iter().map(|(_, s)| s.clone()).collect();
        let shape = f.out_shape(&shapes).map_err(|r| err(at, r))?;
        self.step(Op::Func(f), ins, out, shape);
        Ok(())
    }

    fn tensor(&mut self, name: String, dims: Vec<usize>, values: Vec<f32>) {
        self.tensors.push(NamedTensor {
            name,
            shape: dims,
            values,
        });
    }

    /// One node into the graph: a constant, a parameter layer, a function or a shape op; an op
    /// outside the supported set is an error naming the node.
    fn node(&mut self, idx: usize, node: &NodeProto) -> Result<(), ImportError> {
        let at = format!(
            "node {idx} ({}{})",
            if node.name.is_empty() {
                String::new()
            } else {
                format!("{}, ", node.name)
            },
            node.op_type
        );
        if !node.domain.is_empty() && node.domain != "ai.onnx" {
            return Err(err(
                &at,
                format!("operator domain `{}` is not ONNX's", node.domain),
            ));
        }
        let a = Attrs(&node.attribute);
        let out = node.output.first().cloned().unwrap_or_default();
        let op = node.op_type.as_str();
        match op {
            "Constant" => {
                let t = a
                    .get("value")
                    .and_then(|v| v.t.as_ref())
                    .ok_or_else(|| err(&at, "only a `value` tensor constant is read"))?;
                let c = decode_tensor(t, &at)?;
                self.consts.insert(out, c);
            }
            "Identity" | "Dropout" => {
                let x = self.input(&inp(node, 0), &at)?;
                self.values.insert(out, x);
            }
            "Conv" | "ConvTranspose" => self.conv(node, idx, &a, &at)?,
            "Gemm" | "MatMul" | "Add" => {
                self.linear_node(idx, node, &at)?;
            }
            "BatchNormalization" | "LayerNormalization" | "Gather" => {
                self.layer_node(idx, node, &at)?;
            }
            "Relu" | "Sigmoid" | "Tanh" | "Exp" | "Log" | "LeakyRelu" | "Elu" | "Softmax"
            | "LogSoftmax" | "MaxPool" | "AveragePool" | "GlobalAveragePool" => {
                self.function_node(idx, node, &at)?;
            }
            "Flatten" | "Reshape" | "Transpose" | "Unsqueeze" | "Squeeze" | "Concat"
            | "ReduceSum" | "ReduceMean" => {
                self.shape_node(idx, node, &at)?;
            }
            other => {
                return Err(err(
                    &at,
                    format!(
                        "the ONNX op `{other}` is not supported (see learn::onnx::import for the supported set)"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// A linear layer: Gemm, MatMul by a weight initializer (else a product of two values), and Add as such a MatMul's bias.
    fn linear_node(&mut self, idx: usize, node: &NodeProto, at: &str) -> Result<(), ImportError> {
        let a = Attrs(&node.attribute);
        let out = node.output.first().cloned().unwrap_or_default();
        match node.op_type.as_str() {
            "Gemm" => {
                if a.int("transA", 0) != 0
                    || a.float("alpha", 1.0) != 1.0
                    || a.float("beta", 1.0) != 1.0
                {
                    return Err(err(
                        at,
                        "only Gemm with transA 0 and alpha = beta = 1 (a linear layer)",
                    ));
                }
                let x = self.input(&inp(node, 0), at)?;
                let wname = inp(node, 1);
                let w = self.constant(&wname, at)?.clone();
                if w.dims.len() != 2 {
                    return Err(err(at, "the weight must be a matrix"));
                }
                let (out_f, in_f, values) = if a.int("transB", 0) == 1 {
                    (w.dims[0], w.dims[1], f32s(&w.values))
                } else {
                    (
                        w.dims[1],
                        w.dims[0],
                        transpose(&w.values, w.dims[0], w.dims[1]),
                    )
                };
                let name = self.layer_name(&wname, node, idx);
                let bias = node.input.len() > 2 && !inp(node, 2).is_empty();
                if bias {
                    let b = self.constant(&inp(node, 2), at)?.clone();
                    if b.values.len() != out_f {
                        return Err(err(
                            at,
                            format!(
                                "the bias has {} values, the layer {out_f} outputs",
                                b.values.len()
                            ),
                        ));
                    }
                    self.tensor(format!("{name}.bias"), vec![out_f], f32s(&b.values));
                }
                self.tensor(format!("{name}.weight"), vec![out_f, in_f], values);
                self.add_layer(
                    name,
                    LayerClass::Linear {
                        d_in: in_f,
                        d_out: out_f,
                        bias,
                    },
                    x,
                    &out,
                    at,
                )?;
            }
            "MatMul" => {
                let x = self.input(&inp(node, 0), at)?;
                if let Some(w) = self.consts.get(&inp(node, 1)).cloned() {
                    if w.dims.len() != 2 {
                        return Err(err(at, "a constant MatMul operand must be a matrix"));
                    }
                    let (in_f, out_f) = (w.dims[0], w.dims[1]);
                    let name = self.layer_name(&inp(node, 1), node, idx);
                    self.tensor(
                        format!("{name}.weight"),
                        vec![out_f, in_f],
                        transpose(&w.values, in_f, out_f),
                    );
                    let i = self.add_layer(
                        name,
                        LayerClass::Linear {
                            d_in: in_f,
                            d_out: out_f,
                            bias: false,
                        },
                        x,
                        &out,
                        at,
                    )?;
                    self.bias_free.insert(out, i);
                } else {
                    let y = self.input(&inp(node, 1), at)?;
                    self.func(Func::Matmul, vec![x, y], &out, at)?;
                }
            }
            "Add" => {
                // Only the bias of a preceding MatMul layer.
                let (v, c) = if self.consts.contains_key(&inp(node, 1)) {
                    (inp(node, 0), inp(node, 1))
                } else {
                    (inp(node, 1), inp(node, 0))
                };
                let (Some(&i), Some(b)) = (self.bias_free.get(&v), self.consts.get(&c).cloned())
                else {
                    return Err(err(
                        at,
                        "Add is read only as the bias of a MatMul by a weight initializer",
                    ));
                };
                let name = self.spec.layers[i].name.clone();
                if let LayerDef::Class(LayerClass::Linear { d_out, bias, .. }) =
                    &mut self.spec.layers[i].def
                {
                    if b.values.len() != *d_out {
                        return Err(err(
                            at,
                            format!(
                                "the bias has {} values, the layer {d_out} outputs",
                                b.values.len()
                            ),
                        ));
                    }
                    *bias = true;
                    let d_out = *d_out;
                    self.tensor(format!("{name}.bias"), vec![d_out], f32s(&b.values));
                }
                self.bias_free.remove(&v);
                let x = self.input(&v, at)?;
                self.values.insert(out, x);
            }
            _ => unreachable!("dispatched by node()"),
        }
        Ok(())
    }

    /// The other parameter layers: BatchNormalization, LayerNormalization, Gather of a weight matrix (an embedding).
    fn layer_node(&mut self, idx: usize, node: &NodeProto, at: &str) -> Result<(), ImportError> {
        let a = Attrs(&node.attribute);
        let out = node.output.first().cloned().unwrap_or_default();
        match node.op_type.as_str() {
            "BatchNormalization" => {
                let x = self.input(&inp(node, 0), at)?;
                let scale = self.constant(&inp(node, 1), at)?.clone();
                let names = ["weight", "bias", "running_mean", "running_var"];
                let name = self.layer_name(&inp(node, 1), node, idx);
                for (k, n) in names.iter().enumerate() {
                    let c = self.constant(&inp(node, k + 1), at)?.clone();
                    self.tensor(format!("{name}.{n}"), c.dims.clone(), f32s(&c.values));
                }
                let class = LayerClass::BatchNorm {
                    features: scale.values.len(),
                    eps: f64::from(a.float("epsilon", 1e-5)),
                    momentum: 1.0 - f64::from(a.float("momentum", 0.9)),
                };
                self.add_layer(name, class, x, &out, at)?;
            }
            "LayerNormalization" => {
                let x = self.input(&inp(node, 0), at)?;
                let axis = a.int("axis", -1);
                if axis != -1 && axis != x.1.len() as i64 - 1 {
                    return Err(err(at, "only normalization over the last axis"));
                }
                let scale = self.constant(&inp(node, 1), at)?.clone();
                let name = self.layer_name(&inp(node, 1), node, idx);
                let d = scale.values.len();
                self.tensor(format!("{name}.weight"), vec![d], f32s(&scale.values));
                let bias = node.input.len() > 2 && !inp(node, 2).is_empty();
                if bias {
                    let b = self.constant(&inp(node, 2), at)?.clone();
                    self.tensor(format!("{name}.bias"), vec![d], f32s(&b.values));
                }
                let class = LayerClass::LayerNorm {
                    d,
                    eps: f64::from(a.float("epsilon", 1e-5)),
                    affine: true,
                    bias,
                };
                self.add_layer(name, class, x, &out, at)?;
            }
            "Gather" => {
                let w = self.constant(&inp(node, 0), at)?.clone();
                if a.int("axis", 0) != 0 || w.dims.len() != 2 {
                    return Err(err(
                        at,
                        "only Gather of rows of a weight matrix (an embedding)",
                    ));
                }
                let x = self.input(&inp(node, 1), at)?;
                let name = self.layer_name(&inp(node, 0), node, idx);
                self.tensor(format!("{name}.weight"), w.dims.clone(), f32s(&w.values));
                let class = LayerClass::Embedding {
                    num: w.dims[0],
                    dim: w.dims[1],
                };
                self.add_layer(name, class, x, &out, at)?;
            }
            _ => unreachable!("dispatched by node()"),
        }
        Ok(())
    }

    /// Parameterless functions: activations, (log-)softmax, max and average pooling.
    fn function_node(
        &mut self,
        _idx: usize,
        node: &NodeProto,
        at: &str,
    ) -> Result<(), ImportError> {
        let a = Attrs(&node.attribute);
        let out = node.output.first().cloned().unwrap_or_default();
        let op = node.op_type.as_str();
        match node.op_type.as_str() {
            "Relu" | "Sigmoid" | "Tanh" | "Exp" | "Log" | "LeakyRelu" | "Elu" => {
                let f = match op {
                    "Relu" => Func::Relu,
                    "Sigmoid" => Func::Sigmoid,
                    "Tanh" => Func::Tanh,
                    "Exp" => Func::Exp,
                    "Log" => Func::Log,
                    "LeakyRelu" => Func::LeakyRelu(f64::from(a.float("alpha", 0.01))),
                    _ => Func::Elu(f64::from(a.float("alpha", 1.0))),
                };
                let x = self.input(&inp(node, 0), at)?;
                self.func(f, vec![x], &out, at)?;
            }
            "Softmax" | "LogSoftmax" => {
                let x = self.input(&inp(node, 0), at)?;
                let default = if self.opset >= 13 { -1 } else { 1 };
                let axis = a.int("axis", default);
                let r = x.1.len() as i64;
                if self.opset < 13 && (if axis < 0 { axis + r } else { axis }) != r - 1 {
                    return Err(err(
                        at,
                        "before opset 13 only a softmax over the last axis is read",
                    ));
                }
                let f = if op == "Softmax" {
                    Func::Softmax(axis)
                } else {
                    Func::LogSoftmax(axis)
                };
                self.func(f, vec![x], &out, at)?;
            }
            "MaxPool" | "AveragePool" => {
                let x = self.input(&inp(node, 0), at)?;
                if a.int("ceil_mode", 0) != 0 {
                    return Err(err(at, "ceil_mode 1 is not supported"));
                }
                check_auto_pad(&a, at)?;
                let k = pair(
                    a.ints("kernel_shape").unwrap_or_default(),
                    at,
                    "kernel_shape",
                )?;
                let pool = PoolSpec {
                    kernel: k,
                    stride: pair(a.ints("strides").unwrap_or(vec![1, 1]), at, "strides")?,
                    padding: pads(a.ints("pads"), 2, at)?,
                    dilation: pair(a.ints("dilations").unwrap_or(vec![1, 1]), at, "dilations")?,
                    count_include_pad: a.int("count_include_pad", 0) != 0,
                };
                let f = if op == "MaxPool" {
                    Func::MaxPool2d(pool)
                } else {
                    Func::AvgPool2d(pool)
                };
                self.func(f, vec![x], &out, at)?;
            }
            "GlobalAveragePool" => {
                let x = self.input(&inp(node, 0), at)?;
                self.func(Func::AdaptiveAvgPool2d([1, 1]), vec![x], &out, at)?;
            }
            _ => unreachable!("dispatched by node()"),
        }
        Ok(())
    }

    /// Shape ops and reductions: Flatten, Reshape, Transpose, (Un)squeeze, Concat, ReduceSum/Mean.
    fn shape_node(&mut self, _idx: usize, node: &NodeProto, at: &str) -> Result<(), ImportError> {
        let a = Attrs(&node.attribute);
        let out = node.output.first().cloned().unwrap_or_default();
        let op = node.op_type.as_str();
        match node.op_type.as_str() {
            "Flatten" => {
                let x = self.input(&inp(node, 0), at)?;
                if a.int("axis", 1) != 1 {
                    return Err(err(at, "only Flatten with axis 1 (the batch kept)"));
                }
                self.func(Func::Flatten(1, -1), vec![x], &out, at)?;
            }
            "Reshape" => {
                let x = self.input(&inp(node, 0), at)?;
                let shape = self.constant(&inp(node, 1), at)?.values.clone();
                let f = Func::Reshape(reshape_target(&shape, &x.1, self.static_batch, at)?);
                self.func(f, vec![x], &out, at)?;
            }
            "Transpose" => {
                let x = self.input(&inp(node, 0), at)?;
                let r = x.1.len() as i64;
                let perm = a.ints("perm").unwrap_or_else(|| (0..r).rev().collect());
                self.func(Func::Permute(perm), vec![x], &out, at)?;
            }
            "Unsqueeze" | "Squeeze" => {
                let x = self.input(&inp(node, 0), at)?;
                let axes = match a.ints("axes") {
                    Some(v) => v,
                    None => self
                        .constant(&inp(node, 1), at)?
                        .values
                        .iter()
                        .map(|&v| v as i64)
                        .collect(),
                };
                let [axis] = axes[..] else {
                    return Err(err(at, "only one axis is read"));
                };
                let f = if op == "Unsqueeze" {
                    Func::Unsqueeze(axis)
                } else {
                    Func::Squeeze(axis)
                };
                self.func(f, vec![x], &out, at)?;
            }
            "Concat" => {
                let ins = node
                    .input
                    .iter()
                    .map(|n| self.input(n, at))
                    .collect::<Result<Vec<_>, _>>()?;
                self.func(Func::Cat(a.int("axis", 1)), ins, &out, at)?;
            }
            "ReduceSum" | "ReduceMean" => {
                let x = self.input(&inp(node, 0), at)?;
                let axes = match a.ints("axes") {
                    Some(v) => v,
                    None if node.input.len() > 1 => self
                        .constant(&inp(node, 1), at)?
                        .values
                        .iter()
                        .map(|&v| v as i64)
                        .collect(),
                    None => Vec::new(),
                };
                let [axis] = axes[..] else {
                    return Err(err(at, "only a reduction over one axis is read"));
                };
                let keep = a.int("keepdims", 1) != 0;
                let f = if op == "ReduceSum" {
                    Func::Sum(axis, keep)
                } else {
                    Func::Mean(axis, keep)
                };
                self.func(f, vec![x], &out, at)?;
            }

            _ => unreachable!("dispatched by node()"),
        }
        Ok(())
    }

    fn conv(
        &mut self,
        node: &NodeProto,
        idx: usize,
        a: &Attrs<'_>,
        at: &str,
    ) -> Result<(), ImportError> {
        let inp = |k: usize| node.input.get(k).cloned().unwrap_or_default();
        let out = node.output.first().cloned().unwrap_or_default();
        let transposed = node.op_type == "ConvTranspose";
        let x = self.input(&inp(0), at)?;
        let w = self.constant(&inp(1), at)?.clone();
        let dims = w.dims.len().saturating_sub(2);
        if !(1..=2).contains(&dims) || (transposed && dims != 2) {
            return Err(err(
                at,
                format!("a {}-d convolution is not supported", dims),
            ));
        }
        check_auto_pad(a, at)?;
        if a.ints("output_shape").is_some() {
            return Err(err(at, "output_shape is not read (give output_padding)"));
        }
        let groups = a.int("group", 1).max(1) as usize;
        let two =
            |v: Option<Vec<i64>>, what: &str, default: usize| -> Result<[usize; 2], ImportError> {
                let v = v.unwrap_or(vec![default as i64; dims]);
                if v.len() != dims || v.iter().any(|&x| x < 0) {
                    return Err(err(
                        at,
                        format!("`{what}` must have {dims} non-negative values"),
                    ));
                }
                Ok(if dims == 1 {
                    [1, v[0] as usize]
                } else {
                    [v[0] as usize, v[1] as usize]
                })
            };
        let kernel = if dims == 1 {
            [1, w.dims[2]]
        } else {
            [w.dims[2], w.dims[3]]
        };
        let padding = pads(a.ints("pads"), dims, at)?;
        let (c_in, c_out) = if transposed {
            (w.dims[0], w.dims[1] * groups)
        } else {
            (w.dims[1] * groups, w.dims[0])
        };
        let spec = ConvSpec {
            dims,
            c_in,
            c_out,
            kernel,
            stride: two(a.ints("strides"), "strides", 1)?,
            padding,
            dilation: two(a.ints("dilations"), "dilations", 1)?,
            groups,
            bias: node.input.len() > 2 && !inp(2).is_empty(),
            output_padding: if transposed {
                two(a.ints("output_padding"), "output_padding", 0)?
            } else {
                [0, 0]
            },
        };
        if let Err((field, why)) = spec.check() {
            return Err(err(at, format!("{field} {why}")));
        }
        let name = self.layer_name(&inp(1), node, idx);
        self.tensor(format!("{name}.weight"), w.dims.clone(), f32s(&w.values));
        if spec.bias {
            let b = self.constant(&inp(2), at)?.clone();
            self.tensor(format!("{name}.bias"), vec![c_out], f32s(&b.values));
        }
        let class = if transposed {
            LayerClass::ConvTranspose2d(spec)
        } else {
            LayerClass::Conv(spec)
        };
        self.add_layer(name, class, x, &out, at)?;
        Ok(())
    }
}

/// A node's `k`-th input name (empty when absent).
fn inp(node: &NodeProto, k: usize) -> String {
    node.input.get(k).cloned().unwrap_or_default()
}

/// Imports an ONNX model (bytes of a `.onnx` file).
///
/// # Errors
/// [`ImportError`] naming the node or the part of the model: not ONNX, an operator set outside
/// [`OPSETS`], more than [`MAX_NODES`] nodes, an unsupported op or attribute, a graph input
/// without a fixed sample shape, or not exactly one input and one output.
pub fn import(bytes: &[u8]) -> Result<Imported, ImportError> {
    let m =
        ModelProto::decode(bytes).map_err(|e| err("model", format!("not an ONNX model: {e}")))?;
    let opset = m
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .ok_or_else(|| err("opset_import", "no default-domain operator set"))?;
    if !OPSETS.contains(&opset) {
        return Err(err(
            "opset_import",
            format!(
                "operator set {opset} (ccr reads {}–{})",
                OPSETS.start(),
                OPSETS.end()
            ),
        ));
    }
    let g = m.graph.ok_or_else(|| err("model", "no graph"))?;
    if g.node.len() > MAX_NODES {
        return Err(err(
            "graph",
            format!("{} nodes, more than {MAX_NODES}", g.node.len()),
        ));
    }
    let mut imp = Importer {
        consts: HashMap::new(),
        values: HashMap::new(),
        spec: GraphSpec {
            layers: Vec::new(),
            inputs: vec!["input".into()],
            steps: Vec::new(),
            outputs: Vec::new(),
        },
        tensors: Vec::new(),
        bias_free: HashMap::new(),
        opset,
        static_batch: false,
    };
    for t in &g.initializer {
        let c = decode_tensor(t, &format!("initializer `{}`", t.name))?;
        imp.consts.insert(t.name.clone(), c);
    }
    let inputs: Vec<_> = g
        .input
        .iter()
        .filter(|i| !imp.consts.contains_key(&i.name))
        .collect();
    let [input] = inputs[..] else {
        return Err(err(
            "graph.input",
            format!("{} inputs (ccr feeds one)", inputs.len()),
        ));
    };
    let dims: Vec<Option<usize>> = input
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .and_then(|t| t.shape.as_ref())
        .map(|s| {
            s.dim
                .iter()
                .map(|d| {
                    d.dim_value
                        .and_then(|v| usize::try_from(v).ok())
                        .filter(|&v| v > 0)
                })
                .collect()
        })
        .unwrap_or_default();
    if dims.len() < 2 || dims[1..].iter().any(Option::is_none) {
        return Err(err(
            format!("graph.input `{}`", input.name),
            "the input needs a fixed shape after the batch dimension",
        ));
    }
    let sample_shape: Vec<usize> = dims[1..].iter().flatten().copied().collect();
    imp.static_batch = dims[0] == Some(1);
    let mut shape = vec![1];
    shape.extend_from_slice(&sample_shape);
    imp.values
        .insert(input.name.clone(), ("input".into(), shape));
    for (i, node) in g.node.iter().enumerate() {
        imp.node(i, node)?;
    }
    let [output] = &g.output[..] else {
        return Err(err(
            "graph.output",
            format!("{} outputs (ccr trains one)", g.output.len()),
        ));
    };
    let (name, _) = imp.input(&output.name, "graph.output")?;
    imp.spec.outputs = vec![name];
    Ok(Imported {
        spec: imp.spec,
        sample_shape,
        tensors: imp.tensors,
        opset,
    })
}
