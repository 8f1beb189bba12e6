//! The bytes of a model file, checked before ONNX Runtime reads them: the IR and opset
//! versions ONNX Runtime 1.31 supports, weights inside the file (no external data), then
//! the tensors and metadata of [`contract::check_signature`], then the four initializers
//! the contract names (`input_mean`, `input_std`, `max_logvar`, `min_logvar`) with their
//! dtypes and shapes, and the input width `angle_state_indices` implies.
//!
//! Pure (no ONNX Runtime): the `model_checks` fuzz target runs it on arbitrary bytes. A
//! file ONNX Runtime would refuse with a raw message for one of these reasons is refused
//! here first, saying what to change.

use prost::Message as _;

use super::contract::{self, Signature};
use super::{ModelError, ModelExpectation, ModelInfo};
use crate::train::proto;

/// The ONNX IR versions ONNX Runtime 1.31 reads (it refuses 14: "max supported IR
/// version: 13"; 3 is the first with operator-set imports).
pub const MIN_IR_VERSION: i64 = 3;
pub const MAX_IR_VERSION: i64 = 13;
/// The opsets of the default domain (`ai.onnx`) ONNX Runtime 1.31 supports: from 7 (its
/// documented floor) to 26 (past it: "Current official support for domain ai.onnx is till
/// opset 26").
pub const MIN_OPSET: i64 = 7;
pub const MAX_OPSET: i64 = 26;
/// The float32 initializers the contract requires by name.
pub const REQUIRED_INITIALIZERS: [&str; 4] =
    ["input_mean", "input_std", "max_logvar", "min_logvar"];

/// The log-variance bounds of the graph's soft clamp, per state channel.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct LogvarBounds {
    pub min: Vec<f32>,
    pub max: Vec<f32>,
}

/// What the file's checks found.
#[derive(Clone, Debug)]
pub(crate) struct Checked {
    pub info: ModelInfo,
    pub bounds: LogvarBounds,
}

/// Every check on the bytes alone, in the order a reader would fix them.
pub(crate) fn check(bytes: &[u8], expect: &ModelExpectation) -> Result<Checked, ModelError> {
    let model = proto::ModelProto::decode(bytes).map_err(|e| ModelError::NotOnnx {
        message: e.to_string(),
    })?;
    let ir_version = model.ir_version.unwrap_or(0);
    if !(MIN_IR_VERSION..=MAX_IR_VERSION).contains(&ir_version) {
        return Err(ModelError::IrVersion { found: ir_version });
    }
    let opset = model
        .opset_import
        .iter()
        .filter(|o| matches!(o.domain.as_deref(), None | Some("") | Some("ai.onnx")))
        .filter_map(|o| o.version)
        .max();
    let opset = match opset {
        Some(v) if (MIN_OPSET..=MAX_OPSET).contains(&v) => v,
        found => {
            let found = found.map_or("no opset".into(), |v| format!("opset {v}"));
            return Err(ModelError::Opset { found });
        }
    };
    if let Some(tensor) = external_tensor(&model) {
        return Err(ModelError::ExternalData { tensor });
    }
    let sha256 = crate::calib::hex_sha256(bytes);
    let (_, mut info) = contract::check_signature(&Signature::from_model(&model), sha256, expect)?;
    info.ir_version = ir_version;
    info.opset = opset;

    let empty = proto::GraphProto::default();
    let graph = model.graph.as_ref().unwrap_or(&empty);
    let (s, a, angles) = (
        info.state_dim,
        info.action_dim,
        info.angle_state_indices.len(),
    );
    let width = s + angles + a;
    let width_expected = if angles == 0 {
        format!("[{width}] float32 (S + A = {s} + {a})")
    } else {
        format!(
            "[{width}] float32 (S + |angle_state_indices| + A = {s} + {angles} + {a}: sin and cos \
             of each listed angle, the other states, the actions)"
        )
    };
    let state_expected = format!("[{s}] float32 (one per state channel)");
    let [input_mean, input_std, max_logvar, min_logvar] =
        REQUIRED_INITIALIZERS.map(|name| initializer(graph, name));
    let input_mean = floats(input_mean?, "input_mean", width, &width_expected)?;
    let input_std = floats(input_std?, "input_std", width, &width_expected)?;
    let max = floats(max_logvar?, "max_logvar", s, &state_expected)?;
    let min = floats(min_logvar?, "min_logvar", s, &state_expected)?;
    for (name, values) in [
        ("input_mean", &input_mean),
        ("input_std", &input_std),
        ("max_logvar", &max),
        ("min_logvar", &min),
    ] {
        if let Some(v) = values.iter().find(|v| !v.is_finite()) {
            return Err(bad(name, format!("holding {v}"), "finite values"));
        }
    }
    if let Some(v) = input_std.iter().find(|v| **v <= 0.0) {
        return Err(bad("input_std", format!("holding {v}"), "positive values"));
    }
    Ok(Checked {
        info,
        bounds: LogvarBounds { min, max },
    })
}

