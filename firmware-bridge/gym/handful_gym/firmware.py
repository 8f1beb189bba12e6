"""The firmware logic of README sections 7-10 in Python: arming, e-stop, command
validation and clamping, watchdog, host timeout, heartbeats, resets.

A line-by-line port of firmware-bridge/firmware/src/firmware.rs (the crate the Rust
simulator runs), so a Gymnasium environment behind this bridge obeys every safety rule a
handful robot obeys. No I/O and no clock: `handle(frame, now_us)` and `tick(now_us,
state_bits, plant_faults)` queue frames in `outbox`; the bridge encodes and sends them.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Callable, Optional

from . import protocol as p

OUTBOX_CAPACITY = 64
FIRMWARE_FAULTS = p.FAULT_WATCHDOG | p.FAULT_HOST_TIMEOUT | p.FAULT_ESTOP | p.FAULT_BAD_COMMAND


@dataclasses.dataclass(frozen=True)
class Channel:
    name: str
    unit: str
    # Actions: limits and safe value (f32-rounded floats). States: the range a ResetTo
    # may set (inclusive, possibly infinite; not announced).
    min: float = float("-inf")
    max: float = float("inf")
    safe: float = 0.0


@dataclasses.dataclass(frozen=True)
class Config:
    robot_id: str
    firmware_version: tuple
    states: tuple
    actions: tuple
    control_period_us: int
    watchdog_timeout_us: int
    heartbeat_interval_us: int
    host_timeout_us: int
    capabilities: int


@dataclasses.dataclass(frozen=True)
class ResetEvent:
    seed: int


@dataclasses.dataclass(frozen=True)
class ResetToEvent:
    values: tuple  # floats, one per state channel


def _f32(value: float) -> float:
    return p.f32_from_bits(p.f32_bits(value))


class Firmware:
    """Starts Disarmed. `outbox` holds queued frames, oldest first."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.outbox: collections.deque = collections.deque()
        self.safe = tuple(_f32(c.safe) for c in config.actions)
        self.arm_state = p.DISARMED
        self.latched_faults = 0
        self.refused_faults = 0
        self.plant_faults = 0
        self.command: Optional[tuple] = None
        self.last_command_seq = 0
        self.accepted_commands = 0
        self.watchdog_from_us = 0
        self.host_seen_us = 0
        self.next_heartbeat_us: Optional[int] = None
        self.next_seq = 0
        self.dropped_frames = 0

    # Host frames.

    def handle(
        self,
        frame: p.Frame,
        now_us: int,
        plant_refuses: Callable[[tuple], Optional[int]] = lambda values: None,
    ):
        """A frame from the host at firmware time `now_us`; returns a ResetEvent or
        ResetToEvent for the plant (the firmware has disarmed already), else None."""
        self.host_seen_us = now_us
        kind, m = frame.kind, frame.message
        if kind == p.HELLO:
            self._hello(m, now_us)
        elif kind == p.ARM:
            self._arm(now_us)
        elif kind == p.DISARM:
            self._disarm()
        elif kind == p.ESTOP:
            self._estop(now_us)
        elif kind == p.COMMAND:
            self._command(m, now_us)
        elif kind == p.RESET:
            if self.config.capabilities & p.CAP_RESET:
                self._disarm()
                return ResetEvent(m.seed)
            self._fault(p.UNSUPPORTED, p.RESET, now_us)
        elif kind == p.RESET_TO:
            return self._reset_to(m, now_us, plant_refuses)
        # Heartbeat and firmware-to-host kinds: liveness only.
        return None

    def _hello(self, hello: p.Hello, now_us: int) -> None:
        if not hello.protocol_min <= p.PROTOCOL_VERSION <= hello.protocol_max:
            self._fault(p.VERSION_MISMATCH, p.PROTOCOL_VERSION, now_us)
            return
        c = self.config
        self._send(
            p.CAPABILITIES,
            p.Capabilities(
                p.PROTOCOL_VERSION,
                c.robot_id,
                c.firmware_version,
                len(c.states),
                len(c.actions),
                c.control_period_us,
                c.watchdog_timeout_us,
                c.heartbeat_interval_us,
                c.capabilities,
            ),
            now_us,
        )
        for index, channel in enumerate(c.states):
            self._send(p.CHANNEL_INFO, p.ChannelInfo(0, index, channel.name, channel.unit, 0, 0, 0),
                       now_us)
        for index, channel in enumerate(c.actions):
            info = p.ChannelInfo(
                1,
                index,
                channel.name,
                channel.unit,
                p.f32_bits(channel.min),
                p.f32_bits(channel.max),
                p.f32_bits(channel.safe),
            )
            self._send(p.CHANNEL_INFO, info, now_us)

    def _arm(self, now_us: int) -> None:
        if self.arm_state in (p.DISARMED, p.FAULTED):
            self.arm_state = p.ARMED
            self.latched_faults = 0
            self.command = None
            self.watchdog_from_us = now_us
        elif self.arm_state == p.ESTOPPED:
            self._fault(p.ESTOP_CODE, 0, now_us)

    def _disarm(self) -> None:
        self.arm_state = p.DISARMED
        self.latched_faults = 0
        self.command = None

    def _estop(self, now_us: int) -> None:
        self.latched_faults |= p.FAULT_ESTOP
        self.command = None
        if self.arm_state != p.ESTOPPED:
            self.arm_state = p.ESTOPPED
            self._fault(p.ESTOP_CODE, 0, now_us)

    def _command(self, command: p.Command, now_us: int) -> None:
        channels = self.config.actions
        valid = (
            self.arm_state == p.ARMED
            and len(command.bits) == len(channels)
            and all(p.f32_is_finite(b) for b in command.bits)
            and command.valid_until_us >= now_us
        )
        if not valid:
            if self.arm_state == p.ARMED:
                self.refused_faults |= p.FAULT_BAD_COMMAND
                self._fault(p.BAD_COMMAND, command.seq, now_us)
            return
        self.command = tuple(
            min(max(p.f32_from_bits(b), _f32(c.min)), _f32(c.max))
            for b, c in zip(command.bits, channels)
        )
        self.last_command_seq = command.seq
        self.accepted_commands += 1
        self.watchdog_from_us = now_us

    def _reset_to(self, reset: p.ResetTo, now_us: int, plant_refuses):
        if not self.config.capabilities & p.CAP_RESET_TO:
            self._fault(p.UNSUPPORTED, p.RESET_TO, now_us)
            return None
        detail = self._bad_reset_state(reset.bits)
        values = tuple(p.f32_from_bits(b) for b in reset.bits)
        if detail is None:
            index = plant_refuses(values)
            if index is not None:
                detail = (p.RESET_OUT_OF_RANGE << 8) | index
        if detail is not None:
            self._fault(p.BAD_RESET_STATE, detail, now_us)
            return None
        self._disarm()
        return ResetToEvent(values)

    def _bad_reset_state(self, bits: tuple) -> Optional[int]:
        channels = self.config.states
        if len(bits) != len(channels):
            return (p.RESET_LENGTH << 8) | min(len(bits), 255)
        for index, b in enumerate(bits):
            if not p.f32_is_finite(b):
                return (p.RESET_NOT_FINITE << 8) | index
        for index, (b, c) in enumerate(zip(bits, channels)):
            if not c.min <= p.f32_from_bits(b) <= c.max:
                return (p.RESET_OUT_OF_RANGE << 8) | index
        return None

    # The control tick.

    def tick(self, now_us: int, state_bits: tuple, sensor_fault_flags: int) -> tuple:
        """One control period: supervision, the plant's faults, the State, a Heartbeat
        when due. Returns the actuation to apply (floats)."""
        if self.arm_state == p.ARMED:
            self._supervise(now_us)
        plant = sensor_fault_flags & ~FIRMWARE_FAULTS & 0xFFFFFFFF
        if len(state_bits) != len(self.config.states):
            plant |= p.FAULT_SENSOR
        rising = plant & ~self.plant_faults
        self.plant_faults = plant
        for bit, code in ((p.FAULT_SENSOR, p.SENSOR), (p.FAULT_LIMIT, p.LIMIT)):
            if rising & bit:
                self._fault(code, plant, now_us)
        flags = self.fault_flags()
        self.refused_faults = 0
        shown = tuple(state_bits[: min(len(self.config.states), p.MAX_STATE_DIM)])
        self._send(p.STATE, p.State(self.arm_state, flags, self.last_command_seq, shown), now_us)
        if self.next_heartbeat_us is None or now_us >= self.next_heartbeat_us:
            self.next_heartbeat_us = now_us + self.config.heartbeat_interval_us
            self._send(p.HEARTBEAT, p.Heartbeat(self.arm_state, flags), now_us)
        return self.actuation()

    def actuation(self) -> tuple:
        if self.arm_state == p.ARMED and self.command is not None:
            return self.command
        return self.safe

    def fault_flags(self) -> int:
        return self.latched_faults | self.refused_faults | self.plant_faults

    def _supervise(self, now_us: int) -> None:
        checks = (
            (now_us - self.watchdog_from_us, self.config.watchdog_timeout_us, p.FAULT_WATCHDOG,
             p.WATCHDOG),
            (now_us - self.host_seen_us, self.config.host_timeout_us, p.FAULT_HOST_TIMEOUT,
             p.HOST_TIMEOUT),
        )
        for elapsed_us, timeout_us, bit, code in checks:
            elapsed_us = max(elapsed_us, 0)
            if elapsed_us > timeout_us:
                self.arm_state = p.FAULTED
                self.latched_faults |= bit
                self.command = None
                self._fault(code, min(elapsed_us, 0xFFFFFFFF), now_us)

    def _fault(self, code: int, detail: int, now_us: int) -> None:
        self._send(p.FAULT, p.Fault(code, detail), now_us)

    def _send(self, kind: int, message, now_us: int) -> None:
        frame = p.Frame(kind, self.next_seq, now_us, message)
        self.next_seq = (self.next_seq + 1) & 0xFFFFFFFF
        if len(self.outbox) >= OUTBOX_CAPACITY:
            self.dropped_frames += 1
        else:
            self.outbox.append(frame)
