//! The frame table: its Arrow schema, a columnar buffer of frames ([`Columns`]) and the
//! conversions between the buffer and record batches. Decoding checks every column's type and
//! width and names the file and column when one is wrong; it never panics on a foreign file.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, FixedSizeListArray, Float32Array, Int64Array, RecordBatch,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::{DatasetError, Frame};

/// Column names in file order.
pub const FEATURE_NAMES: [&str; 16] = [
    "observation.state",
    "action",
    "next.reward",
    "next.done",
    "observation.host_time_us",
    "observation.firmware_time_us",
    "is_expert",
    "action.command_seq",
    "observation.applied_command_seq",
    "timestamp",
    "frame_index",
    "episode_index",
    "index",
    "task_index",
    "phase",
    "reset_score",
];

/// Columns a dataset may lack (written by an older handful or by another tool): read
/// back as `-1` (unknown), and learning then pairs commands by the recording's timing.
/// A dataset without `phase` is all forward (0); one without `reset_score` has none (NaN).
pub const OPTIONAL_FEATURES: [&str; 4] = [
    "action.command_seq",
    "observation.applied_command_seq",
    "phase",
    "reset_score",
];

/// A frame read back, with the indices the writer assigned.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedFrame {
    pub frame: Frame,
    pub timestamp_s: f32,
    pub frame_index: i64,
    pub episode_index: i64,
    pub index: i64,
    pub task_index: i64,
}

/// The Arrow type of a float32 vector feature of width `n`: `fixed_size_list<float32>[n]`
/// (HF `List(length=n)`), except that a width of 1 is a plain `float32` column, as lerobot
/// maps every shape-`[1]` feature to a scalar `Value` and its loader casts to that.
pub(crate) fn vector_type(n: usize) -> DataType {
    if n == 1 {
        DataType::Float32
    } else {
        DataType::FixedSizeList(
            Arc::new(Field::new("item", DataType::Float32, true)),
            n as i32,
        )
    }
}

