//! The graph as a Burn module: its parameter layers, the forward interpreter, shape checking,
//! and its tensors by PyTorch's `state_dict` names.

use std::sync::Arc;

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Embedding, EmbeddingConfig, GroupNorm, GroupNormConfig, LayerNorm,
    LayerNormConfig, Linear, LinearConfig, PaddingConfig2d,
};
use burn::tensor::{Device, Tensor, TensorData};

use super::ops::{Val, each};
use super::spec::{ConvSpec, GraphSpec, LayerClass, LayerDef, Op, SpecError, err};

/// A layer with parameters, in Burn's layout (a linear weight is `[in, out]`; a 1-d
/// convolution is a 2-d one of height 1).
#[derive(Module, Debug)]
pub enum ParamLayer {
    /// `nn.Linear`.
    Linear(Linear),
    /// `nn.Conv1d` / `nn.Conv2d`.
    Conv(Conv2d),
    /// `nn.ConvTranspose2d`.
    ConvTranspose(ConvTranspose2d),
    /// `nn.BatchNorm1d` / `nn.BatchNorm2d`.
    BatchNorm(BatchNorm),
    /// `nn.GroupNorm`.
    GroupNorm(GroupNorm),
    /// `nn.LayerNorm`.
    LayerNorm(LayerNorm),
    /// `nn.Embedding`.
    Embedding(Embedding),
}

/// What each layer of a graph is, by the index of [`GraphSpec::layers`].
#[derive(Debug, Clone)]
pub(crate) enum Slot {
    /// Index into [`GraphNet::params`], with the layer's class.
    Param(usize, LayerClass),
    /// A parameterless layer.
    Func(super::ops::Func),
    /// A submodule.
    Sub(Arc<Plan>),
}

/// A graph's forward plan: its spec and what each layer is.
#[derive(Debug, Clone)]
pub struct Plan {
    pub(crate) spec: GraphSpec,
    pub(crate) slots: Vec<Slot>,
}

/// One parameter layer's record: its PyTorch name prefix and its class.
#[derive(Debug, Clone)]
pub struct ParamInfo {
    /// The `state_dict` prefix, such as `_layers.conv1` or `_layers.b1._layers.fc`.
    pub name: String,
    /// The class.
    pub class: LayerClass,
}

/// A model graph ([`GraphSpec`]) as a Burn module. The input is `[batch, ...sample_shape]`.
#[derive(Module, Debug)]
pub struct GraphNet {
    /// The parameter layers, depth first in config order.
    pub params: Vec<ParamLayer>,
    #[module(skip)]
    pub(crate) plan: Arc<Plan>,
    #[module(skip)]
    pub(crate) info: Arc<Vec<ParamInfo>>,
    /// The shape of one sample (without the batch).
    #[module(skip)]
    pub sample_shape: Vec<usize>,
    /// The graph as a dense chain, when it is one (found once, at construction).
    #[module(skip)]
    pub(crate) dense: Option<Chain>,
}

/// A dense chain: parameter-layer indices in order, and the activation between them.
#[derive(Debug, Clone)]
pub(crate) struct Chain {
    pub(crate) layers: Vec<usize>,
    pub(crate) tanh: bool,
}

/// The layer input and the zero "probe" added to its output, recorded per parameter layer by
/// [`GraphNet::forward_probed`]: the probe's gradient is the layer's output gradient, per sample
/// (the loss is a sum over samples).
#[derive(Debug, Clone)]
pub struct ProbeRecord {
    /// Index into [`GraphNet::params`].
    pub layer: usize,
    /// The layer's input, detached, on the plain backend.
    pub input: Val,
    /// The probe (zeros of the output's shape, tracked).
    pub probe: Val,
}

impl GraphNet {
    /// Builds the graph with fresh parameters (PyTorch's default initialisation: uniform in
    /// ±1/√fan_in for linear and convolution layers) for samples of `sample_shape`; `prefix` is
    /// the `state_dict` prefix of the top-level layers (`_layers.` for DEPA's `ModelFactory`).
    ///
    /// # Errors
    /// [`SpecError`] naming the step whose shapes do not fit (for instance a linear layer's
    /// `in_features` against its input), checked by [`check_shapes`].
    pub fn new(
        spec: &GraphSpec,
        sample_shape: &[usize],
        prefix: &str,
        device: &Device,
    ) -> Result<Self, SpecError> {
        let mut input = vec![1];
        input.extend_from_slice(sample_shape);
        check_shapes(spec, &[input], "")?;
        let mut params = Vec::new();
        let mut info = Vec::new();
        let plan = build_plan(spec, prefix, device, &mut params, &mut info);
        let mut net = Self {
            params,
            plan: Arc::new(plan),
            info: Arc::new(info),
            sample_shape: sample_shape.to_vec(),
            dense: None,
        };
        net.dense = net.dense_chain();
        Ok(net)
    }

