//! PETS cart-pole (in progress).
use super::{ActionSpec, PlantSpec, StateSpec};
use crate::task::Task;
pub static SPEC: PlantSpec = PlantSpec {
    robot_id: "cartpole-sim",
    task: Task::CartpoleSwingup,
    control_period_us: 40_000,
    states: &[
        StateSpec {
            name: "cart_position",
            unit: "m",
        },
        StateSpec {
            name: "pole_angle",
            unit: "rad",
        },
        StateSpec {
            name: "cart_velocity",
            unit: "m/s",
        },
        StateSpec {
            name: "pole_angular_velocity",
            unit: "rad/s",
        },
    ],
    actions: &[ActionSpec {
        name: "force",
        unit: "100N",
        min: -3.0,
        max: 3.0,
        safe: 0.0,
    }],
};
pub struct Cartpole;
impl Cartpole {
    pub fn new() -> Self {
        todo!()
    }
}
impl super::Plant for Cartpole {
    fn spec(&self) -> &'static PlantSpec {
        &SPEC
    }
    fn state(&self) -> &[f64] {
        todo!()
    }
    fn reset(&mut self, _: &mut rand_chacha::ChaCha8Rng) {
        todo!()
    }
    fn set_state(&mut self, _: &[f64]) {
        todo!()
    }
    fn step(&mut self, _: &[f64]) {
        todo!()
    }
    fn fault_flags(&self) -> u32 {
        todo!()
    }
}
pub fn transition(_: &[f64], _: &[f64], _: &mut [f64]) {
    todo!()
}
