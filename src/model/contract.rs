//! The model file contract (models/README.md), checked once at load: tensor names,
//! dtypes, ranks and dims of the session, then the metadata properties against the graph
//! and against what the caller's calibration expects.
//!
//! Reads the session only; never runs it. Every refusal names what differs.

use std::collections::BTreeMap;

use ort::session::Session;
use ort::value::{TensorElementType, ValueType};

use super::{ModelError, ModelExpectation, ModelInfo};

pub(crate) const STATE: &str = "state";
pub(crate) const ACTION: &str = "action";
pub(crate) const MEAN: &str = "mean";
pub(crate) const LOGVAR: &str = "logvar";
const CONTRACT_VERSION: &str = "1";

/// The graph's fixed dims and where each named tensor sits in the session's order.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    pub ensemble_size: usize,
    pub state_dim: usize,
    pub action_dim: usize,
    /// Index of `state` among the session inputs (0 or 1); `action` is the other.
    pub state_input: usize,
}

/// Checks the session against the contract and `expect`; on success, what the model is.
pub(crate) fn check(
    session: &Session,
    sha256: String,
    expect: &ModelExpectation,
) -> Result<(Layout, ModelInfo), ModelError> {
    let input_names: Vec<String> = session.inputs().iter().map(|i| i.name().into()).collect();
    let output_names: Vec<String> = session.outputs().iter().map(|o| o.name().into()).collect();
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

    let state = dims(STATE, session.inputs()[state_input].dtype())?;
    let action = dims(ACTION, session.inputs()[action_input].dtype())?;
    let mean = dims(MEAN, session.outputs()[mean_output].dtype())?;
    let logvar = dims(LOGVAR, session.outputs()[logvar_output].dtype())?;
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

    let metadata = read_metadata(session)?;
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
    for key in ["created_unix", "training_data_sha256"] {
        get(key)?;
    }

    let layout = Layout {
        ensemble_size,
        state_dim,
        action_dim,
        state_input,
    };
    let info = ModelInfo {
        ensemble_size,
        state_dim,
        action_dim,
        state_names,
        action_names,
        control_period_us,
        sha256,
        producer,
        metadata,
    };
    Ok((layout, info))
}

/// The dims of a float32 rank-3 tensor (−1 for a dynamic axis).
fn dims(tensor: &'static str, dtype: &ValueType) -> Result<Vec<i64>, ModelError> {
    match dtype {
        ValueType::Tensor { ty, shape, .. } if *ty == TensorElementType::Float32 => {
            if shape.len() == 3 {
                Ok(shape.to_vec())
            } else {
                Err(ModelError::Rank {
                    tensor,
                    found: shape.len(),
                })
            }
        }
        other => Err(ModelError::Dtype {
            tensor,
            found: other.to_string(),
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
