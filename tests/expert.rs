//! Scripted experts: closed-loop returns on the simulated plants from the benchmarks'
//! start distributions, LQR sanity, mode hysteresis, and action limits on any input.

use std::f64::consts::{PI, TAU};

use handful::control::{ControlError, Controller, Observation};
use handful::expert::*;
use handful::plant::cartpole::{self, Cartpole};
use handful::plant::pendulum::{self, Pendulum};
use handful::plant::{Plant, PlantKind, PlantParams};
use handful::task::Task;
use nalgebra::{SMatrix, SVector};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn wrapped(theta: f64) -> f64 {
    (theta + PI).rem_euclid(TAU) - PI
}

/// Runs the task's expert from 20 seeded starts; returns each return and the largest
/// distance from upright over the last `tail` steps.
fn closed_loop(kind: PlantKind, task: Task, tail: usize) -> Vec<(f64, f64)> {
    let upright = |s: &[f64]| match kind {
        PlantKind::Cartpole => wrapped(s[1] - PI).abs(),
        PlantKind::Pendulum => wrapped(s[0]).abs(),
        PlantKind::Pusher => unreachable!("the pusher's expert is tested in tests/pusher.rs"),
    };
    (0..20)
        .map(|seed| {
            let mut plant = kind.build();
            plant.reset(&mut ChaCha8Rng::seed_from_u64(seed));
            let mut expert = expert_for(task);
            let steps = task.episode_steps();
            let mut ret = rollout(plant.as_mut(), expert.as_mut(), task, steps - tail);
            let mut worst: f64 = 0.0;
            for _ in 0..tail {
                ret += rollout(plant.as_mut(), expert.as_mut(), task, 1);
                worst = worst.max(upright(plant.state()));
            }
            (ret, worst)
        })
        .collect()
}

fn summary(name: &str, runs: &[(f64, f64)]) -> f64 {
    let returns: Vec<f64> = runs.iter().map(|r| r.0).collect();
    let mean = returns.iter().sum::<f64>() / returns.len() as f64;
    let min = returns.iter().copied().fold(f64::INFINITY, f64::min);
    println!("{name}: 200-step return over 20 seeds: mean {mean:.1}, min {min:.1}");
    min
}

#[test]
fn cartpole_expert_swings_up_and_balances_from_every_seed() {
    let runs = closed_loop(PlantKind::Cartpole, Task::CartpoleSwingup, 100);
    let min = summary("cartpole expert", &runs);
    for (seed, (ret, worst)) in runs.iter().enumerate() {
        assert!(*ret > 160.0, "seed {seed}: return {ret}");
        assert!(
            *worst < 0.2,
            "seed {seed}: |θ − π| reached {worst} in the last 100 steps"
        );
    }
    assert!(min > 160.0);
}

#[test]
fn pendulum_expert_swings_up_and_balances_from_every_seed() {
    let runs = closed_loop(PlantKind::Pendulum, Task::PendulumSwingup, 20);
    summary("pendulum expert", &runs);
    for (seed, (ret, worst)) in runs.iter().enumerate() {
        assert!(*ret > -400.0, "seed {seed}: return {ret}");
        assert!(
            *worst < 0.05,
            "seed {seed}: |θ| reached {worst} in the last 20 steps"
        );
    }
}

#[test]
fn dlqr_matches_the_scalar_riccati_solution() {
    // a = b = q = r = 1: P = (1 + √5)/2, K = P/(1 + P).
    let gain = dlqr(
        &SMatrix::<f64, 1, 1>::new(1.0),
        &SVector::<f64, 1>::new(1.0),
        &SMatrix::<f64, 1, 1>::new(1.0),
        1.0,
    )
    .unwrap();
    let p = (1.0 + 5f64.sqrt()) / 2.0;
    assert!((gain[0] - p / (1.0 + p)).abs() < 1e-9, "{gain}");
}

