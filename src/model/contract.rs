//! The model file contract (models/README.md), checked once at load: tensor names,
//! dtypes, ranks and dims of the session, then the metadata properties against the graph
//! and against what the caller's calibration expects.
//!
//! Reads the session only; never runs it. Every refusal names what differs.

use std::collections::BTreeMap;

use ort::session::Session;
use ort::value::{TensorElementType, ValueType};

use crate::train::proto;

use super::{ModelError, ModelExpectation, ModelInfo, metadata};

pub(crate) const STATE: &str = "state";
pub(crate) const ACTION: &str = "action";
pub(crate) const MEAN: &str = "mean";
pub(crate) const LOGVAR: &str = "logvar";
pub(crate) const CONTRACT_VERSION: &str = "1";

/// The graph's fixed dims and where each named tensor sits in the session's order.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    pub ensemble_size: usize,
    pub state_dim: usize,
    pub action_dim: usize,
    /// Index of `state` among the session inputs (0 or 1); `action` is the other.
    pub state_input: usize,
}

/// What the contract reads of a model: its graph's inputs and outputs and its metadata
/// properties, taken from an ONNX Runtime session ([`Signature::of_session`]) or straight
/// from the ONNX protobuf ([`Signature::from_onnx`], which the fuzz target uses: loading
/// through ort for every input is too slow, and ort is not ours to fuzz).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Signature {
    pub inputs: Vec<TensorSignature>,
    pub outputs: Vec<TensorSignature>,
    pub metadata: BTreeMap<String, String>,
}

/// One named graph input or output.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TensorSignature {
    pub name: String,
    pub ty: TensorType,
}

/// A float32 tensor's dims (−1 for a dynamic axis), or what the value is instead.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum TensorType {
    Float32(Vec<i64>),
    Other(String),
}

impl Signature {
    /// The session's inputs, outputs and custom metadata.
    pub(crate) fn of_session(session: &Session) -> Result<Self, ModelError> {
        let tensor = |name: &str, dtype: &ValueType| TensorSignature {
            name: name.into(),
            ty: match dtype {
                ValueType::Tensor { ty, shape, .. } if *ty == TensorElementType::Float32 => {
                    TensorType::Float32(shape.to_vec())
                }
                other => TensorType::Other(other.to_string()),
            },
        };
        Ok(Self {
            inputs: session
                .inputs()
                .iter()
                .map(|i| tensor(i.name(), i.dtype()))
                .collect(),
            outputs: session
                .outputs()
                .iter()
                .map(|o| tensor(o.name(), o.dtype()))
                .collect(),
            metadata: read_metadata(session)?,
        })
    }

    /// The same read from a decoded ONNX file, as ONNX Runtime reads it: graph inputs that
    /// are initializers are not inputs; an axis without a fixed size (a `dim_param` of any
    /// name, or no size at all) is dynamic (−1); later metadata keys override earlier
    /// ones.
    pub(crate) fn from_model(model: &proto::ModelProto) -> Self {
        use proto::{tensor_shape_proto::dimension, type_proto};
        let empty = proto::GraphProto::default();
        let graph = model.graph.as_ref().unwrap_or(&empty);
        let initializers: Vec<&str> = graph
            .initializer
            .iter()
            .filter_map(|t| t.name.as_deref())
            .collect();
        let tensor = |value: &proto::ValueInfoProto| {
            let name = value.name.clone().unwrap_or_default();
            let ty = match value.r#type.as_ref().and_then(|t| t.value.as_ref()) {
                Some(type_proto::Value::TensorType(t))
                    if t.elem_type == Some(proto::tensor_proto::DataType::Float as i32) =>
                {
                    let dims = t.shape.as_ref().map(|s| s.dim.as_slice()).unwrap_or(&[]);
                    TensorType::Float32(
                        dims.iter()
                            .map(|d| match d.value {
                                Some(dimension::Value::DimValue(v)) => v,
                                _ => -1,
                            })
                            .collect(),
                    )
                }
                Some(type_proto::Value::TensorType(t)) => {
                    TensorType::Other(format!("a {} tensor", dtype_name(t.elem_type)))
                }
                Some(_) => TensorType::Other("not a tensor".into()),
                None => TensorType::Other("of no type".into()),
            };
            TensorSignature { name, ty }
        };
        Self {
            inputs: graph
                .input
                .iter()
                .filter(|i| !initializers.contains(&i.name.as_deref().unwrap_or_default()))
                .map(tensor)
                .collect(),
            outputs: graph.output.iter().map(tensor).collect(),
            metadata: model
                .metadata_props
                .iter()
                .map(|p| {
                    (
                        p.key.clone().unwrap_or_default(),
                        p.value.clone().unwrap_or_default(),
                    )
                })
                .collect(),
        }
    }
}

