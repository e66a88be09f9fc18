"""What a trial's result says, read from its pickle's opcodes without unpickling it.

``hydra-sigopt kill`` tells the user whether a trial that ended under a dead sweeper failed: a
submitit job's result, or an in-process trial's kept return (``kept_returns``). Either holds the
app's value or exception, whose classes (a module of the app's, a tensor, a class pickled by value)
need not import in the command, and no code of the app may run there. So only the stack's shape is
followed (pickletools gives each opcode's), with the few plain values that tell the outcome: the
result's tag, its ``JobReturn``'s status, and the app's return value when it is plain (None, a
number, a string, a dict or tuple of those); anything else reads as :data:`UNKNOWN`.
"""

from __future__ import annotations

import pickletools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: A value this reader does not rebuild (an object of a class, a list, numpy's scalars).
UNKNOWN: Any = type("Unknown", (), {"__repr__": lambda self: "UNKNOWN"})()

#: Pickle's opcodes that push an int, and those that put to or get from its memo.
_INT_OPCODES = frozenset({"INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4"})
_FLOAT_OPCODES = frozenset({"FLOAT", "BINFLOAT"})
_PUT_OPCODES = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_GET_OPCODES = frozenset({"GET", "BINGET", "LONG_BINGET"})
_MARK = object()  # a MARK on the stack
_JOB_STATUS = object()  # Hydra's JobStatus class on the stack
_MAX_DEPTH = 100  # how deep a return value is read
#: How far into a pickle the reader goes (it reads about 1 MB a second); past it, the result is not read.
MAX_READ_BYTES = 64 * 2**20
_STATUS = "JobStatus"  # the first item of a JobStatus member rebuilt: ("JobStatus", its value)
#: What Hydra's JobReturn holds (hydra-core 1.1 to 1.3), and a KeptReturn: their states, as a BUILD sets them.
_JOB_RETURN_FIELDS = frozenset({"overrides", "cfg", "hydra_cfg", "working_dir", "task_name", "status", "_return_value"})
KEPT_RETURN_FIELDS = frozenset({"value", "started_at", "ended_at", "host"})


@dataclass(frozen=True)
class Outcome:
    tag: str | None  # submitit's: "success", or "error" when the job's task raised
    status: int | None  # the JobReturn's JobStatus value (None: not found)
    return_value: Any = UNKNOWN  # the JobReturn's ``_return_value``, when it is plain


def outcome_in_pickle(stream: Any) -> Outcome:
    """A submitit result's tag (its first string), and its ``JobReturn``'s ``status`` and
    ``_return_value`` (the app's value)."""
    tag, state = _first_string_and_state(stream, _JOB_RETURN_FIELDS)
    if state is None or (status := _status_in(state)) is None:
        return Outcome(tag, None)
    return Outcome(tag, status, _plain_or_unknown(state["_return_value"]))


def kept_value_in_pickle(stream: Any) -> Any:
    """The app's value in an in-process trial's kept return (``kept_returns.KeptReturn``), if plain."""
    _, state = _first_string_and_state(stream, KEPT_RETURN_FIELDS)
    return UNKNOWN if state is None else _plain_or_unknown(state["value"])


def _first_string_and_state(stream: Any, fields: frozenset[str]) -> tuple[str | None, dict[str, Any] | None]:
    """The pickle's first string, and the state its last BUILD with all these ``fields`` gives (the
    object's, as a dataclass is pickled: its ``__dict__``). The last: an object in the app's value
    with the same fields (a JobReturn of a sub-run) is built before the one that holds it."""
    first: str | None = None
    found: dict[str, Any] | None = None
    stack = _Stack()
    memo: dict[int, Any] = {}
    for opcode, arg, position in pickletools.genops(stream):
        if position is not None and position > MAX_READ_BYTES:
            return first, None  # an app's value of a model's size: reading it would hold kill for minutes
        name = opcode.name
        if name == "MEMOIZE" or name in _PUT_OPCODES:
            memo[len(memo) if name == "MEMOIZE" else int(arg or 0)] = stack.top()
            continue
        popped = stack.pop(opcode.stack_before)
        if name.endswith("UNICODE") and isinstance(arg, str) and first is None:
            first = arg
        if name == "BUILD" and popped and isinstance(state := popped[-1], dict) and fields <= set(state):
            found = state
        stack.push(opcode.stack_after, _value_of(name, arg, popped, memo))
    return first, found


class _Stack:
    """The unpickler's stack, in shape: what each opcode takes and leaves, and where its MARKs are
    (kept apart, so that a MARK is found at once however long the stack: a tuple of a million items
    is one MARK ... TUPLE)."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.marks: list[int] = []

    def top(self) -> Any:
        return self.items[-1] if self.items else UNKNOWN

    def push(self, after: Sequence[Any], value: Any) -> None:
        for kind in after:
            if kind is pickletools.markobject:
                self.marks.append(len(self.items))
            self.items.append(_MARK if kind is pickletools.markobject else value)

    def pop(self, before: Sequence[Any]) -> list[Any]:
        """What an opcode takes off the stack (``before``, as pickletools gives it): down to the
        last MARK and the objects under it, or so many objects."""
        if pickletools.markobject in before:
            mark_at = self.marks.pop() if self.marks else 0
            start = max(0, mark_at - before.index(pickletools.markobject))
            taken = self.items[start:mark_at] + self.items[mark_at + 1 :]
        else:
            start = max(0, len(self.items) - len(before))
            taken = self.items[start:]
        del self.items[start:]
        while self.marks and self.marks[-1] >= len(self.items):  # a MARK taken as an object
            self.marks.pop()
        return taken


def _value_of(name: str, arg: Any, popped: list[Any], memo: dict[int, Any]) -> Any:
    """What an opcode leaves on the stack, where it tells the outcome; UNKNOWN elsewhere."""
    if name.endswith("UNICODE") and isinstance(arg, str):
        return arg
    if name in _GET_OPCODES:
        return memo.get(int(arg), UNKNOWN)
    if name in ("GLOBAL", "STACK_GLOBAL"):
        named = str(arg).split(" ") if name == "GLOBAL" else popped
        return _JOB_STATUS if named == ["hydra.core.utils", "JobStatus"] else UNKNOWN
    if name in _INT_OPCODES or name in _FLOAT_OPCODES:
        return arg
    if name in ("NONE", "NEWTRUE", "NEWFALSE"):
        return {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}[name]
    if name.startswith("TUPLE") or name == "EMPTY_TUPLE":
        return tuple(popped)
    if name == "REDUCE" and popped[:1] == [_JOB_STATUS] and len(popped) == 2 and isinstance(popped[1], tuple):
        return (_STATUS, *popped[1])
    if name in ("EMPTY_DICT", "DICT"):
        return _filled({}, popped)
    if name in ("SETITEM", "SETITEMS") and popped and isinstance(popped[0], dict):
        return _filled(popped[0], popped[1:])  # the same dict: the memo holds it too
    return UNKNOWN


def _filled(into: dict[Any, Any], items: Sequence[Any]) -> Any:
    """``into`` with the key-value pairs of ``items``; UNKNOWN once a key cannot be one."""
    try:
        into.update(zip(items[::2], items[1::2], strict=False))
    except TypeError:  # a key that cannot be one (a dict, a tuple holding one)
        return UNKNOWN
    return into


def _status_in(state: dict[str, Any]) -> int | None:
    """The JobStatus value under "status" (None: no JobStatus there, a config's own "status")."""
    status = state.get("status")
    if isinstance(status, tuple) and len(status) == 2 and status[0] == _STATUS and isinstance(status[1], int):
        return status[1]
    return None


def _plain_or_unknown(value: Any) -> Any:
    return value if _plain(value) else UNKNOWN


def _plain(value: Any, depth: int = 0) -> bool:
    """Whether a value was rebuilt whole: no part of it is UNKNOWN (nor a mark or a class). A value
    nested past 100 levels (one that holds itself) is not read."""
    if depth > _MAX_DEPTH:
        return False
    if isinstance(value, dict):
        return all(_plain(k, depth + 1) and _plain(v, depth + 1) for k, v in value.items())
    if isinstance(value, tuple):
        return all(_plain(v, depth + 1) for v in value)
    return value is None or isinstance(value, (bool, int, float, str))
