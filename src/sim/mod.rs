//! The simulated robot: firmware logic and a plant behind a pseudo-terminal.
