//! Planner tests through the library: analytic models defined here (double integrator,
//! Gymnasium pendulum), a toy ensemble with known noise, a simulated clock moved by the
//! model itself (no wall-clock assertions).

use handful::clock::Clock;
use handful::control::{ControlError, Controller, Observation};
use handful::mpc::sampling;
use handful::mpc::{
    AnalyticDynamics, ConfigError, Cost, Dynamics, DynamicsError, MpcController, Optimizer,
    PlanError, Planner, PlannerConfig, Propagation, StopReason, TaskCost,
};
use handful::task::{Task, pendulum_reward};
use ndarray::{ArrayView2, ArrayView3, ArrayViewMut1, ArrayViewMut3};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Member `e` moves `state[0]` by `offset·e`; Gaussian noise σ when probabilistic.
struct ToyEnsemble {
    offset: f32,
    sigma: f32,
    probabilistic: bool,
    /// Advances this clock by `us_per_call` per predict (simulated compute time).
    clock: Option<(Clock, u64)>,
}

impl ToyEnsemble {
    fn new(offset: f32, sigma: f32, probabilistic: bool) -> Self {
        Self {
            offset,
            sigma,
            probabilistic,
            clock: None,
        }
    }
}

const TOY_E: usize = 5;

impl Dynamics for ToyEnsemble {
    fn state_dim(&self) -> usize {
        2
    }
    fn action_dim(&self) -> usize {
        1
    }
    fn ensemble_size(&self) -> usize {
        TOY_E
    }
    fn is_probabilistic(&self) -> bool {
        self.probabilistic
    }
    fn predict(
        &mut self,
        _states: ArrayView3<'_, f32>,
        actions: ArrayView3<'_, f32>,
        mut mean: ArrayViewMut3<'_, f32>,
        mut logvar: ArrayViewMut3<'_, f32>,
    ) -> Result<(), DynamicsError> {
        for ((e, n, k), m) in mean.indexed_iter_mut() {
            *m = if k == 0 {
                self.offset * e as f32
            } else {
                0.1 * actions[[e, n, 0]]
            };
        }
        logvar.fill((self.sigma * self.sigma).max(1e-30).ln());
        if let Some((clock, us)) = &self.clock {
            clock.advance(*us);
        }
        Ok(())
    }
}

