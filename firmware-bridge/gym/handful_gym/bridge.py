"""The stand-in firmware: a Gymnasium environment behind a pseudo-terminal, speaking the
handful protocol (firmware-bridge/README.md) exactly as `handful sim` does.

The pty's slave is made raw (cfmakeraw) before its path is published as a symlink
(`--link`, atomically: a temporary name, then rename; only a previous simulator's link
into /dev/pts is ever replaced), and the link's path is printed on stdout. Two clock
modes, as the Rust simulator's (`src/sim/realtime.rs`, `src/sim/lockstep.rs`):

- real time: the firmware ticks every control period (the environment's `dt`) at
  absolute deadlines on the monotonic clock (`next += period`; a missed slot is skipped
  and counted, never caught up); host frames are handled on arrival; each tick samples
  the state, publishes it, then steps the environment one period under the actuation in
  force (a command applies from the tick after it arrives);
- lockstep (`--lockstep`, `CAP_LOCKSTEP`): firmware time moves one period per Command;
  each Command is handled, the environment steps under the actuation now in force if
  Armed, and exactly one State answers; a Reset or an honoured ResetTo is answered by one
  State of the new start.

Runs until SIGINT or SIGTERM (and gets SIGTERM when the process that started it dies),
then removes its link and prints its counters.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import math
import os
import select
import signal
import sys
import termios
import time
import tomllib
from typing import Optional

from . import firmware as fw
from . import protocol as p
from .plant import PlantError, make

FIRMWARE_VERSION = (0, 1, 0)
PTS_DIR = "/dev/pts/"
MAX_WAIT_S = 0.05


class BridgeError(Exception):
    """Something that stops the bridge from starting, said plainly."""


# The wire end: a raw pty and its link.


def open_pty():
    master, slave = os.openpty()
    attrs = termios.tcgetattr(slave)
    iflag, oflag, cflag, lflag, ispeed, ospeed, cc = attrs
    # cfmakeraw(3).
    iflag &= ~(
        termios.IGNBRK
        | termios.BRKINT
        | termios.PARMRK
        | termios.ISTRIP
        | termios.INLCR
        | termios.IGNCR
        | termios.ICRNL
        | termios.IXON
    )
    oflag &= ~termios.OPOST
    lflag &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
    cflag &= ~(termios.CSIZE | termios.PARENB)
    cflag |= termios.CS8
    cc[termios.VMIN] = 1
    cc[termios.VTIME] = 0
    termios.tcsetattr(slave, termios.TCSANOW, [iflag, oflag, cflag, lflag, ispeed, ospeed, cc])
    os.set_blocking(master, False)
    os.set_inheritable(master, False)
    os.set_inheritable(slave, False)
    return master, slave, os.ttyname(slave)


def check_replaceable(path: str) -> None:
    if not os.path.lexists(path):
        return
    if os.path.islink(path):
        target = os.readlink(path)
        if target.startswith(PTS_DIR):
            return
        found = f"a symlink to {target}"
    elif os.path.isdir(path):
        found = "a directory"
    else:
        found = "a file that is not a symlink"
    raise BridgeError(
        f"link path {path} is taken by {found}; the bridge only replaces links into /dev/pts"
    )


def publish_link(path: str, target: str) -> None:
    check_replaceable(path)
    temp = os.path.join(os.path.dirname(path) or ".", f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        os.remove(temp)
    except FileNotFoundError:
        pass
    os.symlink(target, temp)
    try:
        os.rename(temp, path)
    except OSError:
        os.remove(temp)
        raise


def remove_link(path: str, target: str) -> None:
    try:
        if os.readlink(path) == target:
            os.remove(path)
    except OSError:
        pass


# The robot's announcement: from the calibration, checked against the environment.


def firmware_config(args, plant) -> fw.Config:
    capabilities = p.CAP_RESET | (p.CAP_RESET_TO if plant.reset_to else 0)
    if args.lockstep:
        capabilities |= p.CAP_LOCKSTEP
    if args.calib:
        robot_id, states, actions, period_us = from_calibration(args.calib, plant)
    else:
        robot_id = args.robot_id or args.env.replace("/", "-")[: p.NAME_LEN]
        states = tuple(fw.Channel(f"state_{i}", "") for i in range(plant.state_dim))
        actions = tuple(
            fw.Channel(f"action_{i}", "", lo, hi, min(max(0.0, lo), hi))
            for i, (lo, hi) in enumerate(zip(plant.action_low, plant.action_high))
        )
        period_us = plant.period_us
    if len(robot_id.encode()) > p.NAME_LEN:
        raise BridgeError(f"robot id {robot_id!r}: at most {p.NAME_LEN} bytes of UTF-8")
    for c in states + actions:
        if len(c.name.encode()) > p.NAME_LEN or len(c.unit.encode()) > p.UNIT_LEN:
            raise BridgeError(f"channel {c.name!r} unit {c.unit!r}: name at most 24 bytes, unit 8")
    return fw.Config(
        robot_id=robot_id,
        firmware_version=FIRMWARE_VERSION,
        states=states,
        actions=actions,
        control_period_us=period_us,
        watchdog_timeout_us=args.watchdog_ms * 1000,
        heartbeat_interval_us=args.heartbeat_ms * 1000,
        host_timeout_us=args.host_timeout_ms * 1000,
        capabilities=capabilities,
    )


def from_calibration(path: str, plant):
    """Robot id, channels and period from a handful calibration, refused where the
    environment differs (state or action count, control period, action limits beyond the
    environment's)."""
    try:
        with open(path, "rb") as f:
            calib = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise BridgeError(f"calibration {path}: {e}") from None
    try:
        robot_id = calib["robot"]["id"]
        rate_hz = float(calib["timing"]["control_rate_hz"])
        raw_states = calib["state"]
        raw_actions = calib["action"]
        states = tuple(fw.Channel(s["name"], s["unit"]) for s in raw_states)
        actions = tuple(
            fw.Channel(a["name"], a["unit"], float(a["min"]), float(a["max"]), float(a["safe"]))
            for a in raw_actions
        )
    except (KeyError, TypeError, ValueError) as e:
        raise BridgeError(f"calibration {path}: missing or bad key {e}") from None
    problems = []
    if len(states) != plant.state_dim:
        problems.append(f"{len(states)} state channels, the environment has {plant.state_dim}")
    if len(actions) != plant.action_dim:
        problems.append(f"{len(actions)} action channels, the environment has {plant.action_dim}")
    period_us = round(1e6 / rate_hz) if rate_hz > 0 else 0
    if period_us != plant.period_us:
        problems.append(
            f"control period {period_us} us ({rate_hz} Hz), the environment steps "
            f"{plant.period_us} us"
        )
    for a, lo, hi in zip(actions, plant.action_low, plant.action_high):
        if a.min < lo or a.max > hi:
            problems.append(
                f"action {a.name} limits [{a.min}, {a.max}] beyond the environment's [{lo}, {hi}]"
            )
    if problems:
        raise BridgeError(f"calibration {path} does not fit the environment: " + "; ".join(problems))
    return robot_id, states, actions, period_us


# The running robot.


class Bridge:
    def __init__(self, args, plant, config: fw.Config) -> None:
        self.args = args
        self.plant = plant
        self.firmware = fw.Firmware(config)
        self.decoder = p.Decoder()
        self.period_us = config.control_period_us
        self.master, self.slave, self.slave_path = open_pty()
        self.link = args.link
        publish_link(self.link, self.slave_path)
        self.counts = dict(steps=0, sent=0, lost_full=0, received=0, decode_errors=0, resets=0,
                           overruns=0)
        self.stop = False

    # Shared by both clock modes.

    def handle(self, frame: p.Frame, now_us: int):
        event = self.firmware.handle(frame, now_us, self.plant.refuses)
        if isinstance(event, fw.ResetEvent):
            self.plant.reset(event.seed)
        elif isinstance(event, fw.ResetToEvent):
            self.plant.set_state(event.values)
        if event is not None:
            self.counts["resets"] += 1
        return event

    def tick(self, now_us: int) -> tuple:
        state = self.plant.state()
        bits = tuple(p.f32_bits(v) for v in state)
        return self.firmware.tick(now_us, bits, self.plant.fault_flags())

    def step(self, action) -> None:
        self.plant.step(action)
        self.counts["steps"] += 1

    def publish(self) -> None:
        while self.firmware.outbox:
            wire = p.encode(self.firmware.outbox.popleft())
            try:
                written = os.write(self.master, wire)
            except BlockingIOError:
                written = 0
            if written == len(wire):
                self.counts["sent"] += 1
            else:
                # A full pty (the host is not reading): the frame is lost, never waited
                # for. A partial write is completed with a delimiter so the host
                # resynchronises.
                if written:
                    try:
                        os.write(self.master, b"\x00")
                    except BlockingIOError:
                        pass
                self.counts["lost_full"] += 1

    def receive(self, now_of, on_frame) -> None:
        while True:
            try:
                data = os.read(self.master, 4096)
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno in (errno.EAGAIN, errno.EINTR):
                    return
                raise
            for result in self.decoder.feed(data):
                if isinstance(result, p.DecodeError):
                    self.counts["decode_errors"] += 1
                else:
                    self.counts["received"] += 1
                    on_frame(result, now_of())
            if len(data) < 4096:
                return

    def readable(self, timeout_s: float) -> bool:
        try:
            ready, _, _ = select.select([self.master], [], [], max(timeout_s, 0.0))
        except InterruptedError:
            return False
        return bool(ready)

    # Real time.

    def run_realtime(self) -> None:
        start_ns = time.monotonic_ns()

        def now_us() -> int:
            return (time.monotonic_ns() - start_ns) // 1000

        def on_frame(frame, at_us):
            self.handle(frame, at_us)
            self.publish()

        next_us = 0
        while not self.stop:
            t = now_us()
            if t >= next_us:
                action = self.tick(t)
                self.publish()
                self.step(action)
                next_us += self.period_us
                after = now_us()
                if after >= next_us:
                    missed = (after - next_us) // self.period_us + 1
                    self.counts["overruns"] += missed
                    next_us += missed * self.period_us
                continue
            wait_s = min((next_us - t) / 1e6, MAX_WAIT_S)
            if self.readable(wait_s):
                self.receive(now_us, on_frame)

    # Lockstep.

    def run_lockstep(self) -> None:
        clock = [0]

        def on_frame(frame, _):
            event = self.handle(frame, clock[0])
            if frame.kind == p.COMMAND:
                if self.firmware.arm_state == p.ARMED:
                    self.step(self.firmware.actuation())
                clock[0] += self.period_us
                self.tick(clock[0])
            elif frame.kind in (p.RESET, p.RESET_TO) and event is not None:
                self.tick(clock[0])
            self.publish()

        while not self.stop:
            if self.readable(MAX_WAIT_S):
                self.receive(lambda: clock[0], on_frame)

    def close(self) -> None:
        remove_link(self.link, self.slave_path)
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass
        self.plant.close()

    def report(self) -> str:
        c = self.counts
        return (
            f"steps {c['steps']} | sent {c['sent']} lost (full {c['lost_full']}, outbox "
            f"{self.firmware.dropped_frames}) | received {c['received']} decode errors "
            f"{c['decode_errors']} | resets {c['resets']} overruns {c['overruns']}"
        )


# The command line.


def parse_offsets(items) -> dict:
    offsets = {}
    for item in items:
        index, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            number = {"pi": math.pi, "-pi": -math.pi}.get(value.strip())
            offsets[int(index)] = float(value) if number is None else number
        except ValueError:
            raise BridgeError(f"--state-offset {item!r}: expected INDEX=VALUE (VALUE a number or pi)")
    return offsets


def parse_env_args(items) -> dict:
    import ast

    kwargs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise BridgeError(f"--env-arg {item!r}: expected KEY=VALUE")
        try:
            kwargs[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            kwargs[key] = value
    return kwargs


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="handful-gym",
        description="Serve a Gymnasium environment as a handful robot over a pseudo-terminal "
        "(the protocol of firmware-bridge/README.md).",
        epilog="example: handful run --calib calib/pendulum-sim.toml "
        "--sim-cmd '.venv/bin/python firmware-bridge/gym/serve.py --env Pendulum-v1'",
    )
    ap.add_argument("--env", required=True, help="Gymnasium id (handful/PetsCartpole-v0 too)")
    ap.add_argument("--link", help="the symlink the host opens (default /tmp/handful-gym-ENV)")
    ap.add_argument("--lockstep", action="store_true", help="one period per Command")
    ap.add_argument("--seed", type=int, default=0, help="the environment's first reset")
    ap.add_argument("--calib", help="a handful calibration: robot id, channels, rate")
    ap.add_argument("--robot-id", help="without --calib: the id to announce")
    ap.add_argument("--watchdog-ms", type=int, default=200)
    ap.add_argument("--heartbeat-ms", type=int, default=100)
    ap.add_argument("--host-timeout-ms", type=int, default=500)
    ap.add_argument("--state-offset", action="append", default=[], metavar="I=V",
                    help="MuJoCo: publish state channel I as MuJoCo's value + V (repeatable)")
    ap.add_argument("--env-arg", action="append", default=[], metavar="KEY=VALUE",
                    help="a keyword argument of gymnasium.make (repeatable)")
    return ap


def _die_with_parent() -> None:
    """SIGTERM when the process that started the bridge dies (prctl PR_SET_PDEATHSIG)."""
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:
        raise BridgeError("the process that started the bridge is gone")


def main(argv: Optional[list] = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.watchdog_ms <= 0 or args.heartbeat_ms <= 0 or args.host_timeout_ms <= 0:
            raise BridgeError("--watchdog-ms, --heartbeat-ms, --host-timeout-ms: expected > 0")
        args.link = args.link or f"/tmp/handful-gym-{args.env.replace('/', '-')}"
        _die_with_parent()
        bridge_stop = []

        def on_signal(signum, _frame):
            bridge_stop.append(signum)
            if bridge is not None:
                bridge.stop = True

        bridge = None
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        plant = make(args.env, args.seed, parse_offsets(args.state_offset),
                     parse_env_args(args.env_arg))
        config = firmware_config(args, plant)
        bridge = Bridge(args, plant, config)
        bridge.stop = bool(bridge_stop)
    except (BridgeError, PlantError, OSError) as e:
        print(f"handful-gym: {e}", file=sys.stderr)
        return 2
    print(bridge.link, flush=True)
    try:
        if args.lockstep:
            bridge.run_lockstep()
        else:
            bridge.run_realtime()
    finally:
        bridge.close()
    print(bridge.report(), flush=True)
    return 0
