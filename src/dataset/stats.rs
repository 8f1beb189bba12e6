//! Feature statistics as lerobot computes them: per episode `min`, `max`, `mean`, `std`
//! (population, numpy's default) and `count` over the frame axis, one value per vector
//! component; the dataset's are aggregated from the episodes' (lerobot's `aggregate_stats`:
//! count-weighted mean, pooled variance including the spread of the means). Held as `f64`;
//! written with a boolean or int64 feature's `min` and `max` in its type, as lerobot does.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::columns::{Columns, FEATURE_NAMES};
use super::meta::Feature;

/// Statistics of one feature; vectors of the feature's width (1 for scalars).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureStats {
    pub min: Vec<f64>,
    pub max: Vec<f64>,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    /// Number of frames, as lerobot's one-element list.
    pub count: Vec<i64>,
}

/// Statistics of every feature, by name.
pub type Stats = BTreeMap<String, FeatureStats>;

/// The type a feature's `min` and `max` are stored in: lerobot keeps a boolean or int64
/// feature's in its own type (the other statistics are float64, `count` int64).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Extremes {
    Float,
    Int,
    Bool,
}

impl Extremes {
    /// Of the feature `name` in `features` (`info.json`'s dtype; float when unknown).
    pub(crate) fn of(features: &BTreeMap<String, Feature>, name: &str) -> Self {
        match features.get(name).map(|f| f.dtype.as_str()) {
            Some("bool") => Self::Bool,
            Some("int64" | "int32" | "int16" | "int8" | "uint8") => Self::Int,
            _ => Self::Float,
        }
    }

    /// `v` as JSON in this type (a statistic of integers or booleans is one, exactly).
    pub(crate) fn json(self, v: f64) -> serde_json::Value {
        match self {
            Self::Float => serde_json::json!(v),
            Self::Int => serde_json::json!(v as i64),
            Self::Bool => serde_json::json!(v != 0.0),
        }
    }
}

/// `stats.json` as lerobot writes it: every feature's statistics, with `min` and `max` in
/// the feature's type ([`Extremes`]).
pub(crate) fn stats_json(stats: &Stats, features: &BTreeMap<String, Feature>) -> serde_json::Value {
    let out: serde_json::Map<String, serde_json::Value> = stats
        .iter()
        .map(|(name, s)| {
            let kind = Extremes::of(features, name);
            let extremes =
                |v: &[f64]| serde_json::Value::Array(v.iter().map(|&x| kind.json(x)).collect());
            let value = serde_json::json!({
                "min": extremes(&s.min),
                "max": extremes(&s.max),
                "mean": s.mean,
                "std": s.std,
                "count": s.count,
            });
            (name.clone(), value)
        })
        .collect();
    serde_json::Value::Object(out)
}

/// `values` is rows × `width`, row-major.
fn feature_stats(values: &[f64], width: usize) -> FeatureStats {
    let rows = values.len().checked_div(width).unwrap_or(0);
    let mut out = FeatureStats {
        min: vec![f64::INFINITY; width],
        max: vec![f64::NEG_INFINITY; width],
        mean: vec![0.0; width],
        std: vec![0.0; width],
        count: vec![rows as i64],
    };
    if rows == 0 {
        // Nothing to describe (a column no frame of the episode fills): zeros, not
        // infinities, which JSON cannot hold.
        out.min.fill(0.0);
        out.max.fill(0.0);
        return out;
    }
    for row in values.chunks_exact(width) {
        for (j, &v) in row.iter().enumerate() {
            out.min[j] = out.min[j].min(v);
            out.max[j] = out.max[j].max(v);
            out.mean[j] += v;
        }
    }
    out.mean.iter_mut().for_each(|m| *m /= rows as f64);
    for row in values.chunks_exact(width) {
        for (j, &v) in row.iter().enumerate() {
            out.std[j] += (v - out.mean[j]).powi(2);
        }
    }
    out.std
        .iter_mut()
        .for_each(|s| *s = (*s / rows as f64).sqrt());
    out
}

