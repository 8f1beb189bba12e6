"""handful-gym: any Gymnasium environment as a handful robot, behind a pseudo-terminal,
speaking the protocol of firmware-bridge/README.md (protocol.py, firmware.py), with the
environment as the plant (plant.py) and the PETS cart-pole on MuJoCo registered as
`handful/PetsCartpole-v0` (envs.py). The program is bridge.py (`serve.py --help`)."""
