"""The contract between the sweep loop and whatever runs its trials."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

from hydra_sigopt.runners.cancel import Cancellation
from hydra_sigopt.runners.outcome import JobOutcome


@dataclass(frozen=True)
class CancelReport:
    """What cancelling the running trials did."""

    #: Trials whose job was cancelled (or had ended, or never started).
    cancelled: list[int] = field(default_factory=list)
    #: Trials whose cancel failed, with why: their jobs may run on.
    failed: Mapping[int, str] = field(default_factory=dict)


class TrialRunner(ABC):
    """Runs trials; the sweep loop asks it to start trials and waits for outcomes.

    Contract: every trial :meth:`start` accepted (or :meth:`reattach` adopted) is reported by
    :meth:`wait` exactly once, as one :class:`JobOutcome`, unless :meth:`cancel_all` cancelled it.
    """

    #: Whether trials start one by one as slots free up (else in blocking batches).
    asynchronous: bool = False
    #: Seconds between two looks at the jobs in :meth:`wait` (the sweep waits in slices of it while
    #: a free slot waits for a suggestion, to take it as soon as it is ready).
    poll_interval: float = 0.05
    #: Where jobs run: "local" or "slurm" for submitit, else the launcher's class name.
    kind: str = "unknown"
    #: Whether the launcher itself logs each trial's overrides (Hydra's launchers do in launch()).
    logs_each_trial: bool = False
    #: Whether trials run in the sweeper's own process (Hydra's basic launcher): a Ctrl-C lands in them.
    runs_trials_here: bool = False
    #: Whether the sweeper reads the trials' reports while they run, so that early stopping can stop
    #: them (not while another launcher's batch runs: joblib, ray).
    reads_reports_while_running: bool = True
    #: The submitit folder pattern of the jobs, where there is one.
    submitit_folder: str | None = None
    #: Called between polls by a runner whose :meth:`wait` blocks while jobs run (the sweep reads
    #: the trials' reports there); None: nothing to do.
    between_polls: Callable[[], object] | None = None

    @abstractmethod
    def start(self, number: int, overrides: Sequence[str]) -> str | None:
        """Start (or queue) one trial; return its job id once known.

        An asynchronous runner returns None when the cluster refused the job for now; it then
        submits it again itself and reports it through :meth:`started_late`.
        """

    @abstractmethod
    def wait(self, timeout: float) -> list[JobOutcome]:
        """Outcomes of trials that ended; may return none when ``timeout`` passes first."""

    def ended_before_interrupt(self) -> list[JobOutcome]:
        """Outcomes of the trials that ended before a Ctrl-C cut a blocking :meth:`wait` short (a
        batch runner's: the trials of its batch that had finished), each reported once."""
        return []

    def stop_starting(self) -> None:
        """The sweep stops: :meth:`wait` submits no job again from now on (nothing would journal it)."""

    def started_late(self) -> list[tuple[int, str]]:
        """Trials whose job :meth:`start` could not submit at once and :meth:`wait` submitted since:
        (number, job id), each reported once. Only asynchronous runners defer a start."""
        return []

    @abstractmethod
    def running(self) -> list[int]:
        """Numbers of trials started and not yet reported by :meth:`wait`."""

    def waiting(self) -> list[int]:
        """Numbers of started trials whose job waits for the cluster rather than runs (a subset of :meth:`running`)."""
        return []

    def unsubmitted(self) -> list[int]:
        """Numbers of started trials whose job the cluster has not accepted yet (refused for now and
        tried again, as during a slurmctld outage): nothing of them runs (a subset of :meth:`waiting`)."""
        return []

    def reattach(self, number: int, job_id: str) -> bool:
        """Adopt a job started by an earlier sweeper process; False where this runner cannot."""
        return False

    def find_job(self, number: int, overrides: Sequence[str], known_job_ids: Collection[str]) -> str | None:
        """The id of a job started for this trial that the journal does not know (the sweeper
        died between starting it and journaling its id), where this runner can tell; else None."""
        return None

    def cancel_all(self) -> CancelReport:
        """Cancel the running trials where possible; say which were and which could not be."""
        return CancelReport()

    def drop_unsubmitted(self) -> dict[int, str]:
        """For a sweep that stops: forget the trials :meth:`start` took whose job the cluster refused
        (nothing runs to cancel or leave running); their numbers, each with the refusal's last line."""
        return {}

    #: Whether :meth:`cancel` can cancel one trial's job (a failure is then worth a retry).
    cancels_trials = False

    def cancel(self, numbers: Sequence[int]) -> CancelReport:
        """Cancel these running trials' jobs; :meth:`wait` still reports each one when its job ends.
        Where this runner cannot cancel a trial of its own, each is in ``failed``."""
        return CancelReport(failed={n: f"a trial on {self.kind} cannot be cancelled alone" for n in numbers})

    def cancel_untracked(self, job_ids: Sequence[str]) -> Cancellation:
        """Cancel these jobs of an earlier run of the sweep (not tracked by this runner) if they
        still run; those that do not are ``already_gone``."""
        return Cancellation(already_gone=tuple(job_ids))

    def untracked_running(self, job_ids: Sequence[str]) -> list[str]:
        """Those of these jobs of an earlier run of the sweep that still run or wait, where this
        runner can tell; none where it cannot (then nothing is held for them)."""
        return []

    def run_from(self, job_python: Callable[[str], str]) -> bool:
        """Have every job started from now on run ``job_python(python)`` instead of its Python
        (a code snapshot's folder and import path); False where trials do not run as jobs."""
        return False

    def keep_warm(self, trials_left: int, next_up: Sequence[Sequence[str]] = ()) -> None:
        """Have jobs started ahead for up to ``trials_left`` trials, where this runner does that;
        ``next_up``: the overrides of the trials the next free slots take, in that order."""

    def close(self) -> None:
        """Release what the runner holds beyond the trials (warm jobs); running trials stay. Never raises."""

    def describe(self) -> str:
        return type(self).__name__
