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