/// Spectral radius of `A − B K` for the transition linearised about `state`.
fn closed_loop_radius<const N: usize>(
    f: fn(&[f64], &[f64], &mut [f64]),
    state: [f64; N],
    gain: [f64; N],
) -> f64 {
    let eps = 1e-6;
    let eval = |s: [f64; N], u: f64| {
        let mut out = [0.0; N];
        f(&s, &[u], &mut out);
        SVector::<f64, N>::from(out)
    };
    let mut a = SMatrix::<f64, N, N>::zeros();
    for j in 0..N {
        let (mut hi, mut lo) = (state, state);
        hi[j] += eps;
        lo[j] -= eps;
        a.set_column(j, &((eval(hi, 0.0) - eval(lo, 0.0)) / (2.0 * eps)));
    }
    let b = (eval(state, eps) - eval(state, -eps)) / (2.0 * eps);
    let closed = a - b * SVector::<f64, N>::from(gain).transpose();
    let closed = nalgebra::DMatrix::from_column_slice(N, N, closed.as_slice());
    closed
        .complex_eigenvalues()
        .iter()
        .map(|z| z.norm())
        .fold(0.0, f64::max)
}

#[test]
fn lqr_gains_stabilise_the_linearised_plants() {
    let cart = CartpoleExpert::new(CartpoleExpertParams::default()).unwrap();
    let radius = closed_loop_radius(cartpole::transition, [0.0, PI, 0.0, 0.0], cart.gain());
    println!(
        "cart-pole K = {:?}, closed-loop spectral radius {radius:.4}",
        cart.gain()
    );
    assert!(radius < 1.0);
    let pend = PendulumExpert::new(PendulumExpertParams::default()).unwrap();
    let radius = closed_loop_radius(pendulum::transition, [0.0, 0.0], pend.gain());
    println!(
        "pendulum K = {:?}, closed-loop spectral radius {radius:.4}",
        pend.gain()
    );
    assert!(radius < 1.0);
}

#[test]
fn balance_mode_has_hysteresis() {
    let params = CartpoleExpertParams::default();
    let mut expert = CartpoleExpert::new(params).unwrap();
    let mid = 0.5 * (params.balance_enter_rad + params.balance_exit_rad);
    let at = |phi: f64| [0.0, PI + phi, 0.0, 0.0];
    expert.action(&at(mid));
    assert_eq!(expert.mode(), ExpertMode::SwingUp);
    expert.action(&at(params.balance_enter_rad * 0.5 + 4.0 * TAU)); // many turns
    assert_eq!(expert.mode(), ExpertMode::Balance);
    expert.action(&at(-mid));
    assert_eq!(expert.mode(), ExpertMode::Balance);
    expert.action(&at(params.balance_exit_rad * 1.1));
    assert_eq!(expert.mode(), ExpertMode::SwingUp);
    expert.action(&at(0.0));
    Controller::reset(&mut expert);
    assert_eq!(expert.mode(), ExpertMode::SwingUp);
}

#[test]
fn actions_are_finite_and_within_limits_for_any_state() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for (task, dim, limit) in [
        (Task::CartpoleSwingup, 4, 3.0f32),
        (Task::PendulumSwingup, 2, 2.0),
    ] {
        let mut expert = expert_for(task);
        let mut state = [0f32; 4];
        for i in 0..20_000u64 {
            let scale = [1.0f32, 10.0, 1e3, 1e6][(i % 4) as usize];
            for v in &mut state[..dim] {
                *v = rng.random_range(-scale..=scale);
            }
            let obs = Observation {
                state: &state[..dim],
                now_us: 0,
                state_age_us: 0,
                tick: i,
            };
            let mut action = [f32::NAN];
            expert.act(&obs, &mut action).unwrap();
            assert!(
                action[0].is_finite() && action[0].abs() <= limit,
                "{state:?} → {action:?}"
            );
        }
        let mut action = [0f32];
        state[0] = f32::NAN;
        let obs = Observation {
            state: &state[..dim],
            now_us: 0,
            state_age_us: 0,
            tick: 0,
        };
        assert_eq!(expert.act(&obs, &mut action), Err(ControlError::NonFinite));
        let obs = Observation {
            state: &state[..1],
            now_us: 0,
            state_age_us: 0,
            tick: 0,
        };
        assert_eq!(expert.act(&obs, &mut action), Err(ControlError::NotReady));
        let obs = Observation {
            state: &[0.0; 4][..dim],
            now_us: 0,
            state_age_us: 0,
            tick: 0,
        };
        assert_eq!(expert.act(&obs, &mut []), Err(ControlError::NotReady));
    }
}

