//! Where a learning run's experience comes from before its first trial: the datasets
//! it is seeded with (`--expert`, and with `--resume RUN` every dataset that run learned
//! from, recursively, as its `config.json` names them, and what it recorded), and the
//! model version it continues after.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::LearnConfig;
use crate::sysid::Kind;

/// The datasets a run is seeded with, oldest first: the resumed run's (recursively),
/// then `--expert`.
pub(super) fn seed_sources(config: &LearnConfig) -> anyhow::Result<Vec<(PathBuf, Kind)>> {
    let mut sources = Vec::new();
    if let Some(run) = &config.resume {
        resumed_sources(run, &mut sources, &mut Vec::new())
            .with_context(|| format!("resuming {}", run.display()))?;
    }
    if let Some(path) = &config.expert_dataset {
        let path = existing_dataset(path).context("the expert dataset")?;
        if !sources.iter().any(|(p, _)| *p == path) {
            sources.push((path, Kind::Expert));
        }
    }
    Ok(sources)
}

fn existing_dataset(path: &Path) -> anyhow::Result<PathBuf> {
    if !path.join("meta/info.json").is_file() {
        bail!(
            "no dataset at {} (no meta/info.json: not a LeRobot v3 dataset)",
            path.display()
        );
    }
    Ok(path.canonicalize()?)
}

/// What the learning run at `run` learned from and recorded.
fn resumed_sources(
    run: &Path,
    out: &mut Vec<(PathBuf, Kind)>,
    seen: &mut Vec<PathBuf>,
) -> anyhow::Result<()> {
    let dir = run
        .canonicalize()
        .with_context(|| format!("no run directory at {}", run.display()))?;
    if seen.contains(&dir) {
        bail!("{} resumes itself (a cycle of --resume)", dir.display());
    }
    seen.push(dir.clone());
    let config_path = dir.join("config.json");
    let text = std::fs::read_to_string(&config_path).with_context(|| {
        format!(
            "{} is not a run directory (no readable config.json)",
            dir.display()
        )
    })?;
    let config: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", config_path.display()))?;
    let Some(learn) = config.get("learn") else {
        bail!(
            "{} is not a learning run (its config.json has no `learn` section)",
            dir.display()
        );
    };
    if let Some(previous) = learn["resume"].as_str() {
        resumed_sources(Path::new(previous), out, seen)
            .with_context(|| format!("the run {} resumed", dir.display()))?;
    }
    if let Some(dataset) = learn["expert_dataset"].as_str() {
        let path = existing_dataset(Path::new(dataset))
            .with_context(|| format!("the expert dataset of {}", dir.display()))?;
        out.push((path, Kind::Expert));
    }
    let before = out.len();
    for (name, kind) in [("expert", Kind::Expert), ("learner", Kind::Learner)] {
        let path = dir.join(name);
        if path.join("meta/info.json").is_file() {
            out.push((path, kind));
        }
    }
    if out.len() == before && learn["expert_dataset"].is_null() && learn["resume"].is_null() {
        bail!(
            "{} holds no experience (no expert/ or learner/ dataset)",
            dir.display()
        );
    }
    let mut unique = Vec::new();
    for source in out.drain(..) {
        if !unique.iter().any(|(p, _): &(PathBuf, Kind)| *p == source.0) {
            unique.push(source);
        }
    }
    *out = unique;
    Ok(())
}

/// Removes `models/candidate.onnx` from the run being resumed, if a retrain that was
/// interrupted (`kill -9`, power lost) left one: a candidate is written, scored and then
/// either renamed to `v{N}.onnx` or deleted, so one still there was never validated and
/// nothing refers to it. Returns whether one was removed.
pub(super) fn remove_stray_candidate(run: &Path) -> anyhow::Result<bool> {
    if !run.join("config.json").is_file() {
        return Ok(false); // not a run directory: `seed_sources` says so
    }
    let path = run.join("models").join(crate::sysid::CANDIDATE_FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => {
            tracing::warn!(
                path = %path.display(),
                "removed a candidate model an interrupted retrain left unvalidated"
            );
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}

/// The newest model version in a run's `models/` (0: none).
pub(super) fn last_model_version(run: &Path) -> u32 {
    std::fs::read_dir(run.join("models"))
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_prefix('v')?.strip_suffix(".onnx")?.parse().ok()
        })
        .max()
        .unwrap_or(0)
}
