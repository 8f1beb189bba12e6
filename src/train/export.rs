//! ONNX export of a [`Trainer`]'s ensemble, following the model contract
//! (models/README.md) node for node as models/make_ensemble.py writes it: weights,
//! biases, input statistics and logvar bounds as float32 initializers, standardisation
//! and the soft clamp inside the graph, dynamic `N`, opset 17, IR version 8, and every
//! metadata property the loader checks plus `elites`.
//!
//! Encodes with prost types generated from the committed `models/onnx.proto`; never
//! runs ONNX Runtime (the model module owns it).

use std::path::{Path, PathBuf};

use prost::Message;

use super::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto, TensorShapeProto, TypeProto, ValueInfoProto, attribute_proto::AttributeType,
    tensor_proto::DataType, tensor_shape_proto::Dimension, tensor_shape_proto::dimension,
    type_proto,
};
use super::trainer::Trainer;

/// The `producer` metadata of exported models.
pub const PRODUCER: &str = "handful-train";
const OPSET: i64 = 17;
const IR_VERSION: i64 = 8;

/// What the exported file says about the robot it is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportMetadata {
    pub state_names: Vec<String>,
    pub action_names: Vec<String>,
    /// The control period the training transitions were one step of.
    pub control_period_us: u64,
    /// `created_unix`; `None` means now (wall clock, metadata only).
    pub created_unix: Option<u64>,
}

/// Why an ensemble could not be exported.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    #[error("{found} {kind} names given, the model has {expected} {kind} channels")]
    NameCount {
        kind: &'static str,
        found: usize,
        expected: usize,
    },
    #[error("{kind} name `{name}` is empty or holds a comma or surrounding spaces")]
    BadName { kind: &'static str, name: String },
    #[error("cannot write model {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Trainer {
    /// The ensemble as the bytes of a contract-conforming ONNX file.
    pub fn export_onnx(&self, meta: &ExportMetadata) -> Result<Vec<u8>, ExportError> {
        check_names("state", &meta.state_names, self.state_dim())?;
        check_names("action", &meta.action_names, self.action_dim())?;
        let elites = self.elites();
        if self.config().export_elites_only && elites.len() < self.params().ensemble_size() {
            return Ok(model(&self.elites_only(), meta).encode_to_vec());
        }
        Ok(model(self, meta).encode_to_vec())
    }

    /// [`Trainer::export_onnx`] written to `path`.
    pub fn write_onnx(&self, path: &Path, meta: &ExportMetadata) -> Result<(), ExportError> {
        let bytes = self.export_onnx(meta)?;
        std::fs::write(path, bytes).map_err(|source| ExportError::Write {
            path: path.to_path_buf(),
            source,
        })
    }
}

fn check_names(kind: &'static str, names: &[String], expected: usize) -> Result<(), ExportError> {
    if names.len() != expected {
        return Err(ExportError::NameCount {
            kind,
            found: names.len(),
            expected,
        });
    }
    match names
        .iter()
        .find(|n| n.is_empty() || n.contains(',') || n.trim() != n.as_str())
    {
        Some(name) => Err(ExportError::BadName {
            kind,
            name: name.clone(),
        }),
        None => Ok(()),
    }
}