#[test]
fn rollout_scores_the_clamped_action_and_errors_as_safe() {
    /// Always asks for far more than the limit.
    struct Greedy;
    impl Controller for Greedy {
        fn act(&mut self, _: &Observation<'_>, action: &mut [f32]) -> Result<(), ControlError> {
            action[0] = 100.0;
            Ok(())
        }
        fn name(&self) -> &'static str {
            "greedy"
        }
    }
    /// Always fails.
    struct Broken;
    impl Controller for Broken {
        fn act(&mut self, _: &Observation<'_>, _: &mut [f32]) -> Result<(), ControlError> {
            Err(ControlError::NotReady)
        }
        fn name(&self) -> &'static str {
            "broken"
        }
    }
    let mut plant = Cartpole::new();
    let ret = rollout(&mut plant, &mut Greedy, Task::CartpoleSwingup, 1);
    let mut next = [0.0; 4];
    cartpole::transition(&[0.0; 4], &[3.0], &mut next);
    assert_eq!(plant.state(), &next);
    let next32 = next.map(|v| v as f32);
    let want = handful::task::cartpole_reward(&next32, &[3.0]);
    assert!((ret - f64::from(want)).abs() < 1e-9, "{ret} vs {want}");
    let mut plant = Pendulum::new();
    let ret = rollout(&mut plant, &mut Broken, Task::PendulumSwingup, 10);
    let s = plant.state();
    assert!(
        (s[0] - PI).abs() < 1e-12 && s[1].abs() < 1e-12,
        "safe torque 0 keeps it hanging: {s:?}"
    );
    assert!((ret + 10.0 * PI * PI).abs() < 1e-4, "{ret}");
}

#[test]
fn the_cartpole_expert_told_of_a_heavier_longer_pole_swings_it_up_with_its_default_tuning() {
    let calib =
        handful::calib::Calibration::load(std::path::Path::new("calib/cartpole-heavy-sim.toml"))
            .unwrap();
    let PlantParams::Cartpole(heavy) = calib.plant else {
        panic!("a cart-pole");
    };
    let task = Task::CartpoleSwingup;
    let returns: Vec<f64> = (0..20)
        .map(|seed| {
            let mut plant = calib.plant.build();
            plant.reset(&mut ChaCha8Rng::seed_from_u64(seed));
            let mut expert = expert_for_plant(calib.plant).expect("LQR for the heavy pole");
            let ret = rollout(plant.as_mut(), expert.as_mut(), task, task.episode_steps());
            let upright = wrapped(plant.state()[1] - PI).abs();
            assert!(
                upright < 0.2,
                "seed {seed}: ends {upright} rad from upright"
            );
            ret
        })
        .collect();
    let min = returns.iter().copied().fold(f64::INFINITY, f64::min);
    println!("heavy-pole expert: 200-step returns {returns:.0?}");
    // Slower to swing up than on the PETS pole (worst 173), and then it balances.
    assert!(min > 140.0, "worst return {min}");
    // The same expert assuming the PETS pole is a different controller: the physics it
    // is given are the ones it uses.
    let mut pets = expert_for_plant(PlantParams::Cartpole(cartpole::CartpoleParams::PETS)).unwrap();
    let mut told = expert_for_plant(PlantParams::Cartpole(heavy)).unwrap();
    let state = [0.1f32, 0.3, 0.0, 0.0];
    let (mut a, mut b) = ([0.0f32], [0.0f32]);
    let obs = Observation {
        state: &state,
        now_us: 0,
        state_age_us: 0,
        tick: 0,
    };
    pets.act(&obs, &mut a).unwrap();
    told.act(&obs, &mut b).unwrap();
    assert_ne!(a, b);
}
