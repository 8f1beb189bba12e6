//! [`merge`]: concatenates datasets into a new one, re-indexing episodes, frames and tasks
//! (tasks are matched by their text). Inputs must share `fps` and `features` (names, dtypes,
//! shapes, channel names; a feature handful records that one lacks is read with its
//! default); the output keeps each input's provenance under `handful.sources`.

use std::path::Path;

use super::meta::{Info, SourceProvenance};
use super::reader::DatasetReader;
use super::writer::DatasetWriter;
use super::{DatasetError, DatasetSpec};

/// Merges `inputs`, in order, into a new dataset at `out`. Returns the output's info.
pub fn merge(inputs: &[&Path], out: &Path) -> Result<Info, DatasetError> {
    if inputs.is_empty() {
        return Err(DatasetError::State("merge: no input datasets"));
    }
    let readers = inputs
        .iter()
        .map(|p| DatasetReader::open(p))
        .collect::<Result<Vec<_>, _>>()?;
    for (path, reader) in inputs.iter().zip(&readers) {
        reader.info().check_known_features(path)?;
    }
    // The features a dataset lacks (another tool's: the optional ones) are read back with
    // their defaults, so compared as handful writes them.
    let completed = |info: &Info| {
        let mut info = info.clone();
        info.add_missing_features();
        info
    };
    let reference = completed(readers[0].info());
    for (path, reader) in inputs.iter().zip(&readers).skip(1) {
        let info = &completed(reader.info());
        if info.fps != reference.fps {
            let (expected, found) = (reference.fps.to_string(), info.fps.to_string());
            return Err(DatasetError::Incompatible {
                path: path.to_path_buf(),
                what: "fps",
                expected,
                found,
            });
        }
        if info.features != reference.features {
            let show = |i: &Info| serde_json::to_string(&i.features).unwrap_or_default();
            let (expected, found) = (show(&reference), show(info));
            return Err(DatasetError::Incompatible {
                path: path.to_path_buf(),
                what: "features",
                expected,
                found,
            });
        }
    }
    let names = |k: &str| {
        reference
            .features
            .get(k)
            .and_then(|f| f.names.clone())
            .unwrap_or_default()
    };
    let spec = DatasetSpec {
        robot_type: reference.robot_type.clone().unwrap_or_default(),
        fps: reference.fps,
        state_names: names("observation.state"),
        action_names: names("action"),
        provenance: reference.handful.provenance.clone(),
    };
    let mut writer = DatasetWriter::create(out, spec)?.without_periodic_flush();
    let mut sources = Vec::new();
    for (path, reader) in inputs.iter().zip(&readers) {
        let first_episode = writer.episodes().len() as i64;
        // Every calibration the input's episodes name, kept with their first commit.
        let handful = &reader.info().handful;
        let mut calibrations = handful.calibrations.clone();
        calibrations.insert(
            handful.provenance.calibration_sha256.clone(),
            handful.provenance.calibration_text.clone(),
        );
        for (sha, text) in calibrations.into_iter().filter(|(sha, _)| !sha.is_empty()) {
            writer.set_calibration(&sha, &text);
        }
        for ep in reader.episodes() {
            let task = ep.tasks.first().cloned().unwrap_or_default();
            // Each episode keeps its calibration and whether it was recovered.
            let calibration = ep
                .calibration_sha256
                .clone()
                .or_else(|| non_empty(&reader.info().handful.provenance.calibration_sha256));
            writer.begin_episode_as(&task, calibration, ep.recovered)?;
            for frame in reader.episode_frames(ep.episode_index)? {
                writer.push(&frame?.frame)?;
            }
            writer.end_episode(true)?;
        }
        sources.push(SourceProvenance {
            root: path.display().to_string(),
            first_episode,
            episodes: reader.episodes().len() as i64,
            handful: Box::new(reader.info().handful.clone()),
        });
    }
    drop(writer);
    let mut info = Info::load(out)?;
    info.handful.sources = sources;
    info.save(out)?;
    Ok(info)
}

fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_string())
}
