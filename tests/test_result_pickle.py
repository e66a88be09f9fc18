"""hydra_sigopt.result_pickle: a trial's result read from its pickle's opcodes, unpickling nothing."""

from __future__ import annotations

import io
import pickle
import time
from dataclasses import dataclass
from typing import Any

import cloudpickle
import pytest
from hydra.core.utils import JobReturn, JobStatus
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from hydra_sigopt.kept_returns import KeptReturn
from hydra_sigopt.result_pickle import UNKNOWN, kept_value_in_pickle, outcome_in_pickle

#: How results get pickled: submitit's cloudpickle, the standard pickler and its pure-Python twin.
PICKLERS = {"cloudpickle": cloudpickle.dumps, "pickle": pickle.dumps, "pure_pickle": pickle._dumps}  # type: ignore[attr-defined]

#: What an app returns that this reader rebuilds: numbers (NaN too), None, strings, dicts and tuples.
plain_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    # Tuples of 0 to 5 items: pickle has an opcode for each of 0 to 3, and MARK ... TUPLE past that.
    lambda inner: st.lists(inner, max_size=5).map(tuple) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@dataclass
class Timing:
    """An app's record that happens to have a KeptReturn's fields."""

    value: object
    started_at: float
    ended_at: float
    host: str


@settings(max_examples=150, deadline=None)
@given(
    value=plain_values,
    status=st.sampled_from([JobStatus.COMPLETED, JobStatus.FAILED]),
    protocol=st.integers(0, pickle.HIGHEST_PROTOCOL),
    pickler=st.sampled_from(sorted(PICKLERS)),
)
def test_a_job_s_status_and_plain_return_value_are_read_as_they_were_pickled(
    value: Any, status: JobStatus, protocol: int, pickler: str
) -> None:
    job = JobReturn(overrides=["x=1"], cfg=OmegaConf.create({"status": "a key of the app's"}), status=status)
    job._return_value = value  # as Hydra's run_job sets it
    outcome = outcome_in_pickle(io.BytesIO(PICKLERS[pickler](("success", job), protocol=protocol)))
    assert (outcome.tag, outcome.status) == ("success", status.value)
    assert repr(outcome.return_value) == repr(value)  # repr: NaN is not equal to itself


@pytest.mark.parametrize("pickler", sorted(PICKLERS))
def test_a_value_of_an_app_s_class_or_a_list_is_not_read(pickler: str) -> None:
    """What the reader does not rebuild reads as UNKNOWN: kill then leaves the verdict to the resume."""
    for value in (Timing(0.5, 1.0, 2.0, "h"), [1.0, float("nan")], {"loss": [0.5] * 3000}):
        job = JobReturn(cfg=OmegaConf.create({}), status=JobStatus.FAILED, _return_value=value)
        outcome = outcome_in_pickle(io.BytesIO(PICKLERS[pickler](("success", job))))
        assert (outcome.status, outcome.return_value) == (JobStatus.FAILED.value, UNKNOWN)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_an_in_process_trial_s_kept_value_is_read(protocol: int) -> None:
    kept = KeptReturn({"mse": float("nan"), "fit_seconds": 0.5}, time.time(), time.time(), "host")
    value = kept_value_in_pickle(io.BytesIO(cloudpickle.dumps(kept, protocol=protocol)))  # as keep_return
    assert repr(value) == repr({"mse": float("nan"), "fit_seconds": 0.5})


def test_an_object_in_the_app_s_value_with_the_same_fields_is_not_taken_for_the_result() -> None:
    """A review's case: the reader took the first object built with a JobReturn's fields, and a
    JobReturn in the app's value (a sub-run's, as hydra-zen's launch() gives) was built first: a
    good trial read as failed, by its sub-run's NaN or FAILED status. The same with a kept return."""
    sub_runs = [
        JobReturn(cfg=OmegaConf.create({}), status=JobStatus.COMPLETED, _return_value=float("nan")),
        JobReturn(cfg=OmegaConf.create({}), status=JobStatus.FAILED),
    ]
    for sub_run in sub_runs:
        job = JobReturn(cfg=OmegaConf.create({}), status=JobStatus.COMPLETED)
        job._return_value = {"mse": 0.25, "sub_run": sub_run}
        outcome = outcome_in_pickle(io.BytesIO(cloudpickle.dumps(("success", job))))
        assert (outcome.status, outcome.return_value) == (JobStatus.COMPLETED.value, UNKNOWN)
    kept = KeptReturn({"mse": 0.25, "io": Timing(float("nan"), 1.0, 2.0, "h")}, 1.0, 2.0, "h")
    assert kept_value_in_pickle(io.BytesIO(cloudpickle.dumps(kept))) is UNKNOWN


def test_a_result_past_the_reading_limit_is_left_unread(monkeypatch: pytest.MonkeyPatch) -> None:
    """A result as large as a model the app returned is not walked (about a second a megabyte):
    kill then says the job finished, and the resume reads it."""
    import hydra_sigopt.result_pickle as result_pickle

    monkeypatch.setattr(result_pickle, "MAX_READ_BYTES", 10_000)
    job = JobReturn(cfg=OmegaConf.create({}), status=JobStatus.FAILED, _return_value=("w",) * 20_000)
    assert outcome_in_pickle(io.BytesIO(cloudpickle.dumps(("success", job)))).status is None
    job._return_value = ("w",) * 100
    assert outcome_in_pickle(io.BytesIO(cloudpickle.dumps(("success", job)))).status == JobStatus.FAILED.value