fn model(trainer: &Trainer, meta: &ExportMetadata) -> ModelProto {
    let params = trainer.params();
    let (e, s, a) = (
        params.ensemble_size(),
        trainer.state_dim(),
        trainer.action_dim(),
    );
    let (input_mean, input_std) = trainer.input_statistics();
    let mut g = Graph::default();
    let angles = &trainer.config().angle_state_indices;
    if angles.is_empty() {
        g.node("Concat", &["state", "action"], "x", Some(("axis", 2)));
    } else {
        // The trainer's features (train::data::features): sin and cos of the angle
        // channels, then the other channels, then the action.
        let rest: Vec<i64> = (0..s)
            .filter(|j| !angles.contains(j))
            .map(|j| j as i64)
            .collect();
        let angle_idx: Vec<i64> = angles.iter().map(|&i| i as i64).collect();
        let angle_name = g.int64s("angle_indices", &angle_idx);
        g.node(
            "Gather",
            &["state", &angle_name],
            "angles",
            Some(("axis", 2)),
        );
        g.node("Sin", &["angles"], "angles_sin", None);
        g.node("Cos", &["angles"], "angles_cos", None);
        let mut parts = vec!["angles_sin", "angles_cos"];
        if !rest.is_empty() {
            let rest_name = g.int64s("other_state_indices", &rest);
            g.node(
                "Gather",
                &["state", &rest_name],
                "other_states",
                Some(("axis", 2)),
            );
            parts.push("other_states");
        }
        parts.push("action");
        g.node("Concat", &parts, "x", Some(("axis", 2)));
    }
    let d = input_mean.len();
    let mean_init = g.floats("input_mean", &[d], input_mean.iter().copied());
    g.node("Sub", &["x", &mean_init], "x_centered", None);
    let std_init = g.floats("input_std", &[d], input_std.iter().copied());
    g.node("Div", &["x_centered", &std_init], "h_in", None);
    let layers = params.weights.len();
    let mut h = "h_in".to_string();
    for (i, (w, b)) in params.weights.iter().zip(&params.biases).enumerate() {
        let (_, fan_in, fan_out) = w.dim();
        let w_name = g.floats(&format!("W{i}"), &[e, fan_in, fan_out], w.iter().copied());
        g.node("MatMul", &[&h, &w_name], &format!("mm{i}"), None);
        let b_name = g.floats(&format!("b{i}"), &[e, 1, fan_out], b.iter().copied());
        g.node("Add", &[&format!("mm{i}"), &b_name], &format!("z{i}"), None);
        h = format!("z{i}");
        if i + 1 < layers {
            g.node("Sigmoid", &[&h], &format!("h{i}_sig"), None);
            g.node("Mul", &[&h, &format!("h{i}_sig")], &format!("h{i}"), None);
            h = format!("h{i}");
        }
    }
    for (name, lo, hi) in [("mean", 0, s), ("lv_raw", s, 2 * s)] {
        let bounds: Vec<String> = [("lo", lo as i64), ("hi", hi as i64), ("axis", 2)]
            .iter()
            .map(|(k, v)| g.int64(&format!("{name}_{k}"), *v))
            .collect();
        let inputs = [h.as_str(), &bounds[0], &bounds[1], &bounds[2]];
        g.node("Slice", &inputs, name, None);
    }
    g.floats("max_logvar", &[s], params.max_logvar.iter().copied());
    g.floats("min_logvar", &[s], params.min_logvar.iter().copied());
    g.node("Sub", &["max_logvar", "lv_raw"], "lv_gap_hi", None);
    g.node("Softplus", &["lv_gap_hi"], "lv_sp_hi", None);
    g.node("Sub", &["max_logvar", "lv_sp_hi"], "lv_hi", None);
    g.node("Sub", &["lv_hi", "min_logvar"], "lv_gap_lo", None);
    g.node("Softplus", &["lv_gap_lo"], "lv_sp_lo", None);
    g.node("Add", &["min_logvar", "lv_sp_lo"], "logvar", None);

    let created = meta
        .created_unix
        .unwrap_or_else(|| crate::clock::wall_time_unix_secs() as u64);
    let join = |v: &[usize]| {
        v.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    let props = [
        ("handful.contract", "1".to_string()),
        ("state_names", meta.state_names.join(",")),
        ("action_names", meta.action_names.join(",")),
        ("state_dim", s.to_string()),
        ("action_dim", a.to_string()),
        ("ensemble_size", e.to_string()),
        ("control_period_us", meta.control_period_us.to_string()),
        ("producer", PRODUCER.to_string()),
        ("created_unix", created.to_string()),
        (
            "training_data_sha256",
            trainer.training_data_sha256().unwrap_or("none").to_string(),
        ),
        ("elites", join(trainer.elites())),
        (
            "angle_state_indices",
            join(&trainer.config().angle_state_indices),
        ),
    ];
    ModelProto {
        ir_version: Some(IR_VERSION),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(OPSET),
        }],
        producer_name: Some(PRODUCER.into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        graph: Some(GraphProto {
            node: g.nodes,
            name: Some("handful_ensemble".into()),
            initializer: g.initializers,
            input: vec![value_info("state", e, s), value_info("action", e, a)],
            output: vec![value_info("mean", e, s), value_info("logvar", e, s)],
            ..Default::default()
        }),
        metadata_props: props
            .into_iter()
            .map(|(k, v)| StringStringEntryProto {
                key: Some(k.into()),
                value: Some(v),
            })
            .collect(),
        ..Default::default()
    }
}

/// Nodes and initializers under construction.
#[derive(Default)]
struct Graph {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
}

impl Graph {
    fn node(&mut self, op: &str, inputs: &[&str], output: &str, int_attr: Option<(&str, i64)>) {
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            op_type: Some(op.into()),
            attribute: int_attr
                .map(|(name, i)| AttributeProto {
                    name: Some(name.into()),
                    r#type: Some(AttributeType::Int as i32),
                    i: Some(i),
                    ..Default::default()
                })
                .into_iter()
                .collect(),
            ..Default::default()
        });
    }

    /// A float32 initializer of shape `dims` (row-major `values`); returns its name.
    fn floats(&mut self, name: &str, dims: &[usize], values: impl Iterator<Item = f32>) -> String {
        let raw: Vec<u8> = values.flat_map(f32::to_le_bytes).collect();
        self.tensor(
            name,
            dims.iter().map(|&d| d as i64).collect(),
            DataType::Float,
            raw,
        )
    }

    /// An int64 vector initializer; returns its name.
    fn int64s(&mut self, name: &str, values: &[i64]) -> String {
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.tensor(name, vec![values.len() as i64], DataType::Int64, raw)
    }

    /// A one-element int64 initializer `[value]`; returns its name.
    fn int64(&mut self, name: &str, value: i64) -> String {
        self.tensor(name, vec![1], DataType::Int64, value.to_le_bytes().to_vec())
    }

    fn tensor(&mut self, name: &str, dims: Vec<i64>, dtype: DataType, raw: Vec<u8>) -> String {
        self.initializers.push(TensorProto {
            dims,
            data_type: Some(dtype as i32),
            name: Some(name.into()),
            raw_data: Some(raw),
            ..Default::default()
        });
        name.into()
    }
}

/// A float32 `[E, N, last]` graph input or output with a symbolic `N`.
fn value_info(name: &str, e: usize, last: usize) -> ValueInfoProto {
    let dims = [
        dimension::Value::DimValue(e as i64),
        dimension::Value::DimParam("N".into()),
        dimension::Value::DimValue(last as i64),
    ];
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(DataType::Float as i32),
                shape: Some(TensorShapeProto {
                    dim: dims
                        .into_iter()
                        .map(|v| Dimension {
                            value: Some(v),
                            denotation: None,
                        })
                        .collect(),
                }),
            })),
            denotation: None,
        }),
        ..Default::default()
    }
}