struct ZeroCost;
impl Cost for ZeroCost {
    fn cost(&self, _: ArrayView2<'_, f32>, _: ArrayView2<'_, f32>, _: ArrayViewMut1<'_, f32>) {}
}

/// `x² + v² + 0.01·u²`.
struct QuadraticCost;
impl Cost for QuadraticCost {
    fn cost(
        &self,
        s: ArrayView2<'_, f32>,
        a: ArrayView2<'_, f32>,
        mut out: ArrayViewMut1<'_, f32>,
    ) {
        for (n, o) in out.iter_mut().enumerate() {
            *o += s[[n, 0]].powi(2) + s[[n, 1]].powi(2) + 0.01 * a[[n, 0]].powi(2);
        }
    }
}

/// NaN whenever an action exceeds 0.5, else the action itself (prefers low actions).
struct NanAboveHalf;
impl Cost for NanAboveHalf {
    fn cost(
        &self,
        _: ArrayView2<'_, f32>,
        a: ArrayView2<'_, f32>,
        mut out: ArrayViewMut1<'_, f32>,
    ) {
        for (n, o) in out.iter_mut().enumerate() {
            *o += if a[[n, 0]] > 0.5 {
                f32::NAN
            } else {
                -a[[n, 0]]
            };
        }
    }
}

fn double_integrator(state: &[f64], action: &[f64], next: &mut [f64]) {
    next[1] = state[1] + 0.1 * action[0];
    next[0] = state[0] + 0.1 * next[1];
}

/// Gymnasium Pendulum-v1, θ = 0 upright.
fn pendulum(state: &[f64], action: &[f64], next: &mut [f64]) {
    let u = action[0].clamp(-2.0, 2.0);
    let theta_dot = (state[1] + (15.0 * state[0].sin() + 3.0 * u) * 0.05).clamp(-8.0, 8.0);
    next[0] = state[0] + theta_dot * 0.05;
    next[1] = theta_dot;
}

fn small(optimizer: Optimizer, propagation: Propagation, particles: usize) -> PlannerConfig {
    PlannerConfig {
        horizon: 10,
        population: 40,
        elites: 5,
        iterations: 5,
        particles,
        optimizer,
        propagation,
        epsilon_variance: 0.0,
        seed: 7,
        ..PlannerConfig::default()
    }
}

#[test]
fn truncated_normal_samples_stay_inside_bounds() {
    let bounds = [(-1.0f32, 3.0f32), (0.0, 0.5)];
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for (mean, var) in [
        ([2.9f32, 0.01f32], [100.0f32, 100.0f32]),
        ([-1.0, 0.5], [1.0, 1e-9]),
    ] {
        let mut out = vec![0.0; 1000 * 2];
        sampling::fill_truncated_normal(&mut rng, &mean, &var, &bounds, &mut out);
        for pair in out.chunks(2) {
            assert!(
                (-1.0..=3.0).contains(&pair[0]) && (0.0..=0.5).contains(&pair[1]),
                "{pair:?}"
            );
        }
    }
    let clipped = sampling::constrained_variance(2.0, 10.0, (-1.0, 3.0));
    assert!(
        (clipped - 0.25).abs() < 1e-6,
        "(3 − 2)²/4 = 0.25, got {clipped}"
    );
}

#[test]
fn planner_candidates_stay_inside_bounds_and_elites_are_the_k_lowest() {
    for optimizer in [Optimizer::Cem, Optimizer::ICem, Optimizer::RandomShooting] {
        let bounds = [(-0.3f32, 0.7f32)];
        let mut planner =
            Planner::new(small(optimizer, Propagation::TsInf, 1), 2, 1, &bounds, 1).unwrap();
        let mut model = AnalyticDynamics::new(double_integrator, 2, 1);
        planner
            .plan(&[1.0, 0.0], &mut model, &QuadraticCost, None)
            .unwrap();
        assert!(
            planner
                .candidates()
                .iter()
                .all(|u| (-0.3..=0.7).contains(u))
        );
        let mut sorted = planner.candidate_costs().to_vec();
        sorted.sort_by(f32::total_cmp);
        assert_eq!(&sorted[..5], planner.elite_costs(), "{optimizer:?}");
        let width = 10;
        for (rank, elite) in planner.elites().chunks(width).enumerate() {
            let index = planner
                .candidates()
                .chunks(width)
                .position(|c| c == elite)
                .unwrap();
            assert_eq!(
                planner.candidate_costs()[index],
                planner.elite_costs()[rank]
            );
        }
    }
}

#[test]
fn nan_costs_are_never_elites_and_all_nan_is_an_error() {
    let config = PlannerConfig {
        population: 200,
        ..small(Optimizer::Cem, Propagation::TsInf, 1)
    };
    let mut planner = Planner::new(config, 2, 1, &[(-1.0, 1.0)], 1).unwrap();
    let mut model = AnalyticDynamics::new(double_integrator, 2, 1);
    let stats = planner
        .plan(&[0.0, 0.0], &mut model, &NanAboveHalf, None)
        .unwrap();
    assert!(
        planner
            .elite_costs()
            .iter()
            .all(|c| c.is_finite() && *c < f32::MAX)
    );
    assert!(planner.elites().iter().all(|u| *u <= 0.5));
    assert!(stats.best_cost.is_finite());
    let err = Planner::new(
        small(Optimizer::Cem, Propagation::TsInf, 1),
        2,
        1,
        &[(0.6, 1.0)],
        1,
    )
    .unwrap()
    .plan(&[0.0, 0.0], &mut model, &NanAboveHalf, None);
    assert_eq!(err, Err(PlanError::NoFiniteCandidate));
}

#[test]
fn same_seed_same_plan_and_another_seed_differs() {
    let run = |seed: u64| {
        let config = PlannerConfig {
            seed,
            ..small(Optimizer::Cem, Propagation::TsInf, 10)
        };
        let mut planner = Planner::new(config, 2, 1, &[(-1.0, 1.0)], TOY_E).unwrap();
        let mut model = ToyEnsemble::new(0.01, 0.1, true);
        let mut plans = Vec::new();
        for step in 0..3 {
            planner
                .plan(&[1.0, step as f32 * 0.1], &mut model, &QuadraticCost, None)
                .unwrap();
            plans.extend_from_slice(planner.plan_sequence());
            plans.extend_from_slice(planner.first_action());
        }
        plans
    };
    assert_eq!(run(3), run(3));
    assert_ne!(run(3), run(4));
}

#[test]
fn anytime_stops_before_a_predicted_overrun_and_warm_start_shifts() {
    let clock = Clock::simulated();
    let mut model = ToyEnsemble::new(0.0, 0.1, true);
    // 10 steps × 100 µs = 1 000 µs per iteration.
    model.clock = Some((clock.clone(), 100));
    let config = small(Optimizer::Cem, Propagation::TsInf, 5);
    let mut free = Planner::new(config.clone(), 2, 1, &[(-1.0, 1.0)], TOY_E).unwrap();
    let stats = free
        .plan(&[0.0, 0.0], &mut model, &QuadraticCost, None)
        .unwrap();
    assert_eq!(
        (stats.iterations, stats.stop),
        (5, StopReason::IterationLimit)
    );

    let mut planner = Planner::new(config, 2, 1, &[(-1.0, 1.0)], TOY_E).unwrap();
    let deadline = clock.now_us() + 3_500;
    let stats = planner
        .plan(
            &[0.0, 0.0],
            &mut model,
            &QuadraticCost,
            Some((&clock, deadline)),
        )
        .unwrap();
    assert_eq!((stats.iterations, stats.stop), (3, StopReason::Deadline));
    assert_eq!(stats.elapsed_us, 3_000);
    assert!(clock.now_us() <= deadline);

    // No time left: no iteration, the command is the previous plan shifted one step.
    let previous = planner.plan_sequence().to_vec();
    let stats = planner
        .plan(
            &[0.0, 0.0],
            &mut model,
            &QuadraticCost,
            Some((&clock, clock.now_us() + 10)),
        )
        .unwrap();
    assert_eq!((stats.iterations, stats.stop), (0, StopReason::Deadline));
    assert_eq!(&planner.plan_sequence()[..9], &previous[1..]);
    assert_eq!(planner.plan_sequence()[9], 0.0, "midpoint of [-1, 1]");
    assert_eq!(planner.first_action(), &previous[1..2]);
}

#[test]
fn early_stop_when_the_variance_collapses() {
    let config = PlannerConfig {
        epsilon_variance: 0.2,
        iterations: 50,
        ..small(Optimizer::Cem, Propagation::TsInf, 1)
    };
    let mut planner = Planner::new(config, 2, 1, &[(-1.0, 1.0)], 1).unwrap();
    let mut model = AnalyticDynamics::new(double_integrator, 2, 1);
    let stats = planner
        .plan(&[1.0, 0.0], &mut model, &QuadraticCost, None)
        .unwrap();
    assert_eq!(stats.stop, StopReason::Converged);
    assert!(stats.iterations < 50 && stats.max_variance < 0.2);
}

/// Member `e` adds `e` per step; no noise. Returns `[E, R]` final `state[0]`s.
fn final_offsets(propagation: Propagation, particles: usize) -> (Vec<Vec<f32>>, usize) {
    let config = PlannerConfig {
        iterations: 1,
        ..small(Optimizer::Cem, propagation, particles)
    };
    let mut planner = Planner::new(config, 2, 1, &[(-1.0, 1.0)], TOY_E).unwrap();
    let mut model = ToyEnsemble::new(1.0, 0.0, false);
    planner
        .plan(&[0.0, 0.0], &mut model, &ZeroCost, None)
        .unwrap();
    let states = planner.particle_states().unwrap();
    let rows = states.shape()[1];
    let members = (0..TOY_E)
        .map(|e| (0..rows).map(|r| states[[e, r, 0]]).collect())
        .collect();
    (members, rows)
}

#[test]
fn ts_inf_binds_each_particle_to_one_member() {
    let (members, rows) = final_offsets(Propagation::TsInf, 10);
    assert_eq!(rows, 40 * 2);
    for (e, finals) in members.iter().enumerate() {
        assert!(
            finals.iter().all(|&x| x == 10.0 * e as f32),
            "member {e}: {finals:?}"
        );
    }
}

#[test]
fn ts1_reshuffles_members_within_each_candidate() {
    let (members, rows) = final_offsets(Propagation::Ts1, 10);
    let per_member = rows / 40;
    let mut off_pattern = 0;
    for c in 0..40 {
        let mut sum = 0.0;
        for (e, finals) in members.iter().enumerate() {
            for m in 0..per_member {
                let x = finals[c * per_member + m];
                sum += x;
                off_pattern += usize::from(x != 10.0 * e as f32);
            }
        }
        // Each step the candidate's 10 particles fill all slots: Σ increments = 2·(0+…+4).
        assert_eq!(sum, 10.0 * 2.0 * 10.0, "candidate {c}");
    }
    assert!(
        off_pattern > 300,
        "only {off_pattern} of 400 particles left their member"
    );
    let all: Vec<f32> = members.concat();
    let mean = all.iter().sum::<f32>() / all.len() as f32;
    let var = all.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / all.len() as f32;
    // Member uniform on {0..4}: mean 2, variance 2 per step, but slots are balanced per
    // step so the variance is a little below 10 · 2.
    assert!(
        (mean - 20.0).abs() < 1e-3 && var > 10.0 && var < 22.0,
        "mean {mean} var {var}"
    );
}

#[test]
fn expectation_moves_by_the_ensemble_mean() {
    let (members, _) = final_offsets(Propagation::Expectation, 1);
    assert!(members.concat().iter().all(|&x| (x - 20.0).abs() < 1e-4));
}

#[test]
fn particle_spread_matches_the_predicted_sigma() {
    let config = PlannerConfig {
        horizon: 4,
        iterations: 1,
        ..small(Optimizer::Cem, Propagation::TsInf, 50)
    };
    let mut planner = Planner::new(config, 2, 1, &[(-1.0, 1.0)], TOY_E).unwrap();
    let mut model = ToyEnsemble::new(0.0, 0.3, true);
    planner
        .plan(&[0.0, 0.0], &mut model, &ZeroCost, None)
        .unwrap();
    let finals: Vec<f32> = planner
        .particle_states()
        .unwrap()
        .outer_iter()
        .flat_map(|m| m.outer_iter().map(|row| row[0]).collect::<Vec<_>>())
        .collect();
    assert_eq!(finals.len(), 40 * 50);
    let std = (finals.iter().map(|x| x * x).sum::<f32>() / finals.len() as f32).sqrt();
    assert!((std - 0.3 * 2.0).abs() < 0.04, "σ·√H = 0.6, got {std}");
    // Deterministic models get no noise.
    model.probabilistic = false;
    planner
        .plan(&[0.0, 0.0], &mut model, &ZeroCost, None)
        .unwrap();
    assert!(
        planner
            .particle_states()
            .unwrap()
            .iter()
            .step_by(2)
            .all(|&x| x == 0.0)
    );
}

fn pendulum_return(optimizer: Optimizer) -> f32 {
    let config = PlannerConfig {
        horizon: 30,
        population: 100,
        elites: 10,
        particles: 1,
        optimizer,
        seed: 11,
        ..PlannerConfig::pets_paper(Task::PendulumSwingup)
    };
    let mut planner = Planner::new(config, 2, 1, &[(-2.0, 2.0)], 1).unwrap();
    let mut model = AnalyticDynamics::new(pendulum, 2, 1);
    let cost = TaskCost(Task::PendulumSwingup);
    let mut state = [std::f64::consts::PI, 0.0];
    let mut total = 0.0;
    for _ in 0..200 {
        let observed = [state[0] as f32, state[1] as f32];
        planner.plan(&observed, &mut model, &cost, None).unwrap();
        let u = f64::from(planner.first_action()[0]);
        let mut next = [0.0; 2];
        pendulum(&state, &[u], &mut next);
        total += pendulum_reward(&[next[0] as f32, next[1] as f32], &[u as f32]);
        state = next;
    }
    total
}

#[test]
fn cem_with_the_true_model_swings_the_pendulum_up() {
    let total = pendulum_return(Optimizer::Cem);
    assert!(total > -400.0, "return {total}");
    eprintln!("pendulum return, CEM: {total}");
}

#[test]
fn icem_with_the_true_model_swings_the_pendulum_up() {
    let total = pendulum_return(Optimizer::ICem);
    assert!(total > -400.0, "return {total}");
    eprintln!("pendulum return, iCEM: {total}");
}

#[test]
fn double_integrator_is_driven_to_the_origin() {
    let config = PlannerConfig {
        horizon: 15,
        population: 100,
        elites: 10,
        ..small(Optimizer::Cem, Propagation::TsInf, 1)
    };
    let mut planner = Planner::new(config, 2, 1, &[(-1.0, 1.0)], 1).unwrap();
    let mut model = AnalyticDynamics::new(double_integrator, 2, 1);
    let mut state = [1.0f64, 0.0];
    for _ in 0..80 {
        planner
            .plan(
                &[state[0] as f32, state[1] as f32],
                &mut model,
                &QuadraticCost,
                None,
            )
            .unwrap();
        let mut next = [0.0; 2];
        double_integrator(&state, &[f64::from(planner.first_action()[0])], &mut next);
        state = next;
    }
    assert!(state[0].abs() < 0.1 && state[1].abs() < 0.1, "{state:?}");
}

#[test]
fn random_shooting_commands_the_best_candidate() {
    let mut planner = Planner::new(
        small(Optimizer::RandomShooting, Propagation::TsInf, 1),
        2,
        1,
        &[(-1.0, 1.0)],
        1,
    )
    .unwrap();
    let mut model = AnalyticDynamics::new(double_integrator, 2, 1);
    let stats = planner
        .plan(&[1.0, 0.0], &mut model, &QuadraticCost, None)
        .unwrap();
    assert_eq!((stats.iterations, stats.samples_evaluated), (1, 40));
    let best = planner
        .candidate_costs()
        .iter()
        .copied()
        .fold(f32::MAX, f32::min);
    assert_eq!(stats.best_cost, best);
    assert_eq!(planner.first_action(), &planner.elites()[..1]);
    assert_eq!(planner.plan_sequence(), &planner.elites()[..10]);
}

#[test]
fn config_reads_partial_toml_and_rejects_bad_values() {
    let config: PlannerConfig =
        toml::from_str("horizon = 12\noptimizer = \"i_cem\"\npropagation = \"ts1\"").unwrap();
    assert_eq!(
        (config.horizon, config.optimizer, config.propagation),
        (12, Optimizer::ICem, Propagation::Ts1)
    );
    assert_eq!(config.alpha, 0.1);
    assert!(toml::from_str::<PlannerConfig>("horizn = 3").is_err());
    let check = |config: PlannerConfig, bounds: &[(f32, f32)], expected: ConfigError| {
        assert_eq!(
            Planner::new(config, 2, 1, bounds, TOY_E).err(),
            Some(expected)
        );
    };
    let base = small(Optimizer::Cem, Propagation::TsInf, 10);
    check(
        PlannerConfig {
            particles: 7,
            ..base.clone()
        },
        &[(-1.0, 1.0)],
        ConfigError::ParticlesNotMultiple {
            particles: 7,
            ensemble_size: 5,
        },
    );
    check(
        PlannerConfig {
            elites: 41,
            ..base.clone()
        },
        &[(-1.0, 1.0)],
        ConfigError::TooManyElites {
            elites: 41,
            population: 40,
        },
    );
    check(
        PlannerConfig {
            horizon: 0,
            ..base.clone()
        },
        &[(-1.0, 1.0)],
        ConfigError::Zero { key: "horizon" },
    );
    check(
        PlannerConfig {
            alpha: 1.5,
            ..base.clone()
        },
        &[(-1.0, 1.0)],
        ConfigError::OutOfRange {
            key: "alpha",
            value: 1.5,
        },
    );
    check(
        base.clone(),
        &[(1.0, -1.0)],
        ConfigError::Bounds {
            index: 0,
            low: 1.0,
            high: -1.0,
        },
    );
    check(
        base,
        &[],
        ConfigError::BoundsLength {
            got: 0,
            action_dim: 1,
        },
    );
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let mut planner = Planner::new(
        small(Optimizer::Cem, Propagation::TsInf, 1),
        2,
        1,
        &[(-1.0, 1.0)],
        1,
    )
    .unwrap();
    let mut model = AnalyticDynamics::new(double_integrator, 2, 1);
    let err = planner.plan(&[1.0], &mut model, &QuadraticCost, None);
    assert_eq!(
        err,
        Err(PlanError::StateDim {
            got: 1,
            expected: 2
        })
    );
    let err = planner.plan(&[f32::NAN, 0.0], &mut model, &QuadraticCost, None);
    assert_eq!(err, Err(PlanError::NonFiniteState));
    let mut ensemble = ToyEnsemble::new(0.0, 0.1, true);
    let err = planner.plan(&[0.0, 0.0], &mut ensemble, &QuadraticCost, None);
    assert!(matches!(
        err,
        Err(PlanError::ModelMismatch {
            got_ensemble: 5,
            ..
        })
    ));
}

#[test]
fn latency_prediction_interpolates_the_mean_change() {
    let mut planner = Planner::new(
        small(Optimizer::Cem, Propagation::TsInf, 1),
        2,
        1,
        &[(-1.0, 1.0)],
        1,
    )
    .unwrap();
    let mut model = AnalyticDynamics::new(double_integrator, 2, 1);
    let mut out = [0.0f32; 2];
    planner
        .predicted_state_at_latency(&[1.0, 2.0], &[1.0], 0.5, &mut model, &mut out)
        .unwrap();
    // One period: v' = 2.1, x' = 1.21; half of the change.
    assert!(
        (out[0] - 1.105).abs() < 1e-5 && (out[1] - 2.05).abs() < 1e-5,
        "{out:?}"
    );
    let err =
        planner.predicted_state_at_latency(&[1.0, 2.0], &[1.0, 2.0], 0.5, &mut model, &mut out);
    assert_eq!(
        err,
        Err(PlanError::ActionDim {
            got: 2,
            expected: 1
        })
    );
}

#[test]
fn controller_plans_within_bounds_and_maps_errors() {
    let config = PlannerConfig {
        budget_us: Some(2_500),
        latency_fraction: 0.2,
        ..small(Optimizer::Cem, Propagation::TsInf, 5)
    };
    let clock = Clock::simulated();
    let mut model = ToyEnsemble::new(0.0, 0.1, true);
    model.clock = Some((clock.clone(), 100));
    let planner = Planner::new(config, 2, 1, &[(-0.5, 0.5)], TOY_E).unwrap();
    let mut controller = MpcController::new(
        planner,
        Box::new(model),
        Box::new(QuadraticCost),
        clock.clone(),
    )
    .unwrap();
    let mut action = [9.0f32];
    for tick in 0..3 {
        let state = [1.0f32, 0.0];
        let obs = Observation {
            state: &state,
            now_us: clock.now_us(),
            state_age_us: 0,
            tick,
        };
        controller.act(&obs, &mut action).unwrap();
        assert!((-0.5..=0.5).contains(&action[0]));
        let stats = controller.last_stats().unwrap();
        assert!(tick == 0 || stats.stop == StopReason::Deadline, "{stats:?}");
        assert!(stats.elapsed_us <= 2_500 || tick == 0, "{stats:?}");
    }
    let nan = [f32::NAN, 0.0];
    let obs = Observation {
        state: &nan,
        now_us: clock.now_us(),
        state_age_us: 0,
        tick: 3,
    };
    assert_eq!(
        controller.act(&obs, &mut action),
        Err(ControlError::NonFinite)
    );
    assert_eq!(controller.last_error(), Some(PlanError::NonFiniteState));
    let state = [1.0f32, 0.0];
    let obs = Observation {
        state: &state,
        now_us: clock.now_us(),
        state_age_us: 0,
        tick: 4,
    };
    assert_eq!(
        controller.act(&obs, &mut [0.0, 0.0]),
        Err(ControlError::NotReady)
    );
    let wrong = AnalyticDynamics::new(double_integrator, 2, 1);
    let planner = Planner::new(
        small(Optimizer::Cem, Propagation::TsInf, 5),
        2,
        1,
        &[(-0.5, 0.5)],
        TOY_E,
    )
    .unwrap();
    assert!(MpcController::new(planner, Box::new(wrong), Box::new(QuadraticCost), clock).is_err());
}

/// Records the row counts it is prepared for and the ones it is asked to predict.
struct RowRecorder {
    prepared: std::sync::Arc<std::sync::Mutex<(Vec<usize>, Vec<usize>)>>,
}

impl Dynamics for RowRecorder {
    fn state_dim(&self) -> usize {
        2
    }
    fn action_dim(&self) -> usize {
        1
    }
    fn ensemble_size(&self) -> usize {
        TOY_E
    }
    fn is_probabilistic(&self) -> bool {
        true
    }
    fn prepare(&mut self, rows: usize) -> Result<(), DynamicsError> {
        self.prepared.lock().unwrap().0.push(rows);
        Ok(())
    }
    fn predict(
        &mut self,
        states: ArrayView3<'_, f32>,
        _actions: ArrayView3<'_, f32>,
        mut mean: ArrayViewMut3<'_, f32>,
        mut logvar: ArrayViewMut3<'_, f32>,
    ) -> Result<(), DynamicsError> {
        self.prepared.lock().unwrap().1.push(states.dim().1);
        mean.fill(0.01);
        logvar.fill(-4.0);
        Ok(())
    }
}

/// The MPC controller prepares its model, at construction, for every row count its
/// ticks then use: iCEM's decaying population (one N per iteration) and the single row
/// of latency compensation; a swapped-in model is prepared too.
#[test]
fn the_controller_prepares_every_row_count_its_ticks_use() {
    let config = PlannerConfig {
        latency_fraction: 1.0,
        population_decay: 1.25,
        ..small(Optimizer::ICem, Propagation::TsInf, 10)
    };
    let planner = Planner::new(config, 2, 1, &[(-0.5, 0.5)], TOY_E).unwrap();
    let expected = planner.batch_rows();
    assert!(expected.contains(&1) && expected.len() >= 3, "{expected:?}");
    let log = std::sync::Arc::new(std::sync::Mutex::new((Vec::new(), Vec::new())));
    let model = RowRecorder {
        prepared: std::sync::Arc::clone(&log),
    };
    let mut controller = MpcController::new(
        planner,
        Box::new(model),
        Box::new(QuadraticCost),
        Clock::simulated(),
    )
    .unwrap();
    assert_eq!(log.lock().unwrap().0, expected, "prepared at construction");
    let mut action = [0.0f32];
    for tick in 0..4 {
        let state = [1.0f32, 0.0];
        let obs = Observation {
            state: &state,
            now_us: 0,
            state_age_us: 0,
            tick,
        };
        controller.act(&obs, &mut action).unwrap();
    }
    let (prepared, predicted) = log.lock().unwrap().clone();
    assert!(
        predicted.contains(&1),
        "latency compensation ran: {predicted:?}"
    );
    for rows in &predicted {
        assert!(
            prepared.contains(rows),
            "N = {rows} was never prepared ({prepared:?})"
        );
    }
    let swapped = std::sync::Arc::new(std::sync::Mutex::new((Vec::new(), Vec::new())));
    let old = controller.replace_dynamics(Box::new(RowRecorder {
        prepared: std::sync::Arc::clone(&swapped),
    }));
    assert!(old.is_ok());
    assert_eq!(
        swapped.lock().unwrap().0,
        expected,
        "the new model is prepared"
    );
}
