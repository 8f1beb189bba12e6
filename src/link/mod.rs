//! The serial link to the robot (the only module that touches ports and bytes).
