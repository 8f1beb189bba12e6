"""The bridge as a host sees it: a child `serve.py` behind its pty, driven frame by frame.
The handshake announces the calibration; lockstep answers each Command with one State
that is the environment's own step (Pendulum-v1's equations, the MuJoCo cart-pole's
`mujoco.mj_step`); the firmware's rules hold (clamping, a refused command's Fault, the
watchdog's safe command, resets by seed and to a state). Needs gymnasium and mujoco
(models/setup.sh installs them in .venv): skipped, saying so, without them.
"""

import math
import os
import pathlib
import select
import struct
import subprocess
import sys
import tempfile
import time
import unittest

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(HERE.parent))

from handful_gym import protocol as p  # noqa: E402

try:
    import gymnasium  # noqa: F401
    import mujoco  # noqa: F401

    MISSING = None
except ImportError as e:
    MISSING = f"gymnasium/mujoco not importable ({e}); run models/setup.sh and use .venv/bin/python"


def bits(values):
    return tuple(p.f32_bits(v) for v in values)


def f32(value):
    return p.f32_from_bits(p.f32_bits(value))


class Host:
    """A minimal host: starts the bridge, opens its link raw, sends frames, reads frames."""

    def __init__(self, *bridge_args):
        self.dir = tempfile.TemporaryDirectory()
        self.link = os.path.join(self.dir.name, "robot.tty")
        self.child = subprocess.Popen(
            [sys.executable, str(HERE.parent / "serve.py"), "--link", self.link, *bridge_args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 20
        while not os.path.lexists(self.link):
            if self.child.poll() is not None:
                raise AssertionError(f"bridge exited: {self.child.stderr.read()}")
            if time.monotonic() > deadline:
                raise AssertionError("no link within 20 s")
            time.sleep(0.02)
        import termios
        import tty

        self.fd = os.open(self.link, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)
        termios.tcflush(self.fd, termios.TCIOFLUSH)
        self.decoder = p.Decoder()
        self.seq = 0
        self.command_seq = 0

    def send(self, kind, message):
        self.seq += 1
        os.write(self.fd, p.encode(p.Frame(kind, self.seq, 0, message)))

    def frames(self, count, timeout_s=5.0):
        out = []
        deadline = time.monotonic() + timeout_s
        while len(out) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{len(out)} of {count} frames: {out}")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                for result in self.decoder.feed(os.read(self.fd, 4096)):
                    assert not isinstance(result, p.DecodeError), result
                    out.append(result)
        return out

    def answer(self, timeout_s=5.0):
        """Frames up to and including the next State, and any that came with it."""
        out = []
        while not any(f.kind == p.STATE for f in out):
            out += self.frames(1, timeout_s)
        # What the bridge wrote with it (a Heartbeat after the State) may come a little
        # later on a loaded machine.
        while not self.quiet(0.1):
            out += self.frames(1)
        return out

    def quiet(self, seconds=0.2):
        ready, _, _ = select.select([self.fd], [], [], seconds)
        return not ready

    def command(self, values, valid_until_us=2**63):
        self.command_seq += 1
        self.send(p.COMMAND, p.Command(self.command_seq, valid_until_us, bits(values)))

    def state(self, frames):
        states = [f for f in frames if f.kind == p.STATE]
        assert len(states) == 1, frames
        return states[0]

    def close(self):
        os.close(self.fd)
        self.child.terminate()
        out, err = self.child.communicate(timeout=10)
        self.dir.cleanup()
        assert self.child.returncode == 0, err
        assert not os.path.lexists(self.link)
        return out


def values(state):
    return [p.f32_from_bits(b) for b in state.message.bits]


@unittest.skipIf(MISSING, MISSING)
class PendulumLockstep(unittest.TestCase):
    def setUp(self):
        calib = ROOT / "calib" / "pendulum-sim.toml"
        self.host = Host("--env", "Pendulum-v1", "--lockstep", "--calib", str(calib))

    def tearDown(self):
        self.host.close()

    def test_the_handshake_announces_the_calibration(self):
        h = self.host
        h.send(p.HELLO, p.Hello(1, 1))
        caps, *channels = h.frames(4)
        self.assertEqual(caps.kind, p.CAPABILITIES)
        m = caps.message
        self.assertEqual((m.robot_id, m.state_dim, m.action_dim), ("pendulum-sim", 2, 1))
        self.assertEqual((m.control_period_us, m.watchdog_timeout_us), (50_000, 200_000))
        self.assertEqual(m.capabilities, p.CAP_RESET | p.CAP_RESET_TO | p.CAP_LOCKSTEP)
        names = [(c.message.kind, c.message.name, c.message.unit) for c in channels]
        self.assertEqual(
            names,
            [(0, "pole_angle", "rad"), (0, "pole_angular_velocity", "rad/s"),
             (1, "torque", "N*m")],
        )
        action = channels[2].message
        self.assertEqual([p.f32_from_bits(b) for b in (action.min_bits, action.max_bits)],
                         [-2.0, 2.0])
        h.send(p.HELLO, p.Hello(2, 3))
        (fault,) = h.frames(1)
        self.assertEqual(fault.message, p.Fault(p.VERSION_MISMATCH, 1))
        self.assertTrue(h.quiet())

    def test_each_command_is_one_step_of_pendulum_v1s_equations(self):
        h = self.host
        h.send(p.RESET_TO, p.ResetTo(bits([0.5, -1.0])))
        start = h.state(h.answer())  # the State, then the first Heartbeat
        self.assertEqual(values(start), [0.5, -1.0])
        self.assertEqual(start.timestamp_us, 0)
        h.send(p.ARM, p.Empty())
        theta, theta_dot = 0.5, -1.0
        for k, u in enumerate([1.5, -2.0, 7.0, 0.25, 0.0]):
            h.command([u])
            state = h.state(h.answer())
            applied = max(-2.0, min(2.0, f32(u)))
            theta_dot = theta_dot + (3 * 10.0 / 2 * math.sin(theta) + 3.0 * applied) * 0.05
            theta_dot = max(-8.0, min(8.0, theta_dot))
            theta = theta + theta_dot * 0.05
            self.assertEqual(values(state), [f32(theta), f32(theta_dot)])
            self.assertEqual(state.timestamp_us, (k + 1) * 50_000)
            self.assertEqual(state.message.last_command_seq, h.command_seq)
            self.assertEqual(state.message.arm_state, p.ARMED)
        self.assertTrue(h.quiet())

    def test_a_disarmed_robot_answers_but_does_not_move(self):
        h = self.host
        h.send(p.RESET_TO, p.ResetTo(bits([1.0, 0.0])))
        h.answer()
        h.command([2.0])
        state = h.state(h.answer())
        self.assertEqual(values(state), [1.0, 0.0])
        self.assertEqual(state.message.arm_state, p.DISARMED)
        self.assertEqual(state.message.last_command_seq, 0)

    def test_refused_commands_fault_and_the_watchdog_applies_the_safe_command(self):
        h = self.host
        h.send(p.RESET_TO, p.ResetTo(bits([0.0, 0.0])))
        h.answer()
        h.send(p.ARM, p.Empty())
        h.command([1.0])
        h.answer()
        h.command([math.nan])
        frames = h.answer()
        fault = frames[0]
        state = h.state(frames)
        self.assertEqual(fault.message, p.Fault(p.BAD_COMMAND, h.command_seq))
        self.assertEqual(state.message.fault_flags & p.FAULT_BAD_COMMAND, p.FAULT_BAD_COMMAND)
        self.assertEqual(state.message.last_command_seq, h.command_seq - 1)
        # Refused commands span more than the 200 ms watchdog: Faulted, safe values.
        frames = []
        for _ in range(4):
            h.command([1.0], valid_until_us=0)
            frames += h.answer()
        codes = [f.message.code for f in frames if f.kind == p.FAULT]
        self.assertIn(p.WATCHDOG, codes)
        last = [f for f in frames if f.kind == p.STATE][-1]
        self.assertEqual(last.message.arm_state, p.FAULTED)
        self.assertTrue(last.message.fault_flags & p.FAULT_WATCHDOG)

    def test_a_reset_by_seed_is_reproducible_and_a_bad_reset_to_is_refused(self):
        h = self.host
        h.send(p.RESET, p.Reset(7))
        first = values(h.state(h.answer()))
        h.send(p.RESET, p.Reset(8))
        other = values(h.state(h.answer()))
        h.send(p.RESET, p.Reset(7))
        again = values(h.state(h.answer()))
        self.assertEqual(first, again)
        self.assertNotEqual(first, other)
        self.assertTrue(-math.pi <= first[0] <= math.pi and -1 <= first[1] <= 1)
        h.send(p.RESET_TO, p.ResetTo(bits([1.0])))
        (fault,) = h.frames(1)
        self.assertEqual(fault.message, p.Fault(p.BAD_RESET_STATE, (1 << 8) | 1))
        h.send(p.RESET_TO, p.ResetTo(bits([1.0, math.inf])))
        (fault,) = h.frames(1)
        self.assertEqual(fault.message, p.Fault(p.BAD_RESET_STATE, (2 << 8) | 1))
        self.assertTrue(h.quiet())


@unittest.skipIf(MISSING, MISSING)
class MujocoCartpole(unittest.TestCase):
    def test_lockstep_states_are_mujocos_steps_and_the_rail_stop_is_refused(self):
        calib = ROOT / "calib" / "cartpole-sim.toml"
        h = Host("--env", "handful/PetsCartpole-v0", "--lockstep", "--calib", str(calib))
        try:
            h.send(p.RESET_TO, p.ResetTo(bits([0.1, 0.2, 0.0, -0.5])))
            self.assertEqual(values(h.state(h.answer())), [f32(v) for v in (0.1, 0.2, 0.0, -0.5)])
            h.send(p.ARM, p.Empty())
            sys.path.insert(0, str(HERE.parent))
            from handful_gym import envs

            model = mujoco.MjModel.from_xml_path(str(envs.ASSETS / "pets_cartpole.xml"))
            data = mujoco.MjData(model)
            data.qpos[:] = [f32(0.1), f32(0.2)]
            data.qvel[:] = [0.0, f32(-0.5)]
            for u in [3.0, -1.0, 0.5]:
                h.command([u])
                got = values(h.state(h.answer()))
                data.ctrl[:] = [u]
                mujoco.mj_step(model, data, nstep=2)
                want = [f32(v) for v in list(data.qpos) + list(data.qvel)]
                self.assertEqual(got, want)
            h.send(p.RESET_TO, p.ResetTo(bits([2.5, 0.0, 0.0, 0.0])))
            (fault,) = h.frames(1)
            self.assertEqual(fault.message, p.Fault(p.BAD_RESET_STATE, (3 << 8) | 0xFF))
        finally:
            h.close()


@unittest.skipIf(MISSING, MISSING)
class RealTime(unittest.TestCase):
    def test_states_come_every_period_on_the_clock_with_heartbeats_and_the_watchdog_trips(self):
        calib = ROOT / "calib" / "pendulum-sim.toml"
        h = Host("--env", "Pendulum-v1", "--calib", str(calib))
        try:
            states = [f for f in h.frames(30, timeout_s=5) if f.kind == p.STATE][:20]
            stamps = [s.timestamp_us for s in states]
            gaps = [b - a for a, b in zip(stamps, stamps[1:])]
            # Stamped at the tick's wake-up: late on a loaded machine, never early.
            self.assertTrue(all(g > 0 for g in gaps), gaps)
            self.assertLess(abs(sorted(gaps)[len(gaps) // 2] - 50_000), 5_000, gaps)
            # Hanging at rest from power-up, disarmed: it stays there.
            theta, theta_dot = values(states[-1])
            self.assertAlmostEqual(theta, math.pi, places=5)
            self.assertAlmostEqual(theta_dot, 0.0, places=5)
            heartbeats = [f for f in h.frames(40, timeout_s=5) if f.kind == p.HEARTBEAT]
            self.assertGreaterEqual(len(heartbeats), 2)
            # Armed with no command: the watchdog trips within a period of 200 ms.
            h.send(p.ARM, p.Empty())
            frames = h.frames(15, timeout_s=5)
            self.assertIn(p.WATCHDOG, [f.message.code for f in frames if f.kind == p.FAULT])
        finally:
            h.close()


if __name__ == "__main__":
    unittest.main()
