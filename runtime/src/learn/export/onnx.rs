//! ONNX export of a trained model (`model.onnx` in the sealed output).
//!
//! The graph takes the raw features, in `feature_columns` order, and applies the whole model,
//! scaler included (ONNX operator set 13, IR version 8):
//!
//! ```text
//! x [N, d] → Sub(scaler.offset) → Div(scaler.scale)
//!   (CNN: → Reshape [N, C, H, W] → Conv 3×3 pads 1 → Relu → AveragePool 2×2 → Flatten)
//!   → Gemm(W, b, transB=1) → Relu|Tanh → … → Gemm → logits [N, k]
//!   (classification: → Softmax(axis 1) → probabilities [N, k])
//! ```
//!
//! Messages are the subset of `onnx.proto` (ONNX's protobuf schema, IR version 8) that the
//! graph needs, declared with `prost` with `onnx.proto`'s field numbers: `ModelProto`,
//! `OperatorSetIdProto`, `GraphProto`, `NodeProto`, `AttributeProto`, `TensorProto`,
//! `ValueInfoProto`, `TypeProto`, `TensorShapeProto`, `StringStringEntryProto`.

use burn::tensor::Tensor;
use prost::Message;

use crate::learn::model::backend_err;
use crate::learn::{TrainError, Trained};
use crate::pipeline::{TaskType, TrainConfig};

/// `onnx.proto` `ModelProto`.
#[derive(Clone, PartialEq, Message)]
pub struct ModelProto {
    /// IR version (8).
    #[prost(int64, tag = "1")]
    pub ir_version: i64,
    /// `ccr`.
    #[prost(string, tag = "2")]
    pub producer_name: String,
    /// ccr's version.
    #[prost(string, tag = "3")]
    pub producer_version: String,
    /// The graph.
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
    /// Operator sets.
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
    /// Metadata (feature columns, classes, task).
    #[prost(message, repeated, tag = "14")]
    pub metadata_props: Vec<StringStringEntryProto>,
}

/// `onnx.proto` `OperatorSetIdProto`.
#[derive(Clone, PartialEq, Message)]
pub struct OperatorSetIdProto {
    /// Empty: the default ONNX domain.
    #[prost(string, tag = "1")]
    pub domain: String,
    /// Operator set version.
    #[prost(int64, tag = "2")]
    pub version: i64,
}