/// Statistics of one episode's frames, for every feature of [`FEATURE_NAMES`].
pub(crate) fn episode_stats(c: &Columns) -> Stats {
    let f32s = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>();
    let i64s = |v: &[i64]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    let bools = |v: &[bool]| {
        v.iter()
            .map(|&x| f64::from(u8::from(x)))
            .collect::<Vec<_>>()
    };
    // `reset_score` is NaN where no classifier scored the frame: its statistics are of
    // the scored frames (its count says how many).
    let finite = |v: &[f32]| {
        v.iter()
            .filter(|x| x.is_finite())
            .map(|&x| f64::from(x))
            .collect::<Vec<_>>()
    };
    let columns: [(Vec<f64>, usize); 16] = [
        (f32s(&c.state), c.state_len),
        (f32s(&c.action), c.action_len),
        (f32s(&c.reward), 1),
        (bools(&c.done), 1),
        (i64s(&c.host_time_us), 1),
        (i64s(&c.firmware_time_us), 1),
        (bools(&c.is_expert), 1),
        (i64s(&c.command_seq), 1),
        (i64s(&c.applied_command_seq), 1),
        (f32s(&c.timestamp), 1),
        (i64s(&c.frame_index), 1),
        (i64s(&c.episode_index), 1),
        (i64s(&c.index), 1),
        (i64s(&c.task_index), 1),
        (i64s(&c.phase), 1),
        (finite(&c.reset_score), 1),
    ];
    FEATURE_NAMES
        .iter()
        .zip(columns)
        .map(|(name, (values, width))| (name.to_string(), feature_stats(&values, width)))
        .collect()
}

/// Aggregates per-episode statistics into the dataset's.
pub(crate) fn aggregate<'a>(episodes: impl IntoIterator<Item = &'a Stats>) -> Stats {
    let episodes: Vec<&Stats> = episodes.into_iter().collect();
    let mut out = Stats::new();
    // Every feature any episode has: episodes another tool wrote may lack some (appended
    // to, their statistics are of the episodes that have them).
    let names: std::collections::BTreeSet<&String> =
        episodes.iter().flat_map(|e| e.keys()).collect();
    for name in names {
        let parts: Vec<&FeatureStats> = episodes.iter().filter_map(|e| e.get(name)).collect();
        let width = parts[0].mean.len();
        let total: i64 = parts
            .iter()
            .map(|p| p.count.first().copied().unwrap_or(0))
            .sum();
        let mut agg = FeatureStats {
            min: vec![f64::INFINITY; width],
            max: vec![f64::NEG_INFINITY; width],
            mean: vec![0.0; width],
            std: vec![0.0; width],
            count: vec![total],
        };
        if total == 0 {
            agg.min.fill(0.0);
            agg.max.fill(0.0);
            out.insert(name.clone(), agg);
            continue;
        }
        let counted =
            |p: &&&FeatureStats| p.mean.len() == width && p.count.first().copied().unwrap_or(0) > 0;
        for p in parts.iter().filter(counted) {
            let w = p.count.first().copied().unwrap_or(0) as f64 / total as f64;
            for j in 0..width {
                agg.min[j] = agg.min[j].min(p.min[j]);
                agg.max[j] = agg.max[j].max(p.max[j]);
                agg.mean[j] += w * p.mean[j];
            }
        }
        for p in parts.iter().filter(counted) {
            let w = p.count.first().copied().unwrap_or(0) as f64 / total as f64;
            for j in 0..width {
                agg.std[j] += w * (p.std[j].powi(2) + (p.mean[j] - agg.mean[j]).powi(2));
            }
        }
        agg.std.iter_mut().for_each(|s| *s = s.sqrt());
        out.insert(name.clone(), agg);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregate_equals_stats_of_concatenation() {
        let a = [1.0, 2.0, 3.0, 4.0];
        let b = [10.0, -2.0];
        let all: Vec<f64> = a.iter().chain(b.iter()).copied().collect();
        let mut ea = Stats::new();
        ea.insert("x".into(), feature_stats(&a, 1));
        let mut eb = Stats::new();
        eb.insert("x".into(), feature_stats(&b, 1));
        let agg = &aggregate([&ea, &eb])["x"];
        let direct = feature_stats(&all, 1);
        assert_eq!(agg.min, direct.min);
        assert_eq!(agg.max, direct.max);
        assert_eq!(agg.count, vec![6]);
        assert!((agg.mean[0] - direct.mean[0]).abs() < 1e-12);
        assert!((agg.std[0] - direct.std[0]).abs() < 1e-12);
    }
}