fn bad(name: &'static str, found: String, expected: &str) -> ModelError {
    ModelError::BadInitializer {
        name,
        found,
        expected: expected.into(),
    }
}

fn initializer<'g>(
    graph: &'g proto::GraphProto,
    name: &'static str,
) -> Result<&'g proto::TensorProto, ModelError> {
    graph
        .initializer
        .iter()
        .find(|t| t.name.as_deref() == Some(name))
        .ok_or(ModelError::MissingInitializer { name })
}

/// A float32 vector initializer of `len` values, read from `raw_data` or `float_data`.
fn floats(
    tensor: &proto::TensorProto,
    name: &'static str,
    len: usize,
    expected: &str,
) -> Result<Vec<f32>, ModelError> {
    let float = tensor.data_type == Some(proto::tensor_proto::DataType::Float as i32);
    if !float || tensor.dims != [len as i64] {
        let found = format!(
            "{:?} {}",
            tensor.dims,
            contract::dtype_name(tensor.data_type)
                .split(' ')
                .next()
                .unwrap_or_default()
        );
        return Err(bad(name, found, expected));
    }
    let values: Vec<f32> = match tensor.raw_data.as_deref() {
        Some(raw) if !raw.is_empty() => raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        _ => tensor.float_data.clone(),
    };
    if values.len() != len {
        return Err(bad(
            name,
            format!("{} stored values for dims {:?}", values.len(), tensor.dims),
            expected,
        ));
    }
    Ok(values)
}

/// The name of the first tensor anywhere in the model (initializers, sparse
/// initializers, node attributes, subgraphs, functions) whose data lives outside the file.
fn external_tensor(model: &proto::ModelProto) -> Option<String> {
    let in_functions = model
        .functions
        .iter()
        .flat_map(|f| &f.node)
        .find_map(external_in_node);
    model
        .graph
        .as_ref()
        .and_then(external_in_graph)
        .or(in_functions)
}

fn external_in_graph(graph: &proto::GraphProto) -> Option<String> {
    let sparse = graph
        .sparse_initializer
        .iter()
        .flat_map(|s| s.values.iter().chain(&s.indices));
    graph
        .initializer
        .iter()
        .chain(sparse)
        .find_map(external)
        .or_else(|| graph.node.iter().find_map(external_in_node))
}

fn external_in_node(node: &proto::NodeProto) -> Option<String> {
    node.attribute.iter().find_map(|attr| {
        let sparse = attr
            .sparse_tensor
            .iter()
            .chain(&attr.sparse_tensors)
            .flat_map(|s| s.values.iter().chain(&s.indices));
        attr.t
            .iter()
            .chain(&attr.tensors)
            .chain(sparse)
            .find_map(external)
            .or_else(|| {
                attr.g
                    .iter()
                    .chain(&attr.graphs)
                    .find_map(external_in_graph)
            })
    })
}

fn external(tensor: &proto::TensorProto) -> Option<String> {
    let located = tensor.data_location == Some(proto::tensor_proto::DataLocation::External as i32);
    (located || !tensor.external_data.is_empty())
        .then(|| tensor.name.clone().unwrap_or_else(|| "(unnamed)".into()))
}
