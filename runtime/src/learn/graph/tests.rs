//! The graph's tests: the grammar's errors, and per layer type the per-sample gradients against
//! Burn's autodiff one sample at a time.

use burn::module::ParamId;
use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData};
use serde_json::json;

use super::net::GraphNet;
use super::ops::Val;
use super::spec::GraphSpec;
use super::{per_sample, step};
use crate::learn::loss::Target;
use crate::learn::model::device;
use crate::learn::testing::{close, vecf};

fn spec(v: serde_json::Value) -> GraphSpec {
    GraphSpec::parse(&v).unwrap()
}

fn parse_err(v: serde_json::Value) -> String {
    GraphSpec::parse(&v).unwrap_err().to_string()
}

fn val_vec(v: Val) -> Vec<f32> {
    match v {
        Val::R1(t) => vecf(t),
        Val::R2(t) => vecf(t),
        Val::R3(t) => vecf(t),
        Val::R4(t) => vecf(t),
    }
}

fn grad_vec(g: &GradientsParams, id: ParamId, rank: usize) -> Vec<f32> {
    match rank {
        1 => vecf(g.get::<1>(id).unwrap()),
        2 => vecf(g.get::<2>(id).unwrap()),
        3 => vecf(g.get::<3>(id).unwrap()),
        _ => vecf(g.get::<4>(id).unwrap()),
    }
}

/// Per-sample norms and the weighted sum `Σ cᵢ gᵢ` from the probes equal Burn's autodiff run on
/// each sample alone.
fn per_sample_matches_autodiff(what: &str, model: serde_json::Value, shape: &[usize], x: Vec<f32>) {
    let _seeded = crate::learn::testing::seeded();
    let device = device();
    device.seed(7);
    let net = GraphNet::new(&spec(model), shape, "_layers.", &device).unwrap();
    let d: usize = shape.iter().product();
    let b = x.len() / d;
    let labels: Vec<usize> = (0..b).map(|i| i % 3).collect();
    let target = |rows: &[usize]| Target::Classes {
        labels: rows.iter().map(|&i| labels[i]).collect(),
        classes: 3,
        label_smoothing: 0.0,
    };
    let xb = Tensor::<2>::from_data(TensorData::new(x.clone(), [b, d]), &device);
    let frozen = net.clone();
    let mut records = Vec::new();
    let out = frozen.forward_probed(xb, true, Some(&mut records));
    let all: Vec<usize> = (0..b).collect();
    let (delta, _) =
        crate::learn::loss::loss_and_gradient(out.clone().detach().inner(), &target(&all));
    let grads = (out * Tensor::from_inner(delta)).sum().backward();
    let pieces = per_sample::pieces(&frozen, &records, &grads);
    let norms = vecf(step::per_sample_norms(&pieces));
    let c: Vec<f32> = (0..b).map(|i| (i + 1) as f32 / 10.0).collect();
    let ct = Tensor::<1>::from_data(TensorData::new(c.clone(), [b]), &device.clone().inner());
    let shapes = step::shapes(&net);
    assert_eq!(pieces.len(), shapes.len(), "{what}: a piece per parameter");
    let mut want_sum: Vec<Vec<f32>> = shapes
        .iter()
        .map(|(_, s)| vec![0.0; s.iter().product()])
        .collect();
    for i in 0..b {
        let xi = Tensor::<2>::from_data(
            TensorData::new(x[i * d..(i + 1) * d].to_vec(), [1, d]),
            &device,
        );
        let (g, _) = step::plain(&net, xi, &target(&[i]), 1.0);
        let mut sq = 0.0f32;
        for (k, (id, s)) in shapes.iter().enumerate() {
            let gi = grad_vec(&g, *id, s.len());
            sq += gi.iter().map(|v| v * v).sum::<f32>();
            for (w, v) in want_sum[k].iter_mut().zip(&gi) {
                *w += c[i] * v;
            }
        }
        close(
            &[norms[i]],
            &[sq.sqrt()],
            &format!("{what}: sample {i} norm"),
        );
    }
    for (id, p) in &pieces {
        let k = shapes.iter().position(|(j, _)| j == id).unwrap();
        close(
            &val_vec(p.weighted_sum(&ct)),
            &want_sum[k],
            &format!("{what}: weighted sum of parameter {k}"),
        );
    }
}

fn data(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) % 1000) as f32 / 500.0
                - 1.0
        })
        .collect()
}

