"""Fault injection for the proof under faults: named crash points and one deliberately broken ledger.

Nothing here does anything unless the `DFA_FAULTS` environment variable names it, and no deployment sets
it: the fault suites (`tests/fault/`) set it in the processes they start and kill. Its value is a
comma-separated list of

- `crash:<point>=<probability>`: at `crash_point(<point>)` the process kills itself with SIGKILL with that
  probability (1 when omitted), as a power cut would, with no cleanup, no flush and no rollback but the
  database's own;
- `<switch>`: a named misbehaviour, such as `naive_read_modify_write`, for proving a checker can see what
  it looks for.

`DFA_FAULTS_SEED` makes the random choices repeatable.
"""

import logging
import os
import random
import signal
from functools import cache

ENV = "DFA_FAULTS"
SEED_ENV = "DFA_FAULTS_SEED"

# The ledger reads balances without locks and writes back what it computed: concurrent transfers lose
# updates. Only for showing that the bank test's checker catches lost updates.
NAIVE_READ_MODIFY_WRITE = "naive_read_modify_write"
# The chain mirror marks the movements it batched delivered in a transaction after the batches': a crash in
# between batches them again. Only for showing that the outbox crash test's checker catches duplicates.
MIRROR_MARKS_DELIVERED_LATE = "mirror_marks_delivered_late"
# A notice goes out under a new id at every attempt: a recipient cannot know a resend. Only for showing that
# the outbox crash test's checker catches a notice received twice.
NOTICE_SENT_UNDER_A_NEW_ID = "notice_sent_under_a_new_id"
# Mutating requests run without claiming their Idempotency-Key, so nothing stops a retry or a concurrent twin
# from acting again. Only for showing that the idempotency race test's checker catches duplicate effects.
IDEMPOTENCY_UNCLAIMED = "idempotency_unclaimed"

log = logging.getLogger(__name__)


@cache
def _parsed(value: str) -> tuple[dict[str, float], frozenset[str]]:
    crashes: dict[str, float] = {}
    switches: set[str] = set()
    for item in filter(None, (part.strip() for part in value.split(","))):
        if item.startswith("crash:"):
            point, _, probability = item.removeprefix("crash:").partition("=")
            crashes[point] = float(probability or 1)
        else:
            switches.add(item)
    return crashes, frozenset(switches)


@cache
def _random(seed: str | None) -> random.Random:
    return random.Random(seed)


def _active() -> tuple[dict[str, float], frozenset[str]]:
    return _parsed(os.environ.get(ENV, ""))


def enabled(switch: str) -> bool:
    """Whether the misbehaviour `switch` is switched on in this process."""
    return switch in _active()[1]


def crash_point(point: str) -> None:
    """Die here, at once and without cleanup, when `DFA_FAULTS` asks for a crash at `point`."""
    probability = _active()[0].get(point)
    if probability is not None and _random(os.environ.get(SEED_ENV)).random() < probability:
        os.kill(os.getpid(), signal.SIGKILL)


def warn_if_active() -> None:
    """Say loudly at start that this process injects faults."""
    if os.environ.get(ENV):
        log.warning("fault injection is on: %s=%s; never run a deployment like this", ENV, os.environ[ENV])
