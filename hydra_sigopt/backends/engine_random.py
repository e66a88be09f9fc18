"""The local engine's own random state, kept apart from the process's global generators.

sigoptlite and libsigopt draw their random-phase points and proposals from numpy's global
generator (``numpy.random.uniform`` and friends; scipy's ``rvs`` without a ``random_state``).
In-process trials (Hydra's basic launcher) share that generator, and almost every training script
seeds it (``np.random.seed``, Lightning's ``seed_everything``): an engine on the global state is
reset after every trial and suggests the same point again, and seeding the engine seeds the app.

So a suggestion is computed on a stream of the engine's own, swapped into the global generators
(numpy's and :mod:`random`'s) for the call and swapped out after: the app finds its generators
exactly as it left them, and the engine's stream depends only on the sweep's seed and the
suggestion's number (a resumed sweep continues with new numbers instead of replaying its first
points). Creating experiments and observations draws nothing (measured on sigoptlite 0.1.2), so
only suggestions need the swap; ``tests/test_engine_random.py`` checks both.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy

# One swap at a time in the process: two interleaved swaps would save each other's state.
_SWAP_LOCK = threading.Lock()


class EngineRandomState:
    """Random streams for the engine: one per suggestion number, derived from the sweep's seed."""

    def __init__(self, seed: int | None = None) -> None:
        # Without a seed, fresh entropy for this process (suggestions differ from run to run).
        self._root = seed if seed is not None else int(numpy.random.SeedSequence().entropy)  # type: ignore[arg-type]

    @contextmanager
    def stream(self, number: int) -> Iterator[None]:
        """Run the block on the engine's stream ``number``; the global generators are restored after."""
        sequence = numpy.random.SeedSequence([self._root, number])
        with _SWAP_LOCK:
            saved_numpy = numpy.random.get_state(legacy=False)
            saved_random = random.getstate()
            numpy.random.seed(sequence.generate_state(8))
            random.seed(int(sequence.generate_state(1, dtype=numpy.uint64)[0]))
            try:
                yield
            finally:
                numpy.random.set_state(saved_numpy)
                random.setstate(saved_random)
