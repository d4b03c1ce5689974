"""Load shapes for the scenarios. Import the module (`import shapes`), not the classes:
Locust runs the first LoadTestShape it finds among a locustfile's globals, so a
scenario binds exactly the one it wants, e.g. `Shape = shapes.PhasedShape`.

Every shape publishes the name of its current phase (`shapes.current_phase()`), so
users can report requests per phase (noisy_neighbour compares "solo" with "noisy").
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from locust import LoadTestShape, User

_phase: dict[str, str | int] = {"name": "steady", "index": 0}
# The shape Locust is running (set at its first tick), for phase_clock().
_running: dict[str, PhasedShape] = {}


def current_phase() -> str:
    """The phase the running shape is in ("steady" when no shape sets one)."""
    return str(_phase["name"])


def current_phase_index() -> int:
    """The position of that phase in the shape's list (0 when no shape sets one)."""
    return int(_phase["index"])


def phase_clock() -> tuple[int, Phase | None, float]:
    """(index, phase, seconds into it) of the running shape, read from the shape's own
    clock now. Locust ticks a shape once a second, so current_phase() can lag a phase
    change by up to a second; scenarios whose phases last a few seconds, and that start
    and stop their load themselves, read this instead. (0, None, 0.0) before the first
    tick; after the last phase, the last phase at its end."""
    shape = _running.get("shape")
    if shape is None or not shape.phases:
        return 0, None, 0.0
    return shape.phase_at(shape.get_run_time()) or (len(shape.phases) - 1, shape.phases[-1], shape.phases[-1].seconds)


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


@dataclass(frozen=True)
class Phase:
    """`users` users for `seconds`; `user_classes` limits which classes run (None: all)."""

    name: str
    seconds: float
    users: int
    user_classes: list[type[User]] | None = field(default=None)


class PhasedShape(LoadTestShape):
    """Runs `phases` one after the other and stops after the last. Subclasses (or a
    scenario) set `phases`; the concrete shapes below are phase lists too."""

    abstract = True
    phases: tuple[Phase, ...] = ()
    spawn_rate = 50.0

    def phase_at(self, elapsed: float) -> tuple[int, Phase, float] | None:
        """(index, phase, seconds into it) `elapsed` seconds into the run; None after the last."""
        for index, phase in enumerate(self.phases):
            if elapsed < phase.seconds:
                return index, phase, elapsed
            elapsed -= phase.seconds
        return None

    def tick(self) -> tuple[int, float] | tuple[int, float, list[type[User]] | None] | None:
        _running["shape"] = self
        current = self.phase_at(self.get_run_time())
        if current is None:
            return None
        index, phase, _ = current
        _phase.update(name=phase.name, index=index)
        if phase.user_classes is None:
            return phase.users, self.spawn_rate
        return phase.users, self.spawn_rate, phase.user_classes


def victim_rounds(
    rounds: int,
    victim: type[User],
    victim_users: int,
    settle_s: float,
    solo_s: float,
    load_phase: str,
    load_s: float,
    load: type[User],
    load_users: int,
) -> tuple[Phase, ...]:
    """`rounds` x (settle: the victim alone, not counted; solo: the victim alone, its
    baseline; `load_phase`: the victim plus `load_users` users of `load`). noisy_neighbour
    compares the victim's solo and loaded phases over every round (front_door has its own
    cycles, with a control phase)."""
    one_round = (
        Phase("settle", settle_s, victim_users, [victim]),
        Phase("solo", solo_s, victim_users, [victim]),
        Phase(load_phase, load_s, victim_users + load_users, [victim, load]),
    )
    return one_round * rounds


class SteadyShape(PhasedShape):
    """A constant SHAPE_USERS users (default 8) for SHAPE_SECONDS (default 60)."""

    abstract = True

    def __init__(self) -> None:
        super().__init__()
        self.phases = (Phase("steady", env_int("SHAPE_SECONDS", 60), env_int("SHAPE_USERS", 8)),)


class StepShape(PhasedShape):
    """SHAPE_STEPS steps (default 4) of SHAPE_STEP_USERS more users each (default 4),
    each held SHAPE_STEP_SECONDS (default 30): where does latency bend?"""

    abstract = True

    def __init__(self) -> None:
        super().__init__()
        users, seconds = env_int("SHAPE_STEP_USERS", 4), env_int("SHAPE_STEP_SECONDS", 30)
        self.phases = tuple(Phase(f"step{n}", seconds, users * n) for n in range(1, env_int("SHAPE_STEPS", 4) + 1))


class SpikeShape(PhasedShape):
    """SHAPE_USERS users (default 4), a spike to SHAPE_SPIKE_USERS (default 32) for
    SHAPE_SPIKE_SECONDS (default 15), then back: does the tenant recover without errors?
    Base phases last SHAPE_SECONDS (default 30) each."""

    abstract = True

    def __init__(self) -> None:
        super().__init__()
        base, seconds = env_int("SHAPE_USERS", 4), env_int("SHAPE_SECONDS", 30)
        self.phases = (
            Phase("before", seconds, base),
            Phase("spike", env_int("SHAPE_SPIKE_SECONDS", 15), env_int("SHAPE_SPIKE_USERS", 32)),
            Phase("after", seconds, base),
        )


SHAPES: dict[str, type[PhasedShape]] = {"steady": SteadyShape, "step": StepShape, "spike": SpikeShape}


def concrete(shape: type[PhasedShape]) -> type[PhasedShape]:
    """A runnable (non-abstract) subclass of `shape`, for a locustfile's globals."""
    return type(shape.__name__, (shape,), {"abstract": False})