    /// The output's shape for a batch of one, `[1, ...]`.
    pub fn output_shape(&self) -> Vec<usize> {
        let mut input = vec![1];
        input.extend_from_slice(&self.sample_shape);
        check_shapes(&self.plan.spec, &[input], "").unwrap_or_default()
    }

    /// The parameter layers' names and classes, in [`GraphNet::params`] order.
    pub fn param_info(&self) -> &[ParamInfo] {
        &self.info
    }

    /// `[batch, features]` rows (each the sample flattened) → the output, `[batch, out]`.
    pub fn forward(&self, x: Tensor<2>, train: bool) -> Tensor<2> {
        self.forward_probed(x, train, None)
    }

    /// As [`GraphNet::forward`]; with `probes`, a zero tracked tensor is added to each
    /// parameter layer's output and recorded with the layer's input.
    pub fn forward_probed(
        &self,
        x: Tensor<2>,
        train: bool,
        mut probes: Option<&mut Vec<ProbeRecord>>,
    ) -> Tensor<2> {
        let b = x.dims()[0];
        let mut shape = vec![b];
        shape.extend_from_slice(&self.sample_shape);
        let input = Val::R2(x).reshape(&shape);
        let out = self.run(&self.plan, vec![input], train, &mut probes);
        out.r2()
    }

    fn run(
        &self,
        plan: &Plan,
        inputs: Vec<Val>,
        train: bool,
        probes: &mut Option<&mut Vec<ProbeRecord>>,
    ) -> Val {
        let mut env: Vec<(&str, Val)> = plan
            .spec
            .inputs
            .iter()
            .map(String::as_str)
            .zip(inputs)
            .collect();
        let get = |env: &Vec<(&str, Val)>, n: &str| {
            env.iter()
                .rev()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.clone())
                .expect("checked: names are defined before use")
        };
        for step in &plan.spec.steps {
            let mut cur: Vec<Val> = step.inputs.iter().map(|n| get(&env, n)).collect();
            for op in &step.ops {
                let v = match op {
                    Op::Func(f) => f.apply(cur, train),
                    Op::Layer(i) => match &plan.slots[*i] {
                        Slot::Func(f) => f.apply(cur, train),
                        Slot::Sub(sub) => self.run(sub, cur, train, probes),
                        Slot::Param(k, class) => {
                            let x = cur.into_iter().next().expect("checked: one input");
                            let saved = probes.as_ref().map(|_| inner_detached(&x));
                            let mut z = self.apply_param(*k, class, x);
                            if let (Some(p), Some(input)) = (probes.as_deref_mut(), saved) {
                                let probe = each!(z.clone(), t => t.zeros_like().require_grad());
                                z = add(z, probe.clone());
                                p.push(ProbeRecord {
                                    layer: *k,
                                    input,
                                    probe,
                                });
                            }
                            z
                        }
                    },
                };
                cur = vec![v];
            }
            if let Some(o) = &step.output {
                env.push((o.as_str(), cur.into_iter().next().expect("one value")));
            }
        }
        get(&env, &plan.spec.outputs[0])
    }

    fn apply_param(&self, k: usize, class: &LayerClass, x: Val) -> Val {
        match (&self.params[k], class) {
            (ParamLayer::Linear(l), _) => each!(x, t => l.forward(t)),
            (ParamLayer::Conv(c), LayerClass::Conv(s)) if s.dims == 1 => {
                let [b, ch, len] = x.dims()[..] else {
                    unreachable!("checked: a 1-d convolution's input is [N, C, L]")
                };
                let y = c.forward(x.r3().reshape([b, ch, 1, len]));
                let [_, o, _, l2] = y.dims();
                Val::R3(y.reshape([b, o, l2]))
            }
            (ParamLayer::Conv(c), _) => Val::R4(c.forward(x.r4())),
            (ParamLayer::ConvTranspose(c), _) => Val::R4(c.forward(x.r4())),
            (ParamLayer::BatchNorm(n), _) => each!(x, t => n.forward(t)),
            (ParamLayer::GroupNorm(n), _) => each!(x, t => n.forward(t)),
            (ParamLayer::LayerNorm(n), _) => each!(x, t => n.forward(t)),
            (ParamLayer::Embedding(e), _) => Val::R3(e.forward(x.r2().int())),
        }
    }
}