#[test]
fn linear_layers_per_sample_gradients_equal_autodiff() {
    per_sample_matches_autodiff(
        "mlp",
        json!({"layers": {"fc1": {"class": "nn.Linear", "params": {"in_features": 5, "out_features": 4}},
                          "fc2": {"class": "nn.Linear", "params": {"in_features": 4, "out_features": 3}}},
               "input": ["x"],
               "forward": [{"ops": ["fc1", "F.tanh", "fc2"], "input": ["x"], "output": "y"}],
               "output": ["y"]}),
        &[5],
        data(5 * 5, 1),
    );
}

#[test]
fn conv2d_per_sample_gradients_equal_autodiff() {
    per_sample_matches_autodiff(
        "conv2d groups 2, stride 2, padding 1, dilation 2",
        json!({"layers": {"c": {"class": "nn.Conv2d", "params": {"in_channels": 2, "out_channels": 4, "kernel_size": [3, 2], "stride": 2, "padding": 1, "dilation": [1, 2], "groups": 2}},
                          "pool": {"class": "nn.MaxPool2d", "params": {"kernel_size": 2}},
                          "fc": {"class": "nn.Linear", "params": {"in_features": 8, "out_features": 3}}},
               "input": ["x"],
               "forward": [{"ops": ["c", "F.relu", "pool", ["torch.flatten", {"start_dim": 1}], "fc"], "input": ["x"], "output": "y"}],
               "output": ["y"]}),
        &[2, 6, 7],
        data(4 * 2 * 6 * 7, 2),
    );
}

#[test]
fn conv1d_and_linear_over_positions_per_sample_gradients_equal_autodiff() {
    per_sample_matches_autodiff(
        "conv1d + linear over [B, C, L]",
        json!({"layers": {"c": {"class": "nn.Conv1d", "params": {"in_channels": 3, "out_channels": 4, "kernel_size": 3, "padding": 1}},
                          "fc": {"class": "nn.Linear", "params": {"in_features": 5, "out_features": 2}},
                          "head": {"class": "nn.Linear", "params": {"in_features": 8, "out_features": 3}}},
               "input": ["x"],
               "forward": [{"ops": ["c", "F.gelu", "fc", ["torch.flatten", {"start_dim": 1}], "head"], "input": ["x"], "output": "y"}],
               "output": ["y"]}),
        &[3, 5],
        data(4 * 3 * 5, 3),
    );
}

#[test]
fn conv_transpose2d_per_sample_gradients_equal_autodiff() {
    per_sample_matches_autodiff(
        "conv transpose stride 2, padding 1, output_padding 1",
        json!({"layers": {"t": {"class": "nn.ConvTranspose2d", "params": {"in_channels": 2, "out_channels": 3, "kernel_size": 3, "stride": 2, "padding": 1, "output_padding": 1}},
                          "fc": {"class": "nn.Linear", "params": {"in_features": 48, "out_features": 3}}},
               "input": ["x"],
               "forward": [{"ops": ["t", "F.relu", ["torch.flatten", {"start_dim": 1}], "fc"], "input": ["x"], "output": "y"}],
               "output": ["y"]}),
        &[2, 2, 2],
        data(4 * 2 * 2 * 2, 4),
    );
}

#[test]
fn norm_layers_per_sample_gradients_equal_autodiff() {
    per_sample_matches_autodiff(
        "group norm + layer norm",
        json!({"layers": {"c": {"class": "nn.Conv1d", "params": {"in_channels": 2, "out_channels": 4, "kernel_size": 1}},
                          "gn": {"class": "nn.GroupNorm", "params": {"num_groups": 2, "num_channels": 4}},
                          "ln": {"class": "nn.LayerNorm", "params": {"normalized_shape": 3}},
                          "fc": {"class": "nn.Linear", "params": {"in_features": 12, "out_features": 3}}},
               "input": ["x"],
               "forward": [{"ops": ["c", "gn", "F.silu", "ln", ["torch.flatten", {"start_dim": 1}], "fc"], "input": ["x"], "output": "y"}],
               "output": ["y"]}),
        &[2, 3],
        data(5 * 2 * 3, 5),
    );
}

#[test]
fn embedding_per_sample_gradients_equal_autodiff() {
    // Token ids with repeats inside a sample (the Gram matrix's off-diagonal terms).
    let ids: Vec<f32> = [1, 3, 1, 0, 2, 2, 2, 4, 0, 0, 4, 1]
        .iter()
        .map(|&v| v as f32)
        .collect();
    per_sample_matches_autodiff(
        "embedding + linear over tokens + mean",
        json!({"layers": {"emb": {"class": "nn.Embedding", "params": {"num_embeddings": 5, "embedding_dim": 4}},
                          "fc": {"class": "nn.Linear", "params": {"in_features": 4, "out_features": 3}}},
               "input": ["x"],
               "forward": [{"ops": ["emb", "fc", ["torch.mean", {"dim": 1}]], "input": ["x"], "output": "y"}],
               "output": ["y"]}),
        &[3],
        ids,
    );
}

