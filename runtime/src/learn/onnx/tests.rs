//! Import of DEPA's base models (made by `tests/fixtures/depa/make_base_models.py` with their own
//! `save_base_model.py`): the imported graph gives PyTorch's / onnxruntime's outputs; bad models
//! are refused naming the node.

use burn::tensor::{Tensor, TensorData};
use prost::Message;

use super::import::{Imported, import};
use super::proto::*;
use crate::learn::graph::{GraphNet, GraphSpec};
use crate::learn::model::device;
use crate::learn::testing::vecf;

fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/depa/").to_string() + rel)
        .unwrap()
}

/// The outputs `make_base_models.py` recorded for the inputs `x[i] = sin(0.37 i)`.
fn reference(scenario: &str) -> (Vec<usize>, Vec<f32>, Vec<f32>) {
    let r: serde_json::Value =
        serde_json::from_slice(&fixture(&format!("{scenario}/reference.json"))).unwrap();
    let shape: Vec<usize> = serde_json::from_value(r["shape"].clone()).unwrap();
    let out: Vec<f32> = serde_json::from_value(r["output"].clone()).unwrap();
    let n = 2 * shape.iter().product::<usize>();
    let x = (0..n).map(|i| (0.37 * i as f64).sin() as f32).collect();
    (shape, x, out)
}

fn outputs(net: &GraphNet, x: Vec<f32>) -> Vec<f32> {
    let d = x.len() / 2;
    let plain = device().inner();
    use burn::module::Module;
    vecf(
        net.valid()
            .forward(Tensor::from_data(TensorData::new(x, [2, d]), &plain), false),
    )
}

fn within(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol, "{what}[{i}]: {x} vs {y}");
    }
}

fn load(imp: &Imported) -> GraphNet {
    let device = device();
    let net = GraphNet::new(&imp.spec, &imp.sample_shape, "", &device).unwrap();
    let get = |n: &str| {
        imp.tensors
            .iter()
            .find(|t| t.name == n)
            .map(|t| (t.shape.clone(), t.values.clone()))
    };
    net.load_state_dict(&get, &device).unwrap()
}

#[test]
fn depa_onnx_base_models_import_with_onnxruntimes_outputs() {
    let _seeded = crate::learn::testing::seeded();
    for scenario in ["covid", "mnist"] {
        let imp = import(&fixture(&format!("{scenario}/model.onnx"))).unwrap();
        assert_eq!(imp.opset, 11);
        let (shape, x, want) = reference(scenario);
        assert_eq!(imp.sample_shape, shape, "{scenario}");
        let net = load(&imp);
        within(&outputs(&net, x), &want, 1e-5, scenario);
        // The weights keep PyTorch's names.
        assert!(
            net.state_dict().iter().any(|t| t.name == "fc1.weight"),
            "{scenario}"
        );
    }
}

#[test]
fn cifar10s_safetensors_state_dict_loads_into_its_model_config_graph() {
    let _seeded = crate::learn::testing::seeded();
    let Ok(text) = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/depa/cifar10/config/model_config.json"
    )) else {
        eprintln!("skipped: ../shared/depa is absent (cifar10's model_config.json)");
        return;
    };
    let spec = GraphSpec::parse(&serde_json::from_str(&text).unwrap()).unwrap();
    let device = device();
    let net = GraphNet::new(&spec, &[3, 32, 32], "_layers.", &device).unwrap();
    let net =
        crate::learn::model::with_weights_from(net, &fixture("cifar10/model.safetensors"), &device)
            .unwrap();
    let (_, x, want) = reference("cifar10");
    within(&outputs(&net, x), &want, 1e-5, "cifar10");
}

fn model(nodes: Vec<NodeProto>, opset: i64) -> Vec<u8> {
    ModelProto {
        ir_version: 7,
        graph: Some(GraphProto {
            node: nodes,
            initializer: vec![
                tensor_f32("w", &[2, 4], &[0.5; 8]),
                tensor_i64("shape", &[4, 2]),
            ],
            input: vec![value("x", &[4])],
            output: vec![value("y", &[2])],
            ..Default::default()
        }),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: opset,
        }],
        ..Default::default()
    }
    .encode_to_vec()
}

fn node(name: &str, op: &str, inputs: &[&str], out: &str) -> NodeProto {
    NodeProto {
        name: name.into(),
        op_type: op.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![out.into()],
        ..Default::default()
    }
}

#[test]
fn unsupported_onnx_is_refused_naming_the_node() {
    let _seeded = crate::learn::testing::seeded();
    let e = import(&model(vec![node("/odd", "Hardmax", &["x"], "y")], 13))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("node 0 (/odd, Hardmax)") && e.contains("not supported"),
        "{e}"
    );
    let e = import(&model(vec![node("", "Relu", &["x"], "y")], 5))
        .unwrap_err()
        .to_string();
    assert!(e.contains("operator set 5"), "{e}");
    let e = import(&model(vec![node("r", "Reshape", &["x", "shape"], "y")], 13))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("node 0 (r, Reshape)") && e.contains("fixes the batch size"),
        "{e}"
    );
    let e = import(&model(vec![node("g", "Gemm", &["x", "w"], "y")], 13))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("node 0 (g, Gemm)") && e.contains("in_features is 2"),
        "{e}"
    );
    let e = import(&model(vec![node("", "Relu", &["z"], "y")], 13))
        .unwrap_err()
        .to_string();
    assert!(e.contains("`z` is not produced"), "{e}");
    let e = import(b"\xff\xff not onnx").unwrap_err().to_string();
    assert!(e.contains("not an ONNX model"), "{e}");
}