/// An ONNX element type as a reader knows it: `float64 (ONNX DOUBLE)`.
pub(crate) fn dtype_name(elem_type: Option<i32>) -> String {
    use proto::tensor_proto::DataType;
    let Some(code) = elem_type else {
        return "untyped".into();
    };
    let Ok(dtype) = DataType::try_from(code) else {
        return format!("element type {code} (unknown to ONNX)");
    };
    let common = match dtype {
        DataType::Float => "float32",
        DataType::Double => "float64",
        DataType::Float16 => "float16",
        DataType::Bfloat16 => "bfloat16",
        DataType::Int64 => "int64",
        DataType::Int32 => "int32",
        DataType::Int8 => "int8",
        DataType::Uint8 => "uint8",
        DataType::Bool => "bool",
        _ => return format!("ONNX {}", dtype.as_str_name()),
    };
    format!("{common} (ONNX {})", dtype.as_str_name())
}

/// Checks the session against the contract and `expect`; on success, what the model is.
pub(crate) fn check(
    session: &Session,
    sha256: String,
    expect: &ModelExpectation,
) -> Result<(Layout, ModelInfo), ModelError> {
    check_signature(&Signature::of_session(session)?, sha256, expect)
}

/// [`check`] on what was read of a model: the contract's every check, pure.
pub(crate) fn check_signature(
    signature: &Signature,
    sha256: String,
    expect: &ModelExpectation,
) -> Result<(Layout, ModelInfo), ModelError> {
    let input_names: Vec<String> = signature.inputs.iter().map(|i| i.name.clone()).collect();
    let output_names: Vec<String> = signature.outputs.iter().map(|o| o.name.clone()).collect();
    let find = |role, names: &[String], name| {
        names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| ModelError::MissingTensor {
                role,
                name,
                found: names.to_vec(),
            })
    };
    let state_input = find("input", &input_names, STATE)?;
    let action_input = find("input", &input_names, ACTION)?;
    let mean_output = find("output", &output_names, MEAN)?;
    let logvar_output = find("output", &output_names, LOGVAR)?;
    if input_names.len() != 2 {
        return Err(ModelError::ExtraInputs { found: input_names });
    }

    let state = dims(STATE, &signature.inputs[state_input].ty)?;
    let action = dims(ACTION, &signature.inputs[action_input].ty)?;
    let mean = dims(MEAN, &signature.outputs[mean_output].ty)?;
    let logvar = dims(LOGVAR, &signature.outputs[logvar_output].ty)?;
    let fixed = |tensor, shape: &[i64], axis: usize| -> Result<usize, ModelError> {
        usize::try_from(shape[axis])
            .ok()
            .filter(|d| *d > 0)
            .ok_or_else(|| ModelError::Dim {
                tensor,
                axis,
                expected: "a fixed positive size",
                found: shape.to_vec(),
            })
    };
    let ensemble_size = fixed(STATE, &state, 0)?;
    let state_dim = fixed(STATE, &state, 2)?;
    let action_dim = fixed(ACTION, &action, 2)?;
    for (tensor, shape, last) in [
        (STATE, &state, state_dim),
        (ACTION, &action, action_dim),
        (MEAN, &mean, state_dim),
        (LOGVAR, &logvar, state_dim),
    ] {
        let dim_error = |axis, expected| ModelError::Dim {
            tensor,
            axis,
            expected,
            found: shape.to_vec(),
        };
        if shape[0] != ensemble_size as i64 {
            return Err(dim_error(0, "E, the same ensemble size as `state`"));
        }
        if shape[1] >= 0 {
            return Err(dim_error(1, "a dynamic N"));
        }
        if shape[2] != last as i64 {
            return Err(dim_error(2, "S (A for `action`), as in `state`/`action`"));
        }
    }

    let metadata = &signature.metadata;
    let get = |key: &'static str| {
        metadata
            .get(key)
            .cloned()
            .ok_or(ModelError::MissingMetadata { key })
    };
    let contract = get("handful.contract")?;
    if contract != CONTRACT_VERSION {
        return Err(ModelError::BadMetadata {
            key: "handful.contract",
            found: contract,
            expected: format!("\"{CONTRACT_VERSION}\""),
        });
    }
    for (key, graph) in [
        ("state_dim", state_dim),
        ("action_dim", action_dim),
        ("ensemble_size", ensemble_size),
    ] {
        let metadata = parse_number(key, &get(key)?)? as usize;
        if metadata != graph {
            return Err(ModelError::MetadataDisagrees {
                key,
                metadata,
                graph,
            });
        }
    }
    let state_names = names(&get("state_names")?);
    let action_names = names(&get("action_names")?);
    for (key, names, graph) in [
        ("state_names", &state_names, state_dim),
        ("action_names", &action_names, action_dim),
    ] {
        if names.len() != graph {
            return Err(ModelError::MetadataDisagrees {
                key,
                metadata: names.len(),
                graph,
            });
        }
    }
    if state_names != expect.state_names {
        return Err(names_error("state", &state_names, &expect.state_names));
    }
    if action_names != expect.action_names {
        return Err(names_error("action", &action_names, &expect.action_names));
    }
    let control_period_us = parse_number("control_period_us", &get("control_period_us")?)?;
    if control_period_us != expect.control_period_us {
        return Err(ModelError::Period {
            model_us: control_period_us,
            expected_us: expect.control_period_us,
        });
    }
    let producer = get("producer")?;
    let created_unix = metadata::created_unix(&get("created_unix")?)?;
    let training_data_sha256 = metadata::training_data_sha256(&get("training_data_sha256")?)?;
    let optional = |key| metadata.get(key).map(String::as_str).unwrap_or("");
    let elites = metadata::indices("elites", optional("elites"), ensemble_size, "member")?;
    let angle_state_indices = metadata::indices(
        "angle_state_indices",
        optional("angle_state_indices"),
        state_dim,
        "state channel",
    )?;

    let layout = Layout {
        ensemble_size,
        state_dim,
        action_dim,
        state_input,
    };
    let info = ModelInfo {
        sha256,
        contract,
        ensemble_size,
        state_dim,
        action_dim,
        state_names,
        action_names,
        control_period_us,
        producer,
        created_unix,
        training_data_sha256,
        elites,
        angle_state_indices,
        ir_version: 0,
        opset: 0,
        metadata: metadata.clone(),
    };
    Ok((layout, info))
}

