//! The ONNX path and the analytic path agree: a contract-conforming ensemble that encodes
//! a known system (models/fixtures/double-integrator.onnx) predicts what the analytic
//! model of that system computes, and the planner plans the same with either.

use handful::mpc::{
    AnalyticDynamics, Cost, Dynamics, Optimizer, Planner, PlannerConfig, Propagation,
};
use ndarray::{Array3, ArrayView2, ArrayViewMut1};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{load_fixture, predict, random_batch};

const DT: f64 = 0.02;

/// x' = x + v·dt, v' = v + u·dt: what the fixture's weights encode.
fn double_integrator(state: &[f64], action: &[f64], next: &mut [f64]) {
    next[0] = state[0] + state[1] * DT;
    next[1] = state[1] + action[0] * DT;
}

/// Distance to the origin and effort.
struct ToOrigin;

impl Cost for ToOrigin {
    fn cost(
        &self,
        next: ArrayView2<'_, f32>,
        actions: ArrayView2<'_, f32>,
        mut out: ArrayViewMut1<'_, f32>,
    ) {
        for ((row, action), out) in next
            .rows()
            .into_iter()
            .zip(actions.rows())
            .zip(out.iter_mut())
        {
            *out += row[0] * row[0] + 0.1 * row[1] * row[1] + 0.01 * action[0] * action[0];
        }
    }
}

#[test]
fn the_onnx_ensemble_predicts_what_the_analytic_model_computes() {
    let mut onnx = load_fixture("double-integrator.onnx");
    let mut analytic = AnalyticDynamics::new(double_integrator, 2, 1);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let states = random_batch(&mut rng, 2, 64, 2, 3.0);
    let actions = random_batch(&mut rng, 2, 64, 1, 2.0);
    let (mean, logvar) = predict(&mut onnx, states.view(), actions.view()).unwrap();
    for member in 0..2 {
        let s = states.slice(ndarray::s![member..member + 1, .., ..]);
        let a = actions.slice(ndarray::s![member..member + 1, .., ..]);
        let mut want = Array3::zeros((1, 64, 2));
        let mut lv = Array3::zeros((1, 64, 2));
        analytic
            .predict(s, a, want.view_mut(), lv.view_mut())
            .unwrap();
        for ((got, want), row) in mean
            .slice(ndarray::s![member, .., ..])
            .iter()
            .zip(want.iter())
            .zip(0..)
        {
            assert!(
                (got - want).abs() < 1e-5,
                "member {member} element {row}: onnx {got}, analytic {want}"
            );
        }
    }
    // The log-variance sits at its soft floor: the ensemble is (almost) certain.
    assert!(
        logvar.iter().all(|lv| (*lv + 10.0).abs() < 1e-3),
        "{logvar:?}"
    );
}

#[test]
fn the_planner_plans_the_same_with_either_model() {
    let config = PlannerConfig {
        horizon: 15,
        population: 200,
        elites: 20,
        iterations: 5,
        particles: 2,
        propagation: Propagation::Expectation,
        optimizer: Optimizer::Cem,
        seed: 5,
        ..PlannerConfig::pets_paper(handful::task::Task::PendulumSwingup)
    };
    let bounds = [(-2.0, 2.0)];
    let plan = |dynamics: &mut dyn Dynamics| {
        let mut planner =
            Planner::new(config.clone(), 2, 1, &bounds, dynamics.ensemble_size()).unwrap();
        let stats = planner
            .plan(&[1.0, -0.5], dynamics, &ToOrigin, None)
            .unwrap();
        (planner.first_action()[0], stats.best_cost)
    };
    let (onnx_action, onnx_cost) = plan(&mut load_fixture("double-integrator.onnx"));
    let (analytic_action, analytic_cost) =
        plan(&mut AnalyticDynamics::new(double_integrator, 2, 1));
    assert!(
        (onnx_action - analytic_action).abs() < 0.02,
        "first action: onnx {onnx_action}, analytic {analytic_action}"
    );
    assert!(
        ((onnx_cost - analytic_cost) / analytic_cost).abs() < 1e-3,
        "best cost: onnx {onnx_cost}, analytic {analytic_cost}"
    );
    // From x = 1, v = -0.5 the best first action is not the bounds' midpoint (where
    // CEM starts): the agreement is about a real decision.
    assert!(analytic_action.abs() > 0.05, "{analytic_action}");
}