/// A convolution's explicit padding `[h, w]`.
pub(crate) fn padding_of(c: &Conv2d) -> [usize; 2] {
    match c.padding {
        PaddingConfig2d::Explicit(t, l, _, _) => [t, l],
        _ => [0, 0],
    }
}

fn add(a: Val, b: Val) -> Val {
    match (a, b) {
        (Val::R1(x), Val::R1(y)) => Val::R1(x + y),
        (Val::R2(x), Val::R2(y)) => Val::R2(x + y),
        (Val::R3(x), Val::R3(y)) => Val::R3(x + y),
        (Val::R4(x), Val::R4(y)) => Val::R4(x + y),
        (a, _) => a,
    }
}

/// The value without autodiff tracking, on the plain backend.
pub(crate) fn inner_detached(v: &Val) -> Val {
    each!(v.clone(), t => t.detach().inner())
}

fn build_plan(
    spec: &GraphSpec,
    prefix: &str,
    device: &Device,
    params: &mut Vec<ParamLayer>,
    info: &mut Vec<ParamInfo>,
) -> Plan {
    let slots = spec
        .layers
        .iter()
        .map(|l| {
            let name = format!("{prefix}{}", l.name);
            match &l.def {
                LayerDef::Sub(g) => Slot::Sub(Arc::new(build_plan(
                    g,
                    &format!("{name}._layers."),
                    device,
                    params,
                    info,
                ))),
                LayerDef::Class(LayerClass::Stateless(f)) => Slot::Func(f.clone()),
                LayerDef::Class(c) => {
                    params.push(init_layer(c, device));
                    info.push(ParamInfo {
                        name,
                        class: c.clone(),
                    });
                    Slot::Param(params.len() - 1, c.clone())
                }
            }
        })
        .collect();
    Plan {
        spec: spec.clone(),
        slots,
    }
}

fn conv_padding(s: &ConvSpec) -> PaddingConfig2d {
    let [ph, pw] = s.padding;
    PaddingConfig2d::Explicit(ph, pw, ph, pw)
}

fn init_layer(c: &LayerClass, device: &Device) -> ParamLayer {
    match c {
        LayerClass::Linear { d_in, d_out, bias } => ParamLayer::Linear(
            LinearConfig::new(*d_in, *d_out)
                .with_bias(*bias)
                .init(device),
        ),
        LayerClass::Conv(s) => ParamLayer::Conv(
            Conv2dConfig::new([s.c_in, s.c_out], s.kernel)
                .with_stride(s.stride)
                .with_dilation(s.dilation)
                .with_groups(s.groups)
                .with_padding(conv_padding(s))
                .with_bias(s.bias)
                .init(device),
        ),
        LayerClass::ConvTranspose2d(s) => ParamLayer::ConvTranspose(
            ConvTranspose2dConfig::new([s.c_in, s.c_out], s.kernel)
                .with_stride(s.stride)
                .with_dilation(s.dilation)
                .with_groups(s.groups)
                .with_padding(s.padding)
                .with_padding_out(s.output_padding)
                .with_bias(s.bias)
                .init(device),
        ),
        LayerClass::BatchNorm {
            features,
            eps,
            momentum,
        } => ParamLayer::BatchNorm(
            BatchNormConfig::new(*features)
                .with_epsilon(*eps)
                .with_momentum(*momentum)
                .init(device),
        ),
        LayerClass::GroupNorm {
            groups,
            channels,
            eps,
            affine,
        } => ParamLayer::GroupNorm(
            GroupNormConfig::new(*groups, *channels)
                .with_epsilon(*eps)
                .with_affine(*affine)
                .init(device),
        ),
        LayerClass::LayerNorm {
            d,
            eps,
            affine: _,
            bias,
        } => ParamLayer::LayerNorm(
            LayerNormConfig::new(*d)
                .with_epsilon(*eps)
                .with_bias(*bias)
                .init(device),
        ),
        LayerClass::Embedding { num, dim } => ParamLayer::Embedding(
            EmbeddingConfig::new(*num, *dim)
                .with_initializer(burn::nn::Initializer::Normal {
                    mean: 0.0,
                    std: 1.0,
                })
                .init(device),
        ),
        LayerClass::Stateless(_) => unreachable!("stateless layers have no parameters"),
    }
}

