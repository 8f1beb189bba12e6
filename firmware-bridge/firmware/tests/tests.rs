//! Integration tests of the firmware logic, driven as a main loop would: one binary, a
//! module per area.

mod arming; // the Arm / Disarm / EStop transition table
mod command; // acceptance, refusal and clamping of commands
mod common; // the test robot and a rig that plays host and main loop
mod framing; // seq and timestamp stamping, outbox overflow, teleop forwarding
mod properties; // safety as properties: no sequence of frames applies a command outside the limits
mod session; // Hello / version negotiation, Reset and ResetTo with and without the capability
mod supervision; // watchdog, host timeout, heartbeats, plant faults
