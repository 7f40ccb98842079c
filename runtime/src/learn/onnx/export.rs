//! ONNX export of a trained graph (`model.onnx` in the sealed output), operator set 17, IR
//! version 8.
//!
//! The graph takes the raw features `x` `[N, d]`, in `feature_columns` order, and applies the
//! whole model, scaler included:
//!
//! ```text
//! x → Sub(scaler.offset) → Div(scaler.scale) (→ Reshape [N, ...sample_shape])
//!   → the graph's ops → logits [N, k]   (classification: → Softmax(axis 1) → probabilities)
//! ```
//!
//! Each layer's initializers keep their `state_dict` names (`layers.0.weight`,
//! `_layers.conv1.weight`). Op by op: Linear → `Gemm` (`transB=1`; over more than two
//! dimensions `MatMul` + `Add`), Conv1d/2d → `Conv`, ConvTranspose2d → `ConvTranspose`,
//! BatchNorm → `BatchNormalization`, LayerNorm → `LayerNormalization`, GroupNorm →
//! `InstanceNormalization` over `[N, groups, -1]` then the affine, Embedding → `Cast` +
//! `Gather`; pools, activations and shape ops to their ONNX namesakes (GELU and SiLU written
//! out, dropout omitted).

use prost::Message;

use super::proto::*;
use crate::learn::graph::net::{Plan, Slot, layer_shape};
use crate::learn::graph::ops::Func;
use crate::learn::graph::spec::{LayerClass, Op};
use crate::learn::{Net, Scaler};

/// What the exported model outputs besides `logits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    /// `probabilities` = softmax over the outputs (classification with logits).
    Softmax,
    /// Only `logits` (regression, or a model that ends in its own sigmoid or softmax).
    None,
}

/// Why a graph cannot be exported.
#[derive(Debug, thiserror::Error)]
#[error("model.onnx: {0}")]
pub struct ExportError(pub String);

struct Builder<'a> {
    net: &'a Net,
    sd: Vec<crate::learn::graph::NamedTensor>,
    nodes: Vec<NodeProto>,
    init: Vec<TensorProto>,
    n: usize,
}