/// Checks every step's shapes for inputs of `inputs` shapes (the batch first), returning the
/// output's shape.
///
/// # Errors
/// [`SpecError`] naming the step and op (`forward[i].ops[k]`) whose input does not fit.
pub fn check_shapes(
    spec: &GraphSpec,
    inputs: &[Vec<usize>],
    at: &str,
) -> Result<Vec<usize>, SpecError> {
    if inputs.len() != spec.inputs.len() {
        return Err(err(
            format!("{at}input"),
            format!(
                "takes {} input(s), called with {}",
                spec.inputs.len(),
                inputs.len()
            ),
        ));
    }
    let mut env: Vec<(&str, Vec<usize>)> = spec
        .inputs
        .iter()
        .map(String::as_str)
        .zip(inputs.iter().cloned())
        .collect();
    let get = |env: &Vec<(&str, Vec<usize>)>, n: &str| {
        env.iter()
            .rev()
            .find(|(k, _)| *k == n)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    for (i, step) in spec.steps.iter().enumerate() {
        let mut cur: Vec<Vec<usize>> = step.inputs.iter().map(|n| get(&env, n)).collect();
        for (k, op) in step.ops.iter().enumerate() {
            let path = format!("{at}forward[{i}].ops[{k}]");
            let out = match op {
                Op::Func(f) => f.out_shape(&cur).map_err(|r| err(&path, r))?,
                Op::Layer(l) => {
                    let entry = &spec.layers[*l];
                    match &entry.def {
                        LayerDef::Sub(g) => {
                            check_shapes(g, &cur, &format!("{path}({}).", entry.name))?
                        }
                        LayerDef::Class(LayerClass::Stateless(f)) => f
                            .out_shape(&cur)
                            .map_err(|r| err(&path, format!("layer `{}`: {r}", entry.name)))?,
                        LayerDef::Class(c) => {
                            if cur.len() != 1 {
                                return Err(err(&path, "a layer takes one input"));
                            }
                            layer_shape(c, &cur[0])
                                .map_err(|r| err(&path, format!("layer `{}`: {r}", entry.name)))?
                        }
                    }
                }
            };
            cur = vec![out];
        }
        if let Some(o) = &step.output {
            env.push((o.as_str(), cur.into_iter().next().unwrap_or_default()));
        }
    }
    Ok(get(&env, &spec.outputs[0]))
}

pub(crate) fn layer_shape(c: &LayerClass, s: &[usize]) -> Result<Vec<usize>, String> {
    let r = s.len();
    let conv_out = |n: usize, k: usize, st: usize, p: usize, d: usize| {
        let span = d * (k - 1) + 1;
        (n + 2 * p >= span).then(|| (n + 2 * p - span) / st + 1)
    };
    Ok(match c {
        LayerClass::Linear { d_in, d_out, .. } => {
            if r < 2 || s[r - 1] != *d_in {
                return Err(format!(
                    "in_features is {d_in}, its input is {s:?} (the last dimension must be {d_in})"
                ));
            }
            let mut o = s.to_vec();
            o[r - 1] = *d_out;
            o
        }
        LayerClass::Conv(p) => {
            let want = if p.dims == 1 { 3 } else { 4 };
            if r != want || s[1] != p.c_in {
                return Err(format!(
                    "takes [N, {}{}], its input is {s:?}",
                    p.c_in,
                    if p.dims == 1 { ", L" } else { ", H, W" }
                ));
            }
            let mut o = vec![s[0], p.c_out];
            let spatial = &s[2..];
            let off = 2 - spatial.len();
            for (j, &n) in spatial.iter().enumerate() {
                let a = j + off;
                o.push(
                    conv_out(n, p.kernel[a], p.stride[a], p.padding[a], p.dilation[a])
                        .ok_or_else(|| format!("the kernel is larger than the input {s:?}"))?,
                );
            }
            o
        }
        LayerClass::ConvTranspose2d(p) => {
            if r != 4 || s[1] != p.c_in {
                return Err(format!("takes [N, {}, H, W], its input is {s:?}", p.c_in));
            }
            let o = |a: usize| {
                ((s[2 + a] - 1) * p.stride[a]
                    + p.dilation[a] * (p.kernel[a] - 1)
                    + p.output_padding[a]
                    + 1)
                .checked_sub(2 * p.padding[a])
            };
            match (o(0), o(1)) {
                (Some(h), Some(w)) if h > 0 && w > 0 => vec![s[0], p.c_out, h, w],
                _ => return Err("the padding is larger than the output".into()),
            }
        }
        LayerClass::BatchNorm { features, .. } => {
            if r < 2 || s[1] != *features {
                return Err(format!("num_features is {features}, its input is {s:?}"));
            }
            s.to_vec()
        }
        LayerClass::GroupNorm {
            groups, channels, ..
        } => {
            if r < 2 || s[1] != *channels || channels % groups != 0 {
                return Err(format!(
                    "num_channels is {channels} (in {groups} groups), its input is {s:?}"
                ));
            }
            s.to_vec()
        }
        LayerClass::LayerNorm { d, .. } => {
            if s[r - 1] != *d {
                return Err(format!("normalized_shape is {d}, its input is {s:?}"));
            }
            s.to_vec()
        }
        LayerClass::Embedding { dim, .. } => {
            if r != 2 {
                return Err(format!("takes [N, T] token ids, its input is {s:?}"));
            }
            vec![s[0], s[1], *dim]
        }
        LayerClass::Stateless(f) => f.out_shape(&[s.to_vec()])?,
    })
}

/// Looks a tensor up by its `state_dict` name: its shape and f32 values.
pub type TensorSource<'a> = dyn Fn(&str) -> Option<(Vec<usize>, Vec<f32>)> + 'a;

/// A tensor by its PyTorch `state_dict` name: shape and f32 values in PyTorch's layout.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// Such as `_layers.fc1.weight`.
    pub name: String,
    /// PyTorch's shape (a linear weight is `[out, in]`).
    pub shape: Vec<usize>,
    /// Row-major values.
    pub values: Vec<f32>,
}