#[test]
fn batch_norm_is_refused_under_dp_naming_the_layer() {
    let _seeded = crate::learn::testing::seeded();
    let device = device();
    let net = GraphNet::new(
        &spec(json!({"layers": {"bn": {"class": "nn.BatchNorm1d", "params": {"num_features": 3}}},
                     "input": ["x"], "forward": [{"ops": ["bn"], "input": ["x"], "output": "y"}], "output": ["y"]})),
        &[3],
        "_layers.",
        &device,
    )
    .unwrap();
    let e = per_sample::check_private(net.param_info())
        .unwrap_err()
        .to_string();
    assert!(e.contains("_layers.bn") && e.contains("GroupNorm"), "{e}");
}

#[test]
fn submodules_take_their_placeholders_and_name_parameters_as_pytorch_does() {
    let _seeded = crate::learn::testing::seeded();
    let device = device();
    let s = spec(json!({
        "submodules": {"Block": {"layers": {"fc": {"class": "nn.Linear", "params": {"in_features": "$d", "out_features": "$d"}}},
                                  "input": ["h"], "forward": [{"ops": ["fc", "F.relu"], "input": ["h"], "output": "o"}], "output": ["o"]}},
        "layers": {"b1": {"submodule": "Block", "params": {"d": 4}},
                   "head": {"class": "nn.Linear", "params": {"in_features": 4, "out_features": 2}}},
        "input": ["x"],
        "forward": [{"ops": ["b1", "head"], "input": ["x"], "output": "y"}],
        "output": ["y"]}));
    let net = GraphNet::new(&s, &[4], "_layers.", &device).unwrap();
    let names: Vec<(String, Vec<usize>)> = net
        .state_dict()
        .into_iter()
        .map(|t| (t.name, t.shape))
        .collect();
    assert_eq!(
        names,
        vec![
            ("_layers.b1._layers.fc.weight".to_string(), vec![4, 4]),
            ("_layers.b1._layers.fc.bias".to_string(), vec![4]),
            ("_layers.head.weight".to_string(), vec![2, 4]),
            ("_layers.head.bias".to_string(), vec![2]),
        ]
    );
    // A state_dict round trip gives the same outputs.
    let sd = net.state_dict();
    let get = |n: &str| {
        sd.iter()
            .find(|t| t.name == n)
            .map(|t| (t.shape.clone(), t.values.iter().map(|v| v * 0.5).collect()))
    };
    let halved = GraphNet::new(&s, &[4], "_layers.", &device)
        .unwrap()
        .load_state_dict(&get, &device)
        .unwrap();
    let w = halved.state_dict();
    close(
        &w[0].values,
        &sd[0].values.iter().map(|v| v * 0.5).collect::<Vec<_>>(),
        "loaded",
    );
}