/// `onnx.proto` `StringStringEntryProto`.
#[derive(Clone, PartialEq, Message)]
pub struct StringStringEntryProto {
    /// Key.
    #[prost(string, tag = "1")]
    pub key: String,
    /// Value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `onnx.proto` `GraphProto`.
#[derive(Clone, PartialEq, Message)]
pub struct GraphProto {
    /// Nodes in topological order.
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    /// Graph name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// Constant tensors (weights).
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    /// Inputs.
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    /// Outputs.
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
}

/// `onnx.proto` `NodeProto`.
#[derive(Clone, PartialEq, Message)]
pub struct NodeProto {
    /// Input names.
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    /// Output names.
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    /// Node name.
    #[prost(string, tag = "3")]
    pub name: String,
    /// Operator.
    #[prost(string, tag = "4")]
    pub op_type: String,
    /// Attributes.
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
}

/// `onnx.proto` `AttributeProto` (the INT and INTS kinds).
#[derive(Clone, PartialEq, Message)]
pub struct AttributeProto {
    /// Name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// INT value.
    #[prost(int64, tag = "3")]
    pub i: i64,
    /// INTS value.
    #[prost(int64, repeated, tag = "8")]
    pub ints: Vec<i64>,
    /// `AttributeType`: 2 = INT, 7 = INTS.
    #[prost(int32, tag = "20")]
    pub r#type: i32,
}

/// `onnx.proto` `TensorProto` (FLOAT and INT64 data as raw little-endian bytes).
#[derive(Clone, PartialEq, Message)]
pub struct TensorProto {
    /// Shape.
    #[prost(int64, repeated, tag = "1")]
    pub dims: Vec<i64>,
    /// `DataType`: 1 = FLOAT, 7 = INT64.
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    /// Name.
    #[prost(string, tag = "8")]
    pub name: String,
    /// Little-endian data.
    #[prost(bytes = "vec", tag = "9")]
    pub raw_data: Vec<u8>,
}

/// `onnx.proto` `ValueInfoProto`.
#[derive(Clone, PartialEq, Message)]
pub struct ValueInfoProto {
    /// Name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Type.
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
}

/// `onnx.proto` `TypeProto` (tensor types only).
#[derive(Clone, PartialEq, Message)]
pub struct TypeProto {
    /// `TypeProto.Tensor`.
    #[prost(message, optional, tag = "1")]
    pub tensor_type: Option<TensorTypeProto>,
}

/// `onnx.proto` `TypeProto.Tensor`.
#[derive(Clone, PartialEq, Message)]
pub struct TensorTypeProto {
    /// Element type (1 = FLOAT).
    #[prost(int32, tag = "1")]
    pub elem_type: i32,
    /// Shape.
    #[prost(message, optional, tag = "2")]
    pub shape: Option<TensorShapeProto>,
}

/// `onnx.proto` `TensorShapeProto`.
#[derive(Clone, PartialEq, Message)]
pub struct TensorShapeProto {
    /// Dimensions.
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<Dimension>,
}

/// `onnx.proto` `TensorShapeProto.Dimension`: a value or a symbolic name.
#[derive(Clone, PartialEq, Message)]
pub struct Dimension {
    /// Fixed size (0: see `dim_param`).
    #[prost(int64, optional, tag = "1")]
    pub dim_value: Option<i64>,
    /// Symbolic size (`N`).
    #[prost(string, optional, tag = "2")]
    pub dim_param: Option<String>,
}

const FLOAT: i32 = 1;
const INT64: i32 = 7;

/// The convolution: weight `[out, in, 3, 3]` (flat, row-major), bias `[out]`, and the input
/// image `[in, height, width]`.
#[derive(Debug, Clone)]
pub struct ConvWeights {
    /// `[out, in, 3, 3]`, flat.
    pub weight: Vec<f32>,
    /// `[out]`.
    pub bias: Vec<f32>,
    /// Output channels.
    pub out: usize,
    /// `[in, height, width]`.
    pub image: [usize; 3],
}

/// A dense layer: weight `[out, in]` (flat, row-major; PyTorch's `nn.Linear`), bias `[out]`.
#[derive(Debug, Clone)]
pub struct DenseWeights {
    /// `[out, in]`, flat.
    pub weight: Vec<f32>,
    /// `[out]`.
    pub bias: Vec<f32>,
    /// Output width.
    pub out: usize,
    /// Input width.
    pub inp: usize,
}

/// The model's parameters, as `model.safetensors` holds them (PyTorch layouts).
#[derive(Debug, Clone)]
pub struct Weights {
    /// `scaler.offset` `[d]`.
    pub offset: Vec<f32>,
    /// `scaler.scale` `[d]`.
    pub scale: Vec<f32>,
    /// The CNN front.
    pub conv: Option<ConvWeights>,
    /// Dense layers.
    pub layers: Vec<DenseWeights>,
    /// `tanh` between dense layers (else `relu`).
    pub tanh: bool,
    /// Classification (adds `probabilities`).
    pub classification: bool,
    /// Metadata entries.
    pub metadata: Vec<(String, String)>,
}

fn tensor_f32(name: &str, dims: &[usize], v: &[f32]) -> TensorProto {
    TensorProto {
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: FLOAT,
        name: name.into(),
        raw_data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        i: 0,
        ints: v.to_vec(),
        r#type: 7,
    }
}

fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        i: v,
        ints: Vec::new(),
        r#type: 2,
    }
}

fn value(name: &str, width: usize) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto {
                elem_type: FLOAT,
                shape: Some(TensorShapeProto {
                    dim: vec![
                        Dimension {
                            dim_value: None,
                            dim_param: Some("N".into()),
                        },
                        Dimension {
                            dim_value: Some(width as i64),
                            dim_param: None,
                        },
                    ],
                }),
            }),
        }),
    }
}

struct Builder {
    nodes: Vec<NodeProto>,
    n: usize,
}

impl Builder {
    fn node(&mut self, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> String {
        self.n += 1;
        let out = format!("{}_{}", op.to_lowercase(), self.n);
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            name: format!("n{}", self.n),
            op_type: op.into(),
            attribute: attrs,
        });
        out
    }
}

