"""Learning-rate schedules: plain functions of the global step, so they checkpoint as a step count and test
without torch. Each takes (protocol, steps per epoch) and returns the lr multiplier of every step."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from ablate.protocols.recipe import Protocol

LrFactor = Callable[[int], float]


def warmup_steps(protocol: Protocol, steps_per_epoch: int) -> int:
    return int(round(protocol.warmup_epochs * steps_per_epoch))


def with_warmup(protocol: Protocol, steps_per_epoch: int, after: LrFactor) -> LrFactor:
    """Linear warm-up to the full lr over ``warmup_epochs``, then ``after(step)``."""
    warmup = warmup_steps(protocol, steps_per_epoch)
    return lambda step: (step + 1) / warmup if step < warmup else after(step)


def cosine_schedule(protocol: Protocol, steps_per_epoch: int) -> LrFactor:
    """Cosine from lr to 0 over the steps after warm-up."""
    warmup = warmup_steps(protocol, steps_per_epoch)
    span = max(1, protocol.epochs * steps_per_epoch - warmup)
    return with_warmup(protocol, steps_per_epoch,
                       lambda step: 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / span))))


def step_schedule(protocol: Protocol, steps_per_epoch: int) -> LrFactor:
    """×gamma every ``step_epochs`` epochs, counted from the start (as timm's step scheduler)."""
    return with_warmup(protocol, steps_per_epoch,
                       lambda step: protocol.gamma ** (step // steps_per_epoch // protocol.step_epochs))


def onecycle_schedule(protocol: Protocol, steps_per_epoch: int) -> LrFactor:
    """OneCycle as torch's: lr/25 up to lr (over warmup_epochs, else 30 % of training), cosine down to lr/1e4."""
    up = max(1, int(round((protocol.warmup_epochs or 0.3 * protocol.epochs) * steps_per_epoch)))
    span = max(1, protocol.epochs * steps_per_epoch - up)
    start, end = 1 / 25, 1 / 1e4

    def factor(step: int) -> float:
        if step < up:
            return start + (1 - start) * step / up
        return end + (1 - end) * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - up) / span)))

    return factor


SCHEDULES: dict[str, Callable[[Protocol, int], LrFactor]] = {
    "cosine": cosine_schedule,
    "onecycle": onecycle_schedule,
    "step": step_schedule,
}


def lr_factor(protocol: Protocol, steps_per_epoch: int) -> LrFactor:
    return SCHEDULES[protocol.schedule](protocol, steps_per_epoch)