#[test]
fn grammar_errors_name_their_json_path() {
    let _seeded = crate::learn::testing::seeded();
    let base = |forward: serde_json::Value| {
        json!({"layers": {"fc": {"class": "nn.Linear", "params": {"in_features": 4, "out_features": 2}}},
               "input": ["x"], "forward": forward, "output": ["y"]})
    };
    let e = parse_err(base(
        json!([{"ops": ["F.nope"], "input": ["x"], "output": "y"}]),
    ));
    assert!(
        e.contains("`forward[0].ops[0]`") && e.contains("F.nope"),
        "{e}"
    );
    let e = parse_err(base(
        json!([{"ops": ["fc"], "input": ["z"], "output": "y"}]),
    ));
    assert!(
        e.contains("`forward[0].input[0]`") && e.contains("`z` is not defined"),
        "{e}"
    );
    let e = parse_err(base(json!([
        {"ops": ["fc"], "input": ["h"], "output": "y"},
        {"ops": ["F.relu"], "input": ["x"], "output": "h"}])));
    assert!(
        e.contains("`forward[0].input[0]`") && e.contains("a cycle"),
        "{e}"
    );
    let e = parse_err(base(
        json!([{"ops": [["torch.flatten", {"start_dim": 1, "out": "x"}]], "input": ["x"], "output": "y"}]),
    ));
    assert!(
        e.contains("`forward[0].ops[0][1].out`") && e.contains("denylisted"),
        "{e}"
    );
    let many: Vec<serde_json::Value> = (0..201)
        .map(|_| json!({"ops": ["F.relu"], "input": ["x"], "output": "y"}))
        .collect();
    let e = parse_err(base(json!(many)));
    assert!(e.contains("201 steps") && e.contains("200"), "{e}");
    let ops = vec!["F.relu"; 11];
    let e = parse_err(base(json!([{"ops": ops, "input": ["x"], "output": "y"}])));
    assert!(e.contains("11 ops"), "{e}");
    let e = parse_err(
        json!({"layers": {"fc": {"class": "nn.Linear", "params": {"in_features": 4, "out_feature": 2}}},
        "input": ["x"], "forward": [], "output": ["x"]}),
    );
    assert!(
        e.contains("`layers.fc.params.out_features`") && e.contains("required"),
        "{e}"
    );
    let e = parse_err(
        json!({"layers": {"fc": {"class": "nn.Linear", "params": {"in_features": 4, "out_features": 2, "bogus": 1}}},
        "input": ["x"], "forward": [], "output": ["x"]}),
    );
    assert!(e.contains("`layers.fc.params.bogus`"), "{e}");
    let e = parse_err(json!({"layers": {"l": {"class": "nn.LSTM", "params": {}}},
        "input": ["x"], "forward": [], "output": ["x"]}));
    assert!(
        e.contains("`layers.l.class`") && e.contains("nn.LSTM"),
        "{e}"
    );
    // Shapes are checked before training: 400 in_features against a [1, 10] input.
    let s = spec(
        json!({"layers": {"fc": {"class": "nn.Linear", "params": {"in_features": 400, "out_features": 2}}},
        "input": ["x"], "forward": [{"ops": ["fc"], "input": ["x"], "output": "y"}], "output": ["y"]}),
    );
    let e = GraphNet::new(&s, &[10], "", &device())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`forward[0].ops[0]`") && e.contains("in_features is 400"),
        "{e}"
    );
}

#[test]
fn cifar10s_model_config_parses_and_takes_32_by_32_images() {
    let _seeded = crate::learn::testing::seeded();
    let Ok(text) = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/depa/cifar10/config/model_config.json"
    )) else {
        eprintln!("skipped: ../shared/depa is absent");
        return;
    };
    let s = spec(serde_json::from_str(&text).unwrap());
    let net = GraphNet::new(&s, &[3, 32, 32], "_layers.", &device()).unwrap();
    let out = super::net::check_shapes(&s, &[vec![2, 3, 32, 32]], "").unwrap();
    assert_eq!(out, vec![2, 10]);
    assert_eq!(net.state_dict().len(), 10);
    let e = GraphNet::new(&s, &[3, 28, 28], "_layers.", &device())
        .unwrap_err()
        .to_string();
    assert!(e.contains("in_features is 400"), "{e}");
}

#[test]
fn unfolded_patches_times_the_weight_equal_burns_convolution() {
    let _seeded = crate::learn::testing::seeded();
    use burn::nn::PaddingConfig2d;
    use burn::nn::conv::Conv2dConfig;
    let device = device();
    for (stride, pad, dil, groups) in [
        ([1, 1], [0, 0], [1, 1], 1),
        ([2, 1], [1, 2], [1, 2], 2),
        ([1, 3], [2, 0], [2, 1], 1),
    ] {
        let c = Conv2dConfig::new([4, 6], [3, 2])
            .with_stride(stride)
            .with_dilation(dil)
            .with_groups(groups)
            .with_padding(PaddingConfig2d::Explicit(pad[0], pad[1], pad[0], pad[1]))
            .init(&device);
        let x = Tensor::<4>::from_data(
            TensorData::new(data(2 * 4 * 9 * 8, 3), [2, 4, 9, 8]),
            &device,
        );
        let want = vecf(c.forward(x.clone()));
        // F.unfold's patches [B, C·kh·kw, L] times each group's weight rows [O/g, C/g·kh·kw].
        let u = per_sample::unfold(x, [3, 2], stride, pad, dil);
        let [b, rows, l] = u.dims();
        let w = c.weight.val().reshape([6, 4 / groups * 6]);
        let (og, kg) = (6 / groups, rows / groups);
        let y = Tensor::cat(
            (0..groups)
                .map(|g| {
                    let wg = w
                        .clone()
                        .slice([g * og..(g + 1) * og, 0..kg])
                        .unsqueeze::<3>();
                    wg.matmul(u.clone().slice([0..b, g * kg..(g + 1) * kg, 0..l]))
                })
                .collect(),
            1,
        );
        let y = y + c.bias.as_ref().unwrap().val().reshape([1, 6, 1]);
        let got = vecf(y);
        close(
            &got,
            &want,
            &format!("stride {stride:?} padding {pad:?} dilation {dil:?} groups {groups}"),
        );
    }
}