fn vec_of<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap_or_default()
}

impl GraphNet {
    /// Every tensor of the `state_dict` (weights, biases, BatchNorm's running statistics), by
    /// PyTorch's names and layouts.
    pub fn state_dict(&self) -> Vec<NamedTensor> {
        let mut out = Vec::new();
        let mut put = |name: String, shape: Vec<usize>, values: Vec<f32>| {
            out.push(NamedTensor {
                name,
                shape,
                values,
            })
        };
        for (layer, info) in self.params.iter().zip(self.info.iter()) {
            let n = &info.name;
            match (layer, &info.class) {
                (ParamLayer::Linear(l), _) => {
                    let w = l.weight.val().transpose();
                    put(format!("{n}.weight"), w.dims().to_vec(), vec_of(w));
                    if let Some(b) = &l.bias {
                        put(format!("{n}.bias"), b.dims().to_vec(), vec_of(b.val()));
                    }
                }
                (
                    ParamLayer::Conv(Conv2d { weight, bias, .. })
                    | ParamLayer::ConvTranspose(ConvTranspose2d { weight, bias, .. }),
                    class,
                ) => {
                    let mut dims = weight.dims().to_vec();
                    if matches!(class, LayerClass::Conv(s) if s.dims == 1) {
                        dims.remove(2);
                    }
                    put(format!("{n}.weight"), dims, vec_of(weight.val()));
                    if let Some(b) = bias {
                        put(format!("{n}.bias"), b.dims().to_vec(), vec_of(b.val()));
                    }
                }
                (ParamLayer::BatchNorm(b), _) => {
                    let d = b.gamma.dims().to_vec();
                    put(format!("{n}.weight"), d.clone(), vec_of(b.gamma.val()));
                    put(format!("{n}.bias"), d.clone(), vec_of(b.beta.val()));
                    put(
                        format!("{n}.running_mean"),
                        d.clone(),
                        vec_of(b.running_mean.value()),
                    );
                    put(format!("{n}.running_var"), d, vec_of(b.running_var.value()));
                }
                (ParamLayer::GroupNorm(g), _) => {
                    if let (Some(w), Some(b)) = (&g.gamma, &g.beta) {
                        put(format!("{n}.weight"), w.dims().to_vec(), vec_of(w.val()));
                        put(format!("{n}.bias"), b.dims().to_vec(), vec_of(b.val()));
                    }
                }
                (ParamLayer::LayerNorm(l), _) => {
                    put(
                        format!("{n}.weight"),
                        l.gamma.dims().to_vec(),
                        vec_of(l.gamma.val()),
                    );
                    if let Some(b) = &l.beta {
                        put(format!("{n}.bias"), b.dims().to_vec(), vec_of(b.val()));
                    }
                }
                (ParamLayer::Embedding(e), _) => {
                    put(
                        format!("{n}.weight"),
                        e.weight.dims().to_vec(),
                        vec_of(e.weight.val()),
                    );
                }
            }
        }
        out
    }