impl Builder<'_> {
    fn node(&mut self, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> String {
        self.n += 1;
        let out = format!("{}_{}", op.to_lowercase(), self.n);
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            name: format!("n{}", self.n),
            op_type: op.into(),
            attribute: attrs,
            domain: String::new(),
        });
        out
    }

    fn constant_f32(&mut self, v: &[f32], dims: &[usize]) -> String {
        let name = format!("const_{}", self.init.len());
        self.init.push(tensor_f32(&name, dims, v));
        name
    }

    fn constant_i64(&mut self, v: &[i64]) -> String {
        let name = format!("const_{}", self.init.len());
        self.init.push(tensor_i64(&name, v));
        name
    }

    fn reshape(&mut self, x: &str, shape: &[usize]) -> String {
        let mut s: Vec<i64> = vec![-1];
        s.extend(shape[1..].iter().map(|&d| d as i64));
        let c = self.constant_i64(&s);
        self.node("Reshape", &[x, &c], vec![])
    }

    /// Emits a plan's steps; returns the output's name and shape.
    fn plan(
        &mut self,
        plan: &Plan,
        inputs: Vec<(String, Vec<usize>)>,
    ) -> Result<(String, Vec<usize>), ExportError> {
        let mut env: Vec<(String, (String, Vec<usize>))> =
            plan.spec.inputs.iter().cloned().zip(inputs).collect();
        let get = |env: &Vec<(String, (String, Vec<usize>))>, n: &str| {
            env.iter()
                .rev()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        for step in &plan.spec.steps {
            let mut cur: Vec<(String, Vec<usize>)> =
                step.inputs.iter().map(|n| get(&env, n)).collect();
            for op in &step.ops {
                let v = match op {
                    Op::Func(f) => self.func(f, cur)?,
                    Op::Layer(i) => match &plan.slots[*i] {
                        Slot::Func(f) => self.func(f, cur)?,
                        Slot::Sub(sub) => self.plan(sub, cur)?,
                        Slot::Param(k, class) => {
                            let x = cur.into_iter().next().unwrap_or_default();
                            self.layer(*k, class, x)?
                        }
                    },
                };
                cur = vec![v];
            }
            if let Some(o) = &step.output {
                env.push((o.clone(), cur.into_iter().next().unwrap_or_default()));
            }
        }
        Ok(get(&env, &plan.spec.outputs[0]))
    }

    fn layer(
        &mut self,
        k: usize,
        class: &LayerClass,
        (x, s): (String, Vec<usize>),
    ) -> Result<(String, Vec<usize>), ExportError> {
        let info = &self.net.param_info()[k];
        let p = info.name.clone();
        let out_shape = layer_shape(class, &s).map_err(ExportError)?;
        let sd: Vec<_> = self
            .sd
            .iter()
            .filter(|t| t.name.starts_with(&format!("{p}.")))
            .cloned()
            .collect();
        let has = |suffix: &str| sd.iter().any(|t| t.name == format!("{p}.{suffix}"));
        for t in &sd {
            self.init.push(tensor_f32(&t.name, &t.shape, &t.values));
        }
        let w = format!("{p}.weight");
        let b = format!("{p}.bias");
        let y = match class {
            LayerClass::Linear { d_in, d_out, .. } => {
                if s.len() == 2 {
                    let mut ins = vec![x.as_str(), w.as_str()];
                    if has("bias") {
                        ins.push(&b);
                    }
                    self.node("Gemm", &ins, vec![int("transB", 1)])
                } else {
                    let wt = sd
                        .iter()
                        .find(|t| t.name == w)
                        .map(|t| transpose(&t.values, *d_out, *d_in))
                        .unwrap_or_default();
                    let wt = self.constant_f32(&wt, &[*d_in, *d_out]);
                    let m = self.node("MatMul", &[&x, &wt], vec![]);
                    if has("bias") {
                        self.node("Add", &[&m, &b], vec![])
                    } else {
                        m
                    }
                }
            }
            LayerClass::Conv(c) | LayerClass::ConvTranspose2d(c) => {
                let r = if c.dims == 1 { 1..2 } else { 0..2 };
                let v = |a: [usize; 2]| a[r.clone()].iter().map(|&v| v as i64).collect::<Vec<_>>();
                let pads = [v(c.padding), v(c.padding)].concat();
                let mut attrs = vec![
                    ints("kernel_shape", &v(c.kernel)),
                    ints("strides", &v(c.stride)),
                    ints("pads", &pads),
                    ints("dilations", &v(c.dilation)),
                    int("group", c.groups as i64),
                ];
                let transposed = matches!(class, LayerClass::ConvTranspose2d(_));
                if transposed {
                    attrs.push(ints("output_padding", &v(c.output_padding)));
                }
                let mut ins = vec![x.as_str(), w.as_str()];
                if has("bias") {
                    ins.push(&b);
                }
                self.node(
                    if transposed { "ConvTranspose" } else { "Conv" },
                    &ins,
                    attrs,
                )
            }
            LayerClass::BatchNorm { eps, .. } => {
                let (m, var) = (format!("{p}.running_mean"), format!("{p}.running_var"));
                self.node(
                    "BatchNormalization",
                    &[&x, &w, &b, &m, &var],
                    vec![float("epsilon", *eps as f32)],
                )
            }
            LayerClass::LayerNorm { d, eps, .. } => {
                let bias = if has("bias") {
                    b.clone()
                } else {
                    self.constant_f32(&vec![0.0; *d], &[*d])
                };
                self.node(
                    "LayerNormalization",
                    &[&x, &w, &bias],
                    vec![int("axis", -1), float("epsilon", *eps as f32)],
                )
            }
            LayerClass::GroupNorm {
                groups,
                channels,
                eps,
                ..
            } => {
                let g = *groups;
                let grouped = self.constant_i64(&[0, g as i64, -1]);
                let r = self.node("Reshape", &[&x, &grouped], vec![]);
                let ones = self.constant_f32(&vec![1.0; g], &[g]);
                let zeros = self.constant_f32(&vec![0.0; g], &[g]);
                let nrm = self.node(
                    "InstanceNormalization",
                    &[&r, &ones, &zeros],
                    vec![float("epsilon", *eps as f32)],
                );
                let mut back = vec![0i64];
                back.extend(s[1..].iter().map(|&d| d as i64));
                let back = self.constant_i64(&back);
                let y = self.node("Reshape", &[&nrm, &back], vec![]);
                if has("weight") {
                    let mut cshape = vec![*channels];
                    cshape.extend(std::iter::repeat_n(1, s.len() - 2));
                    let cs: Vec<i64> = cshape.iter().map(|&d| d as i64).collect();
                    let cs = self.constant_i64(&cs);
                    let gw = self.node("Reshape", &[&w, &cs], vec![]);
                    let gb = self.node("Reshape", &[&b, &cs], vec![]);
                    let m = self.node("Mul", &[&y, &gw], vec![]);
                    self.node("Add", &[&m, &gb], vec![])
                } else {
                    y
                }
            }
            LayerClass::Embedding { .. } => {
                let idx = self.node("Cast", &[&x], vec![int("to", INT64 as i64)]);
                self.node("Gather", &[&w, &idx], vec![int("axis", 0)])
            }
            LayerClass::Stateless(f) => return self.func(f, vec![(x, s)]),
        };
        Ok((y, out_shape))
    }

    fn func(
        &mut self,
        f: &Func,
        ins: Vec<(String, Vec<usize>)>,
    ) -> Result<(String, Vec<usize>), ExportError> {
        let shapes: Vec<Vec<usize>> = ins.iter().map(|(_, s)| s.clone()).collect();
        let out = f.out_shape(&shapes).map_err(ExportError)?;
        let names: Vec<&str> = ins.iter().map(|(n, _)| n.as_str()).collect();
        let x = names[0];
        let r = shapes[0].len() as i64;
        let norm = |d: i64| if d < 0 { d + r } else { d };
        let pool_attrs = |p: &crate::learn::graph::ops::PoolSpec, max: bool| {
            let v = |a: [usize; 2]| a.iter().map(|&v| v as i64).collect::<Vec<_>>();
            let mut a = vec![
                ints("kernel_shape", &v(p.kernel)),
                ints("strides", &v(p.stride)),
                ints("pads", &[v(p.padding), v(p.padding)].concat()),
            ];
            if max {
                a.push(ints("dilations", &v(p.dilation)));
            } else {
                a.push(int("count_include_pad", i64::from(p.count_include_pad)));
            }
            a
        };
        let y = match f {
            Func::Relu => self.node("Relu", &[x], vec![]),
            Func::Sigmoid => self.node("Sigmoid", &[x], vec![]),
            Func::Tanh => self.node("Tanh", &[x], vec![]),
            Func::Exp => self.node("Exp", &[x], vec![]),
            Func::Log => self.node("Log", &[x], vec![]),
            Func::Log1p => {
                let one = self.constant_f32(&[1.0], &[]);
                let a = self.node("Add", &[x, &one], vec![]);
                self.node("Log", &[&a], vec![])
            }
            Func::LeakyRelu(a) => self.node("LeakyRelu", &[x], vec![float("alpha", *a as f32)]),
            Func::Elu(a) => self.node("Elu", &[x], vec![float("alpha", *a as f32)]),
            Func::Silu => {
                let s = self.node("Sigmoid", &[x], vec![]);
                self.node("Mul", &[x, &s], vec![])
            }
            Func::Gelu(tanh) => {
                let half = self.constant_f32(&[0.5], &[]);
                let one = self.constant_f32(&[1.0], &[]);
                let inner = if *tanh {
                    // tanh(√(2/π) (x + 0.044715 x³))
                    let c = self.constant_f32(&[0.044715], &[]);
                    let k = self.constant_f32(&[(2.0f32 / std::f32::consts::PI).sqrt()], &[]);
                    let x2 = self.node("Mul", &[x, x], vec![]);
                    let x3 = self.node("Mul", &[&x2, x], vec![]);
                    let cx3 = self.node("Mul", &[&x3, &c], vec![]);
                    let s = self.node("Add", &[x, &cx3], vec![]);
                    let ks = self.node("Mul", &[&s, &k], vec![]);
                    self.node("Tanh", &[&ks], vec![])
                } else {
                    let r2 = self.constant_f32(&[std::f32::consts::SQRT_2], &[]);
                    let d = self.node("Div", &[x, &r2], vec![]);
                    self.node("Erf", &[&d], vec![])
                };
                let a = self.node("Add", &[&inner, &one], vec![]);
                let m = self.node("Mul", &[x, &a], vec![]);
                self.node("Mul", &[&m, &half], vec![])
            }
            Func::Softmax(d) => self.node("Softmax", &[x], vec![int("axis", norm(*d))]),
            Func::LogSoftmax(d) => self.node("LogSoftmax", &[x], vec![int("axis", norm(*d))]),
            Func::Dropout(_) | Func::Identity => x.to_string(),
            Func::MaxPool2d(p) => self.node("MaxPool", &[x], pool_attrs(p, true)),
            Func::AvgPool2d(p) => self.node("AveragePool", &[x], pool_attrs(p, false)),
            Func::AdaptiveAvgPool2d([h, w]) => {
                let (ih, iw) = (shapes[0][2], shapes[0][3]);
                if *h == 1 && *w == 1 {
                    self.node("GlobalAveragePool", &[x], vec![])
                } else if ih % h == 0 && iw % w == 0 {
                    let k = [(ih / h) as i64, (iw / w) as i64];
                    self.node(
                        "AveragePool",
                        &[x],
                        vec![ints("kernel_shape", &k), ints("strides", &k)],
                    )
                } else {
                    return Err(ExportError(format!(
                        "AdaptiveAvgPool2d from {ih}×{iw} to {h}×{w} has no fixed ONNX window"
                    )));
                }
            }
            Func::Flatten(..) | Func::Reshape(_) | Func::Unsqueeze(_) | Func::Squeeze(_) => {
                self.reshape(x, &out)
            }
            Func::Permute(dims) => {
                let perm: Vec<i64> = dims.iter().map(|&d| norm(d)).collect();
                self.node("Transpose", &[x], vec![ints("perm", &perm)])
            }
            Func::Transpose(a, b) => {
                let mut perm: Vec<i64> = (0..r).collect();
                perm.swap(norm(*a) as usize, norm(*b) as usize);
                self.node("Transpose", &[x], vec![ints("perm", &perm)])
            }
            Func::Cat(d) => self.node("Concat", &names, vec![int("axis", norm(*d))]),
            Func::Stack(d) => {
                let axis = if *d < 0 { d + r + 1 } else { *d };
                let mut parts = Vec::new();
                for (n, s) in &ins {
                    let mut u = s.clone();
                    u.insert(axis as usize, 1);
                    parts.push(self.reshape(n, &u));
                }
                let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
                self.node("Concat", &refs, vec![int("axis", axis)])
            }
            Func::Sum(d, keep) => {
                let axes = self.constant_i64(&[norm(*d)]);
                self.node(
                    "ReduceSum",
                    &[x, &axes],
                    vec![int("keepdims", i64::from(*keep))],
                )
            }
            Func::Mean(d, keep) => self.node(
                "ReduceMean",
                &[x],
                vec![ints("axes", &[norm(*d)]), int("keepdims", i64::from(*keep))],
            ),
            Func::Matmul => self.node("MatMul", &names, vec![]),
        };
        Ok((y, out))
    }
}