#[test]
fn the_dense_fast_path_gives_autodiffs_and_the_probes_numbers() {
    let _seeded = crate::learn::testing::seeded();
    let device = device();
    for act in ["F.relu", "F.tanh"] {
        let s = spec(
            json!({"layers": {"a": {"class": "nn.Linear", "params": {"in_features": 5, "out_features": 6}},
                                       "b": {"class": "nn.Linear", "params": {"in_features": 6, "out_features": 4, "bias": false}},
                                       "c": {"class": "nn.Linear", "params": {"in_features": 4, "out_features": 3}}},
                            "input": ["x"],
                            "forward": [{"ops": ["a", act, "b"], "input": ["x"], "output": "h"},
                                        {"ops": [act, "c"], "input": ["h"], "output": "y"}],
                            "output": ["y"]}),
        );
        let net = GraphNet::new(&s, &[5], "", &device).unwrap();
        assert!(net.dense_chain().is_some(), "{act}: a dense chain");
        let x = Tensor::<2>::from_data(
            TensorData::new(data(7 * 5, 9).iter().map(|v| v * 3.0).collect(), [7, 5]),
            &device,
        );
        let target = Target::Classes {
            labels: vec![0, 2, 1, 1, 0, 2, 2],
            classes: 3,
            label_smoothing: 0.0,
        };
        let shapes = step::shapes(&net);
        let (fast, lf) = step::plain(&net, x.clone(), &target, 0.5);
        let (slow, ls) = step::plain_autodiff(&net, x.clone(), &target, 0.5);
        assert!((lf - ls).abs() < 1e-4, "{act}: loss {lf} vs {ls}");
        for (id, sh) in &shapes {
            close(
                &grad_vec(&fast, *id, sh.len()),
                &grad_vec(&slow, *id, sh.len()),
                &format!("{act}: plain gradient"),
            );
        }
        let (fast, _) = step::clipped(&net, x.clone(), &target, 0.05);
        let (slow, _) = step::clipped_probes(&net, x, &target, 0.05);
        for ((i, a), (j, b)) in fast.into_iter().zip(slow) {
            assert_eq!(i, j);
            close(&val_vec(a), &val_vec(b), &format!("{act}: clipped sum"));
        }
    }
    // With an activation after the last layer, or a convolution, it is not a dense chain.
    let s = spec(
        json!({"layers": {"a": {"class": "nn.Linear", "params": {"in_features": 5, "out_features": 1}}},
                        "input": ["x"], "forward": [{"ops": ["a", "F.sigmoid"], "input": ["x"], "output": "y"}], "output": ["y"]}),
    );
    assert!(
        GraphNet::new(&s, &[5], "", &device)
            .unwrap()
            .dense_chain()
            .is_none()
    );
}

#[test]
fn convolution_parameters_burn_would_panic_on_are_refused_naming_them() {
    let _seeded = crate::learn::testing::seeded();
    let conv = |params: serde_json::Value| {
        parse_err(
            json!({"layers": {"c": {"class": "nn.Conv2d", "params": params}},
                         "input": ["x"], "forward": [{"ops": ["c"], "input": ["x"], "output": "y"}], "output": ["y"]}),
        )
    };
    let e = conv(json!({"in_channels": 2, "out_channels": 4, "kernel_size": 3, "stride": 0}));
    assert!(
        e.contains("`layers.c.params.stride`") && e.contains("at least 1"),
        "{e}"
    );
    let e =
        conv(json!({"in_channels": 2, "out_channels": 4, "kernel_size": 3, "dilation": [1, 0]}));
    assert!(e.contains("`layers.c.params.dilation`"), "{e}");
    let e = conv(json!({"in_channels": 3, "out_channels": 4, "kernel_size": 3, "groups": 2}));
    assert!(e.contains("`layers.c.params.groups`"), "{e}");
    let e = parse_err(
        json!({"layers": {"p": {"class": "nn.MaxPool2d", "params": {"kernel_size": 2, "dilation": 0}}},
                             "input": ["x"], "forward": [{"ops": ["p"], "input": ["x"], "output": "y"}], "output": ["y"]}),
    );
    assert!(e.contains("`layers.p.params.dilation`"), "{e}");
}