/// The ONNX model bytes for `w`: input `x` `[N, d]` (float), outputs `logits` `[N, k]` and, for
/// classification, `probabilities` `[N, k]`.
pub fn export(w: &Weights) -> Vec<u8> {
    let d = w.offset.len();
    let mut init = vec![
        tensor_f32("scaler.offset", &[d], &w.offset),
        tensor_f32("scaler.scale", &[d], &w.scale),
    ];
    let mut b = Builder {
        nodes: Vec::new(),
        n: 0,
    };
    let h = b.node("Sub", &["x", "scaler.offset"], vec![]);
    let mut h = b.node("Div", &[&h, "scaler.scale"], vec![]);
    if let Some(ConvWeights {
        weight: cw,
        bias: cb,
        out,
        image: [c, hh, ww],
    }) = &w.conv
    {
        init.push(TensorProto {
            dims: vec![4],
            data_type: INT64,
            name: "image_shape".into(),
            raw_data: [-1i64, *c as i64, *hh as i64, *ww as i64]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
        });
        init.push(tensor_f32("conv.weight", &[*out, *c, 3, 3], cw));
        init.push(tensor_f32("conv.bias", &[*out], cb));
        let r = b.node("Reshape", &[&h, "image_shape"], vec![]);
        let cv = b.node(
            "Conv",
            &[&r, "conv.weight", "conv.bias"],
            vec![ints("kernel_shape", &[3, 3]), ints("pads", &[1, 1, 1, 1])],
        );
        let a = b.node("Relu", &[&cv], vec![]);
        let p = b.node(
            "AveragePool",
            &[&a],
            vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])],
        );
        h = b.node("Flatten", &[&p], vec![int("axis", 1)]);
    }
    let nl = w.layers.len();
    let mut width = d;
    for (
        i,
        DenseWeights {
            weight: lw,
            bias: lb,
            out,
            inp,
        },
    ) in w.layers.iter().enumerate()
    {
        let wn = format!("layers.{i}.weight");
        let bn = format!("layers.{i}.bias");
        init.push(tensor_f32(&wn, &[*out, *inp], lw));
        init.push(tensor_f32(&bn, &[*out], lb));
        h = b.node("Gemm", &[&h, &wn, &bn], vec![int("transB", 1)]);
        if i + 1 < nl {
            h = b.node(if w.tanh { "Tanh" } else { "Relu" }, &[&h], vec![]);
        }
        width = *out;
    }
    let mut outputs = Vec::new();
    let last = b.nodes.len() - 1;
    b.nodes[last].output = vec!["logits".into()];
    outputs.push(value("logits", width));
    if w.classification {
        b.nodes.push(NodeProto {
            input: vec!["logits".into()],
            output: vec!["probabilities".into()],
            name: "softmax".into(),
            op_type: "Softmax".into(),
            attribute: vec![int("axis", 1)],
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
            initializer: init,
            input: vec![value("x", d)],
            output: outputs,
        }),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        metadata_props: w
            .metadata
            .iter()
            .map(|(k, v)| StringStringEntryProto {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
    };
    model.encode_to_vec()
}

/// The model's parameters for [`export`] (PyTorch layouts, scaler included).
///
/// # Errors
/// [`TrainError::Backend`].
pub fn onnx_weights(
    t: &Trained,
    cfg: &TrainConfig,
    metadata: Vec<(String, String)>,
) -> Result<Weights, TrainError> {
    let vec1 = |x: Tensor<1>| x.into_data().try_to_vec::<f32>().map_err(backend_err);
    let conv = match (&t.net.conv, t.net.image) {
        (Some(c), Some(image)) => {
            let w = c.weight.val();
            let out = w.dims()[0];
            let wv = w.into_data().try_to_vec::<f32>().map_err(backend_err)?;
            let bv = match &c.bias {
                Some(b) => vec1(b.val())?,
                None => vec![0.0; out],
            };
            Some(ConvWeights {
                weight: wv,
                bias: bv,
                out,
                image,
            })
        }
        _ => None,
    };
    let mut layers = Vec::new();
    for l in &t.net.layers {
        let w = l.weight.val();
        let [din, dout] = w.dims();
        let wt = w
            .transpose()
            .into_data()
            .try_to_vec::<f32>()
            .map_err(backend_err)?;
        let b = match &l.bias {
            Some(b) => vec1(b.val())?,
            None => vec![0.0; dout],
        };
        layers.push(DenseWeights {
            weight: wt,
            bias: b,
            out: dout,
            inp: din,
        });
    }
    Ok(Weights {
        offset: t.scaler.offset.clone(),
        scale: t.scaler.scale.clone(),
        conv,
        layers,
        tanh: t.net.tanh,
        classification: cfg.task_type == TaskType::Classification,
        metadata,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_graph_decodes_with_its_nodes_in_order() {
        let w = Weights {
            offset: vec![0.0; 4],
            scale: vec![1.0; 4],
            conv: Some(ConvWeights {
                weight: vec![0.1; 2 * 9],
                bias: vec![0.0; 2],
                out: 2,
                image: [1, 2, 2],
            }),
            layers: vec![DenseWeights {
                weight: vec![0.5; 3 * 2],
                bias: vec![0.0; 3],
                out: 3,
                inp: 2,
            }],
            tanh: false,
            classification: true,
            metadata: vec![("task".into(), "classification".into())],
        };
        let m = ModelProto::decode(&export(&w)[..]).unwrap();
        let g = m.graph.unwrap();
        let ops: Vec<&str> = g.node.iter().map(|n| n.op_type.as_str()).collect();
        assert_eq!(
            ops,
            [
                "Sub",
                "Div",
                "Reshape",
                "Conv",
                "Relu",
                "AveragePool",
                "Flatten",
                "Gemm",
                "Softmax"
            ]
        );
        assert_eq!(g.node[7].output, ["logits"]);
        assert_eq!(g.output.len(), 2);
        assert_eq!(m.opset_import[0].version, 13);
        let conv = g
            .initializer
            .iter()
            .find(|t| t.name == "conv.weight")
            .unwrap();
        assert_eq!(conv.dims, [2, 1, 3, 3]);
        assert_eq!(conv.raw_data.len(), 18 * 4);
    }
}