/// The dims of a float32 rank-3 tensor (−1 for a dynamic axis).
fn dims(tensor: &'static str, ty: &TensorType) -> Result<Vec<i64>, ModelError> {
    match ty {
        TensorType::Float32(shape) if shape.len() == 3 => Ok(shape.clone()),
        TensorType::Float32(shape) => Err(ModelError::Rank {
            tensor,
            found: shape.len(),
        }),
        TensorType::Other(found) => Err(ModelError::Dtype {
            tensor,
            found: found.clone(),
        }),
    }
}

fn read_metadata(session: &Session) -> Result<BTreeMap<String, String>, ModelError> {
    let session_error = |e: ort::Error| ModelError::Session {
        message: e.to_string(),
    };
    let meta = session.metadata().map_err(session_error)?;
    let mut out = BTreeMap::new();
    for key in meta.custom_keys().map_err(session_error)? {
        if let Some(value) = meta.custom(&key) {
            out.insert(key, value);
        }
    }
    Ok(out)
}

fn parse_number(key: &'static str, value: &str) -> Result<u64, ModelError> {
    value.trim().parse().map_err(|_| ModelError::BadMetadata {
        key,
        found: value.into(),
        expected: "a non-negative integer".into(),
    })
}

fn names(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn names_error(kind: &'static str, model: &[String], expected: &[String]) -> ModelError {
    ModelError::Names {
        kind,
        model: model.to_vec(),
        expected: expected.to_vec(),
    }
}