    /// Replaces every parameter with the tensor of its `state_dict` name from `get` (PyTorch's
    /// layout). A name `get` does not know, or a tensor of another shape, is an error; a tensor
    /// `get` has that the graph does not use is the caller's to refuse.
    ///
    /// # Errors
    /// A message naming the tensor.
    pub fn load_state_dict(
        mut self,
        get: &TensorSource<'_>,
        device: &Device,
    ) -> Result<Self, String> {
        let want = self.state_dict();
        let mut vals = std::collections::HashMap::new();
        for t in &want {
            let (shape, v) = get(&t.name).ok_or_else(|| format!("no tensor `{}`", t.name))?;
            if shape != t.shape {
                return Err(format!(
                    "`{}` is {shape:?}, this model needs {:?}",
                    t.name, t.shape
                ));
            }
            vals.insert(t.name.clone(), v);
        }
        let take = |n: String| vals.get(&n).cloned().unwrap_or_default();
        let info = self.info.clone();
        for (layer, i) in self.params.iter_mut().zip(info.iter()) {
            let n = &i.name;
            match layer {
                ParamLayer::Linear(l) => {
                    let [din, dout] = l.weight.dims();
                    let w = t2(take(format!("{n}.weight")), [dout, din], device).transpose();
                    l.weight = Param::from_tensor(w);
                    if l.bias.is_some() {
                        l.bias = Some(Param::from_tensor(t1(take(format!("{n}.bias")), device)));
                    }
                }
                ParamLayer::Conv(Conv2d { weight, bias, .. })
                | ParamLayer::ConvTranspose(ConvTranspose2d { weight, bias, .. }) => {
                    let d = weight.dims();
                    *weight = Param::from_tensor(Tensor::from_data(
                        TensorData::new(take(format!("{n}.weight")), d),
                        device,
                    ));
                    if bias.is_some() {
                        *bias = Some(Param::from_tensor(t1(take(format!("{n}.bias")), device)));
                    }
                }
                ParamLayer::BatchNorm(b) => {
                    b.gamma = Param::from_tensor(t1(take(format!("{n}.weight")), device));
                    b.beta = Param::from_tensor(t1(take(format!("{n}.bias")), device));
                    b.running_mean = burn::module::RunningState::new(t1(
                        take(format!("{n}.running_mean")),
                        device,
                    ));
                    b.running_var = burn::module::RunningState::new(t1(
                        take(format!("{n}.running_var")),
                        device,
                    ));
                }
                ParamLayer::GroupNorm(g) => {
                    if g.gamma.is_some() {
                        g.gamma = Some(Param::from_tensor(t1(take(format!("{n}.weight")), device)));
                        g.beta = Some(Param::from_tensor(t1(take(format!("{n}.bias")), device)));
                    }
                }
                ParamLayer::LayerNorm(l) => {
                    l.gamma = Param::from_tensor(t1(take(format!("{n}.weight")), device));
                    if l.beta.is_some() {
                        l.beta = Some(Param::from_tensor(t1(take(format!("{n}.bias")), device)));
                    }
                }
                ParamLayer::Embedding(e) => {
                    let d = e.weight.dims();
                    e.weight = Param::from_tensor(t2(take(format!("{n}.weight")), d, device));
                }
            }
        }
        Ok(self)
    }
}

fn t1(v: Vec<f32>, device: &Device) -> Tensor<1> {
    let n = v.len();
    Tensor::from_data(TensorData::new(v, [n]), device)
}

fn t2(v: Vec<f32>, d: [usize; 2], device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(v, d), device)
}