/// The lerobot dtype and the Arrow type of each column, for `state_len` × `action_len`.
pub(crate) fn column_types(state_len: usize, action_len: usize) -> [(&'static str, DataType); 16] {
    [
        ("float32", vector_type(state_len)),
        ("float32", vector_type(action_len)),
        ("float32", DataType::Float32),
        ("bool", DataType::Boolean),
        ("int64", DataType::Int64),
        ("int64", DataType::Int64),
        ("bool", DataType::Boolean),
        ("int64", DataType::Int64),
        ("int64", DataType::Int64),
        ("float32", DataType::Float32),
        ("int64", DataType::Int64),
        ("int64", DataType::Int64),
        ("int64", DataType::Int64),
        ("int64", DataType::Int64),
        ("int64", DataType::Int64),
        ("float32", DataType::Float32),
    ]
}

pub(crate) fn frame_schema(state_len: usize, action_len: usize) -> SchemaRef {
    let fields: Vec<Field> = FEATURE_NAMES
        .iter()
        .zip(column_types(state_len, action_len))
        .map(|(name, (_, ty))| Field::new(*name, ty, true))
        .collect();
    Arc::new(Schema::new(fields))
}

/// Frames stored column by column. `push` does not allocate once capacity is reached.
#[derive(Clone, Debug, Default)]
pub(crate) struct Columns {
    pub state_len: usize,
    pub action_len: usize,
    pub state: Vec<f32>,
    pub action: Vec<f32>,
    pub reward: Vec<f32>,
    pub done: Vec<bool>,
    pub host_time_us: Vec<i64>,
    pub firmware_time_us: Vec<i64>,
    pub is_expert: Vec<bool>,
    pub command_seq: Vec<i64>,
    pub applied_command_seq: Vec<i64>,
    pub timestamp: Vec<f32>,
    pub frame_index: Vec<i64>,
    pub episode_index: Vec<i64>,
    pub index: Vec<i64>,
    pub task_index: Vec<i64>,
    pub phase: Vec<i64>,
    pub reset_score: Vec<f32>,
}

impl Columns {
    pub fn with_capacity(state_len: usize, action_len: usize, rows: usize) -> Self {
        Self {
            state_len,
            action_len,
            state: Vec::with_capacity(rows * state_len),
            action: Vec::with_capacity(rows * action_len),
            reward: Vec::with_capacity(rows),
            done: Vec::with_capacity(rows),
            host_time_us: Vec::with_capacity(rows),
            firmware_time_us: Vec::with_capacity(rows),
            is_expert: Vec::with_capacity(rows),
            command_seq: Vec::with_capacity(rows),
            applied_command_seq: Vec::with_capacity(rows),
            timestamp: Vec::with_capacity(rows),
            frame_index: Vec::with_capacity(rows),
            episode_index: Vec::with_capacity(rows),
            index: Vec::with_capacity(rows),
            task_index: Vec::with_capacity(rows),
            phase: Vec::with_capacity(rows),
            reset_score: Vec::with_capacity(rows),
        }
    }

    pub fn len(&self) -> usize {
        self.reward.len()
    }

    pub fn clear(&mut self) {
        macro_rules! clr { ($($f:ident),*) => { $( self.$f.clear(); )* } }
        clr!(
            state,
            action,
            reward,
            done,
            host_time_us,
            firmware_time_us,
            is_expert,
            command_seq,
            applied_command_seq
        );
        clr!(
            timestamp,
            frame_index,
            episode_index,
            index,
            task_index,
            phase,
            reset_score
        );
    }

    /// `indices` = \[frame_index, episode_index, index, task_index\].
    pub fn push_frame(&mut self, f: &Frame, timestamp_s: f32, indices: [i64; 4]) {
        self.state.extend_from_slice(&f.state);
        self.action.extend_from_slice(&f.action);
        self.reward.push(f.reward);
        self.done.push(f.done);
        self.host_time_us.push(f.host_time_us);
        self.firmware_time_us.push(f.firmware_time_us);
        self.is_expert.push(f.is_expert);
        self.command_seq.push(f.command_seq);
        self.applied_command_seq.push(f.applied_command_seq);
        self.timestamp.push(timestamp_s);
        self.frame_index.push(indices[0]);
        self.episode_index.push(indices[1]);
        self.index.push(indices[2]);
        self.task_index.push(indices[3]);
        self.phase.push(f.phase);
        self.reset_score.push(f.reset_score);
    }

    pub fn append(&mut self, other: &Columns) {
        macro_rules! ext { ($($f:ident),*) => { $( self.$f.extend_from_slice(&other.$f); )* } }
        ext!(
            state,
            action,
            reward,
            done,
            host_time_us,
            firmware_time_us,
            is_expert,
            command_seq,
            applied_command_seq
        );
        ext!(
            timestamp,
            frame_index,
            episode_index,
            index,
            task_index,
            phase,
            reset_score
        );
    }

    pub fn frame(&self, i: usize) -> RecordedFrame {
        let (s, a) = (self.state_len, self.action_len);
        RecordedFrame {
            frame: Frame {
                state: self.state[i * s..(i + 1) * s].to_vec(),
                action: self.action[i * a..(i + 1) * a].to_vec(),
                reward: self.reward[i],
                done: self.done[i],
                host_time_us: self.host_time_us[i],
                firmware_time_us: self.firmware_time_us[i],
                is_expert: self.is_expert[i],
                command_seq: self.command_seq[i],
                applied_command_seq: self.applied_command_seq[i],
                phase: self.phase[i],
                reset_score: self.reset_score[i],
            },
            timestamp_s: self.timestamp[i],
            frame_index: self.frame_index[i],
            episode_index: self.episode_index[i],
            index: self.index[i],
            task_index: self.task_index[i],
        }
    }

    pub fn to_batch(&self) -> RecordBatch {
        let list = |values: &[f32], n: usize| -> ArrayRef {
            let values = Float32Array::from(values.to_vec());
            if n == 1 {
                return Arc::new(values);
            }
            let item = Arc::new(Field::new("item", DataType::Float32, true));
            Arc::new(FixedSizeListArray::new(
                item,
                n as i32,
                Arc::new(values),
                None,
            ))
        };
        let cols: Vec<ArrayRef> = vec![
            list(&self.state, self.state_len),
            list(&self.action, self.action_len),
            Arc::new(Float32Array::from(self.reward.clone())),
            Arc::new(BooleanArray::from(self.done.clone())),
            Arc::new(Int64Array::from(self.host_time_us.clone())),
            Arc::new(Int64Array::from(self.firmware_time_us.clone())),
            Arc::new(BooleanArray::from(self.is_expert.clone())),
            Arc::new(Int64Array::from(self.command_seq.clone())),
            Arc::new(Int64Array::from(self.applied_command_seq.clone())),
            Arc::new(Float32Array::from(self.timestamp.clone())),
            Arc::new(Int64Array::from(self.frame_index.clone())),
            Arc::new(Int64Array::from(self.episode_index.clone())),
            Arc::new(Int64Array::from(self.index.clone())),
            Arc::new(Int64Array::from(self.task_index.clone())),
            Arc::new(Int64Array::from(self.phase.clone())),
            Arc::new(Float32Array::from(self.reset_score.clone())),
        ];
        let schema = frame_schema(self.state_len, self.action_len);
        // Lengths and types match the schema by construction.
        RecordBatch::try_new(schema, cols)
            .unwrap_or_else(|_| RecordBatch::new_empty(frame_schema(0, 0)))
    }

    /// Decodes a batch of `path`, checking every column's type and the vector widths.
    pub fn from_batch(
        batch: &RecordBatch,
        state_len: usize,
        action_len: usize,
        path: &Path,
    ) -> Result<Self, DatasetError> {
        let mut out = Self::with_capacity(state_len, action_len, batch.num_rows());
        let types = column_types(state_len, action_len);
        let col = |i: usize| -> Result<&ArrayRef, DatasetError> {
            let (name, want) = (FEATURE_NAMES[i], &types[i].1);
            let found = batch
                .column_by_name(name)
                .ok_or_else(|| bad(path, name, want, "no such column".into()))?;
            if !column_compatible(i, found.data_type(), want) {
                return Err(bad(path, name, want, format!("{}", found.data_type())));
            }
            if found.null_count() > 0 {
                return Err(bad(
                    path,
                    name,
                    want,
                    format!("{} null values", found.null_count()),
                ));
            }
            Ok(found)
        };
        macro_rules! prim {
            ($i:expr, $ty:ty, $dst:expr) => {{
                let a = col($i)?.as_any().downcast_ref::<$ty>().ok_or_else(|| {
                    bad(
                        path,
                        FEATURE_NAMES[$i],
                        &types[$i].1,
                        "another array type".into(),
                    )
                })?;
                $dst.extend(a.iter().map(|v| v.unwrap_or_default()));
            }};
        }
        for (i, dst, width) in [
            (0usize, &mut out.state, state_len),
            (1, &mut out.action, action_len),
        ] {
            let values = vector_values(col(i)?.as_ref(), width).ok_or_else(|| {
                bad(
                    path,
                    FEATURE_NAMES[i],
                    &types[i].1,
                    "another array type".into(),
                )
            })?;
            dst.extend_from_slice(values);
        }
        prim!(2, Float32Array, out.reward);
        prim!(3, BooleanArray, out.done);
        prim!(4, Int64Array, out.host_time_us);
        prim!(5, Int64Array, out.firmware_time_us);
        prim!(6, BooleanArray, out.is_expert);
        for (i, dst) in [
            (7usize, &mut out.command_seq),
            (8, &mut out.applied_command_seq),
        ] {
            if batch.column_by_name(FEATURE_NAMES[i]).is_some() {
                prim!(i, Int64Array, dst);
            } else {
                dst.extend(std::iter::repeat_n(-1, batch.num_rows()));
            }
        }
        prim!(9, Float32Array, out.timestamp);
        prim!(10, Int64Array, out.frame_index);
        prim!(11, Int64Array, out.episode_index);
        prim!(12, Int64Array, out.index);
        prim!(13, Int64Array, out.task_index);
        if batch.column_by_name(FEATURE_NAMES[14]).is_some() {
            prim!(14, Int64Array, out.phase);
        } else {
            out.phase.extend(std::iter::repeat_n(0, batch.num_rows()));
        }
        if batch.column_by_name(FEATURE_NAMES[15]).is_some() {
            prim!(15, Float32Array, out.reset_score);
        } else {
            out.reset_score
                .extend(std::iter::repeat_n(f32::NAN, batch.num_rows()));
        }
        Ok(out)
    }
}

/// A fixed-size list differing only in its item field's name or nullability (pyarrow, HF).
pub(crate) fn compatible(found: &DataType, want: &DataType) -> bool {
    use DataType::FixedSizeList;
    found == want
        || matches!((found, want), (FixedSizeList(f, n), FixedSizeList(g, m)) if n == m && f.data_type() == g.data_type())
}

/// Whether column `i` of [`FEATURE_NAMES`] may have type `found` where `want` is written:
/// [`compatible`], and for `observation.state` and `action` of width 1 either form, the
/// plain float32 column handful and lerobot write or the one-element list handful wrote
/// before (its older datasets are read as they are).
pub(crate) fn column_compatible(i: usize, found: &DataType, want: &DataType) -> bool {
    let list_of_one_float = matches!(
        found,
        DataType::FixedSizeList(f, 1) if f.data_type() == &DataType::Float32
    );
    compatible(found, want) || (i < 2 && want == &DataType::Float32 && list_of_one_float)
}

/// The row-major values of a float32 vector column of `width`: a fixed-size list of that
/// width, or for a width of 1 a plain float32 column. `None` for any other array.
fn vector_values(array: &dyn Array, width: usize) -> Option<&[f32]> {
    if width == 1
        && let Some(a) = array.as_any().downcast_ref::<Float32Array>()
    {
        return Some(&a.values()[..]);
    }
    let a = array.as_any().downcast_ref::<FixedSizeListArray>()?;
    if a.value_length() as usize != width {
        return None;
    }
    let values = a.values().as_any().downcast_ref::<Float32Array>()?;
    let start = a.offset() * width;
    values.values().get(start..start + a.len() * width)
}

fn bad(path: &Path, column: &str, want: &DataType, found: String) -> DatasetError {
    DatasetError::Column {
        path: path.to_path_buf(),
        column: column.to_string(),
        expected: format!("{want}"),
        found,
    }
}
