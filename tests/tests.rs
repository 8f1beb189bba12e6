// Planner: CEM/iCEM/random shooting, propagation, costs, MPC controller.
mod mpc;