fn transpose(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0; v.len()];
    for i in 0..rows {
        for j in 0..cols {
            t[j * rows + i] = v[i * cols + j];
        }
    }
    t
}

/// The ONNX model bytes: input `x` `[N, d]` (float), output `logits` `[N, k]` and, with
/// [`Head::Softmax`], `probabilities` `[N, k]`.
///
/// # Errors
/// [`ExportError`]: an op without a fixed ONNX form (an adaptive pool whose window varies).
pub fn export(
    net: &Net,
    scaler: &Scaler,
    head: Head,
    metadata: Vec<(String, String)>,
) -> Result<Vec<u8>, ExportError> {
    let d = scaler.offset.len();
    let mut b = Builder {
        net,
        sd: net.state_dict(),
        nodes: Vec::new(),
        init: vec![
            tensor_f32("scaler.offset", &[d], &scaler.offset),
            tensor_f32("scaler.scale", &[d], &scaler.scale),
        ],
        n: 0,
    };
    let h = b.node("Sub", &["x", "scaler.offset"], vec![]);
    let mut h = b.node("Div", &[&h, "scaler.scale"], vec![]);
    let mut shape = vec![1];
    shape.extend_from_slice(&net.sample_shape);
    if net.sample_shape.len() > 1 {
        h = b.reshape(&h, &shape);
    }
    let (out, out_shape) = b.plan(&net.plan.clone(), vec![(h, shape)])?;
    // The output gets its public name through an Identity node (it may be the input itself).
    b.nodes.push(NodeProto {
        input: vec![out],
        output: vec!["logits".into()],
        name: "logits".into(),
        op_type: "Identity".into(),
        ..Default::default()
    });
    let width = &out_shape[1..];
    let mut outputs = vec![value("logits", width)];
    if head == Head::Softmax {
        b.nodes.push(NodeProto {
            input: vec!["logits".into()],
            output: vec!["probabilities".into()],
            name: "softmax".into(),
            op_type: "Softmax".into(),
            attribute: vec![int("axis", 1)],
            ..Default::default()
        });
        outputs.push(value("probabilities", width));
    }
    let model = ModelProto {
        ir_version: 8,
        producer_name: "ccr".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(GraphProto {
            node: b.nodes,
            name: "ccr_model".into(),
            initializer: b.init,
            input: vec![value("x", &[d])],
            output: outputs,
        }),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        metadata_props: metadata
            .into_iter()
            .map(|(key, value)| StringStringEntryProto { key, value })
            .collect(),
    };
    Ok(model.encode_to_vec())
}
