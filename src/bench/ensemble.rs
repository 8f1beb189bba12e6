//! ONNX ensembles under load: throughput of one `predict` call by batch size and thread
//! count, and plan latency of the PETS paper's and the shipped real-time planner over
//! them. Models are written with random weights by `models/make_ensemble.py` (needs the
//! `.venv` of `models/setup.sh`) into a temporary directory removed afterwards.
//!
//! Bench-only: allocates, spawns Python, reads the real clock.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use ndarray::Array3;
use serde::Serialize;

use super::sgemm::SgemmCeiling;
use super::stats::{LatencySummary, time_us};
use crate::clock::Clock;
use crate::model::{Ensemble, ModelExpectation, ModelOptions};
use crate::mpc::{Dynamics, EnsembleShape, Planner, PlannerConfig, Propagation, TaskCost};
use crate::plant::cartpole::{SPEC, STATE_DIM};
use crate::task::Task;

const ACTION_DIM: usize = 1;

/// The two generated model files, deleted on drop.
pub struct BenchModels {
    dir: PathBuf,
    pub paper: (EnsembleShape, PathBuf),
    pub realtime: (EnsembleShape, PathBuf),
}

impl Drop for BenchModels {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The repository holding `.venv` and `models/`: the working directory if it has them,
/// else the one this crate was built from.
fn repo_root() -> anyhow::Result<PathBuf> {
    let candidates = [
        std::env::current_dir().unwrap_or_default(),
        PathBuf::from(env!("CARGO_MANIFEST_DIR")),
    ];
    candidates
        .into_iter()
        .find(|dir| {
            dir.join(".venv/bin/python").is_file() && dir.join("models/make_ensemble.py").is_file()
        })
        .context(
            "the bench needs the Python environment of models/setup.sh (.venv/bin/python and \
             models/make_ensemble.py, in the working directory or the source tree): run \
             `bash models/setup.sh` from the repository root, or pass --skip-onnx",
        )
}

impl BenchModels {
    /// Writes the PETS-size and the real-time-size cart-pole ensembles (random weights).
    pub fn generate() -> anyhow::Result<Self> {
        let root = repo_root()?;
        let dir = std::env::temp_dir().join(format!("handful-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let models = Self {
            paper: (EnsembleShape::PETS, dir.join("pets.onnx")),
            realtime: (
                EnsembleShape::for_task(Task::CartpoleSwingup),
                dir.join("realtime.onnx"),
            ),
            dir,
        };
        for (shape, path) in [&models.paper, &models.realtime] {
            make_ensemble(&root, *shape, path)?;
        }
        Ok(models)
    }
}

fn make_ensemble(root: &Path, shape: EnsembleShape, out: &Path) -> anyhow::Result<()> {
    let hidden = vec![shape.hidden_units.to_string(); shape.hidden_layers].join(",");
    let state_names: Vec<&str> = SPEC.states.iter().map(|s| s.name).collect();
    let action_names: Vec<&str> = SPEC.actions.iter().map(|a| a.name).collect();
    let output = Command::new(root.join(".venv/bin/python"))
        .arg(root.join("models/make_ensemble.py"))
        .arg("--out")
        .arg(out)
        .args(["--ensemble-size", &shape.ensemble_size.to_string()])
        .args(["--state-names", &state_names.join(",")])
        .args(["--action-names", &action_names.join(",")])
        .args(["--hidden", &hidden, "--activation", "swish", "--seed", "0"])
        .args(["--control-period-us", &SPEC.control_period_us.to_string()])
        .output()
        .context("running models/make_ensemble.py")?;
    if !output.status.success() {
        bail!(
            "models/make_ensemble.py failed for {shape:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

fn load(path: &Path, intra_threads: usize) -> anyhow::Result<Ensemble> {
    let expect = ModelExpectation {
        state_names: SPEC.states.iter().map(|s| s.name.to_owned()).collect(),
        action_names: SPEC.actions.iter().map(|a| a.name.to_owned()).collect(),
        control_period_us: u64::from(SPEC.control_period_us),
    };
    let options = ModelOptions {
        intra_threads,
        spinning: false,
    };
    Ensemble::load_with(path, &expect, options)
        .with_context(|| format!("loading {}", path.display()))
}

/// One throughput measurement.
#[derive(Clone, Debug, Serialize)]
pub struct ThroughputRow {
    pub model: String,
    pub shape: EnsembleShape,
    pub rows_per_member: usize,
    pub intra_threads: usize,
    pub calls: usize,
    /// Median time of one `predict` over `E × N` rows, µs.
    pub call_p50_us: u64,
    /// Rows (each through all `E` members) per second, from the median call.
    pub rows_per_second: f64,
    /// `rows/s × 2·E·Σ in·out`, GFLOP/s.
    pub gflops: f64,
    /// Of the SGEMM ceiling for the same thread count.
    pub percent_of_ceiling: f64,
}

/// Times `predict` for every batch size and 1 and 2 intra-op threads on both models.
pub fn throughput(
    models: &BenchModels,
    batch_sizes: &[usize],
    ceiling: &SgemmCeiling,
) -> anyhow::Result<Vec<ThroughputRow>> {
    let clock = Clock::real();
    let mut rows = Vec::new();
    for (label, (shape, path)) in [
        ("PETS 5x3x500", &models.paper),
        ("real-time", &models.realtime),
    ] {
        let flops_per_row = shape.flops_per_row(STATE_DIM, ACTION_DIM) as f64;
        let label = format!(
            "{label} {}x{}x{}",
            shape.ensemble_size, shape.hidden_layers, shape.hidden_units
        );
        for threads in [1, 2] {
            let mut model = load(path, threads)?;
            for &n in batch_sizes {
                let e = shape.ensemble_size;
                let states = Array3::from_shape_fn((e, n, STATE_DIM), |(i, j, k)| {
                    ((i + 3 * j + 7 * k) % 11) as f32 * 0.1 - 0.5
                });
                let actions = Array3::from_shape_fn((e, n, ACTION_DIM), |(_, j, _)| {
                    (j % 7) as f32 * 0.3 - 1.0
                });
                let mut mean = Array3::zeros((e, n, STATE_DIM));
                let mut logvar = Array3::zeros((e, n, STATE_DIM));
                let mut call = || {
                    model.predict(
                        states.view(),
                        actions.view(),
                        mean.view_mut(),
                        logvar.view_mut(),
                    )
                };
                call().context("warm-up predict")?;
                // About 0.3 s of calls per point, at least 3 and at most 200.
                let (first_us, _) = time_us(&clock, &mut call);
                let calls = (300_000 / first_us.max(1)).clamp(3, 200) as usize;
                let mut samples = Vec::with_capacity(calls);
                for _ in 0..calls {
                    let (us, result) = time_us(&clock, &mut call);
                    result.context("predict")?;
                    samples.push(us.max(1));
                }
                let p50_us = LatencySummary::from_samples(&samples).p50_us.max(1);
                let rows_per_second = n as f64 * 1e6 / p50_us as f64;
                let gflops = rows_per_second * flops_per_row / 1e9;
                rows.push(ThroughputRow {
                    model: label.clone(),
                    shape: *shape,
                    rows_per_member: n,
                    intra_threads: threads,
                    calls,
                    call_p50_us: p50_us,
                    rows_per_second,
                    gflops,
                    percent_of_ceiling: 100.0 * gflops / ceiling.for_threads(threads).max(1e-9),
                });
            }
        }
    }
    Ok(rows)
}

/// Plan latency of one planner over one model.
#[derive(Clone, Debug, Serialize)]
pub struct PlanLatency {
    pub label: String,
    pub shape: EnsembleShape,
    pub config: PlannerConfig,
    pub intra_threads: usize,
    pub latency: LatencySummary,
    pub mean_iterations: f64,
    pub mean_candidates: f64,
    /// Network flops of a mean plan, GFLOP.
    pub gflop_per_plan: f64,
}

/// Times `plans` plans after `warmup` ones, with the config's budget as a deadline.
fn time_plans(
    label: &str,
    (shape, path): &(EnsembleShape, PathBuf),
    config: PlannerConfig,
    intra_threads: usize,
    warmup: usize,
    plans: usize,
) -> anyhow::Result<PlanLatency> {
    let clock = Clock::real();
    let mut model = load(path, intra_threads)?;
    let bounds = [(-3.0f32, 3.0f32)];
    let mut planner = Planner::new(
        config.clone(),
        STATE_DIM,
        ACTION_DIM,
        &bounds,
        shape.ensemble_size,
    )?;
    let cost = TaskCost(Task::CartpoleSwingup);
    let (mut samples, mut iterations, mut candidates) = (Vec::new(), 0u64, 0u64);
    for i in 0..warmup + plans {
        let phase = i as f32 * 0.1;
        let state = [0.1 * phase.sin(), 0.05 * i as f32, 0.1 * phase.cos(), 0.0];
        let start_us = clock.now_us();
        let deadline = config.budget_us.map(|b| (&clock, start_us + b));
        let stats = planner.plan(&state, &mut model, &cost, deadline)?;
        let us = clock.now_us().saturating_sub(start_us);
        if i >= warmup {
            samples.push(us);
            iterations += u64::from(stats.iterations);
            candidates += stats.samples_evaluated;
        }
    }
    let n = plans.max(1) as f64;
    let per_candidate = match config.propagation {
        Propagation::Expectation => 1.0,
        Propagation::TsInf | Propagation::Ts1 => {
            config.particles as f64 / shape.ensemble_size as f64
        }
    };
    let flops = shape.flops_per_row(STATE_DIM, ACTION_DIM) as f64;
    Ok(PlanLatency {
        label: label.to_owned(),
        shape: *shape,
        intra_threads,
        latency: LatencySummary::from_samples(&samples),
        mean_iterations: iterations as f64 / n,
        mean_candidates: candidates as f64 / n,
        gflop_per_plan: candidates as f64 / n * per_candidate * config.horizon as f64 * flops / 1e9,
        config,
    })
}

/// The PETS paper's planner on the PETS model (few plans: seconds each) and the shipped
/// real-time planner on the real-time model, with and without its budget.
pub fn plan_latency(
    models: &BenchModels,
    plans: usize,
    paper_plans: usize,
) -> anyhow::Result<Vec<PlanLatency>> {
    let task = Task::CartpoleSwingup;
    let realtime = PlannerConfig::for_task(task);
    let unbounded = PlannerConfig {
        budget_us: None,
        ..realtime.clone()
    };
    let mut out = Vec::new();
    for threads in [1, 2] {
        out.push(time_plans(
            &format!(
                "real-time, budget {:?} µs, {threads} thr",
                realtime.budget_us
            ),
            &models.realtime,
            realtime.clone(),
            threads,
            5,
            plans.max(30),
        )?);
        out.push(time_plans(
            &format!("real-time, no budget, {threads} thr"),
            &models.realtime,
            unbounded.clone(),
            threads,
            5,
            plans.max(30),
        )?);
    }
    if paper_plans > 0 {
        out.push(time_plans(
            "PETS paper (P400 K40 5it H25 20p), 2 thr",
            &models.paper,
            PlannerConfig::pets_paper(task),
            2,
            1,
            paper_plans,
        )?);
    }
    Ok(out)
}