/// onnxruntime's first output of `model` for the inputs `onnx_outputs.py` makes, or `None` (the
/// test skips) when python3 cannot import onnxruntime and `CCR_REQUIRE_PYTHON` is not 1.
fn onnxruntime_outputs(model: &[u8], n: usize, mode: &str) -> Option<Vec<f32>> {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import onnxruntime, numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CCR_REQUIRE_PYTHON").as_deref() != Ok("1"),
            "CCR_REQUIRE_PYTHON=1 but python3 cannot import onnxruntime"
        );
        eprintln!(
            "skipped: python3 cannot import onnxruntime (pip install -r tests/requirements.txt)"
        );
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.onnx");
    std::fs::write(&path, model).unwrap();
    let out = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/py/onnx_outputs.py"
        ))
        .arg(&path)
        .arg(n.to_string())
        .arg(mode)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

fn exported(net: &GraphNet) -> Vec<u8> {
    let d: usize = net.sample_shape.iter().product();
    let scaler = crate::learn::Scaler {
        offset: vec![0.0; d],
        scale: vec![1.0; d],
    };
    super::export::export(net, &scaler, super::export::Head::None, Vec::new()).unwrap()
}

fn within_rel(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= 1e-5 * (1.0 + y.abs()),
            "{what}[{i}]: {x} vs {y}"
        );
    }
}

#[test]
fn exported_models_give_ccrs_outputs_in_onnxruntime() {
    let _seeded = crate::learn::testing::seeded();
    let mut nets: Vec<(String, GraphNet, &str)> = Vec::new();
    for s in ["covid", "mnist"] {
        let imp = import(&fixture(&format!("{s}/model.onnx"))).unwrap();
        nets.push((s.to_string(), load(&imp), "sin"));
    }
    let device = device();
    let zoo = serde_json::json!({
        "layers": {
            "conv": {"class": "nn.Conv2d", "params": {"in_channels": 2, "out_channels": 4, "kernel_size": 3, "padding": 1}},
            "gn": {"class": "nn.GroupNorm", "params": {"num_groups": 2, "num_channels": 4}},
            "up": {"class": "nn.ConvTranspose2d", "params": {"in_channels": 4, "out_channels": 2, "kernel_size": 2, "stride": 2}},
            "fc": {"class": "nn.Linear", "params": {"in_features": 18, "out_features": 8}},
            "ln": {"class": "nn.LayerNorm", "params": {"normalized_shape": 8}},
            "head": {"class": "nn.Linear", "params": {"in_features": 8, "out_features": 3}}},
        "input": ["x"],
        "forward": [
            {"ops": ["conv", "gn", "F.gelu", ["F.avg_pool2d", {"kernel_size": 2}], "up", "F.silu"], "input": ["x"], "output": "a"},
            {"ops": [["F.adaptive_avg_pool2d", {"output_size": [3, 3]}], ["torch.flatten", {"start_dim": 1}], "fc", "ln", "F.leaky_relu", "head", ["F.log_softmax", {"dim": 1}]], "input": ["a"], "output": "y"}],
        "output": ["y"]});
    let seq = serde_json::json!({
        "layers": {
            "c1": {"class": "nn.Conv1d", "params": {"in_channels": 3, "out_channels": 4, "kernel_size": 3, "padding": 1}},
            "fc": {"class": "nn.Linear", "params": {"in_features": 4, "out_features": 5}}},
        "input": ["x"],
        "forward": [{"ops": ["c1", "F.tanh", ["torch.transpose", {"dim0": 1, "dim1": 2}], "fc", ["torch.mean", {"dim": 1}]], "input": ["x"], "output": "y"}],
        "output": ["y"]});
    let emb = serde_json::json!({
        "layers": {"e": {"class": "nn.Embedding", "params": {"num_embeddings": 10, "embedding_dim": 4}},
                   "fc": {"class": "nn.Linear", "params": {"in_features": 4, "out_features": 2}}},
        "input": ["x"],
        "forward": [{"ops": ["e", "fc", ["torch.sum", {"dim": 1}]], "input": ["x"], "output": "y"}],
        "output": ["y"]});
    for (name, g, shape, mode) in [
        ("zoo", zoo, vec![2, 6, 6], "sin"),
        ("conv1d", seq, vec![3, 8], "sin"),
        ("embedding", emb, vec![5], "ids:10"),
    ] {
        let spec = GraphSpec::parse(&g).unwrap();
        nets.push((
            name.into(),
            GraphNet::new(&spec, &shape, "_layers.", &device).unwrap(),
            mode,
        ));
    }
    for (name, net, mode) in &nets {
        let d: usize = net.sample_shape.iter().product();
        let Some(theirs) = onnxruntime_outputs(&exported(net), 2, mode) else {
            return;
        };
        let x: Vec<f32> = (0..2 * d)
            .map(|i| {
                if *mode == "sin" {
                    (0.37 * i as f64).sin() as f32
                } else {
                    ((7 * i) % 10) as f32
                }
            })
            .collect();
        within_rel(&outputs(net, x), &theirs, name);
    }
}
