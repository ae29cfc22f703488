"""A tuning study's plan, pure logic: ``method_study`` is a generator that yields the runs a
phase of one optimizer needs and receives their results, keeping the best setting so far;
``confirm_plan`` only runs a fixed setting's seeds; ``drive`` runs the plans of all optimizers
at once on a pool of workers (a phase of one optimizer never waits for another optimizer).
Launching a run is the caller's (``launcher.py``); ``StudyState`` records the progress.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from .spec import METHOD_KNOBS, MethodSpec, Phase, StudySpec, clean_value, expand, knobs_name


@dataclass(frozen=True)
class RunRequest:
    """One run: a setting of one optimizer with one seed, on the tuning split or the real data."""

    method: str
    knobs_items: tuple[tuple[str, float], ...]
    seed: int
    stage: str  # "tuning" | "final"

    @classmethod
    def of(cls, method: str, knobs: dict[str, float], seed: int, stage: str) -> RunRequest:
        return cls(method, tuple((k, knobs[k]) for k in METHOD_KNOBS[method]), seed, stage)

    @property
    def knobs(self) -> dict[str, float]:
        return dict(self.knobs_items)

    @property
    def name(self) -> str:
        return f"{knobs_name(self.method, self.knobs)}_seed{self.seed}"

    @property
    def key(self) -> str:
        return f"{self.stage}/{self.name}"


@dataclass
class RunResult:
    """What a finished run gave: its final validation loss (inf if it diverged) and curve."""

    final: float
    curve: dict[int, float] = field(default_factory=dict)
    diverged: bool = False
    wall_s: float = 0.0
    cpu_s: float = 0.0
    launched: bool = False  # run by this invocation (False: found finished on disk)


@dataclass
class PhaseRecord:
    method: str
    name: str
    grid: dict[str, list]
    candidates: list[dict]  # {"run", "knobs", "final", "diverged", "incumbent", "extension" (if so)}
    chosen: dict[str, float]
    chosen_final: float

    def to_json(self) -> dict:
        return {"method": self.method, "phase": self.name, "grid": self.grid, "candidates": self.candidates,
                "chosen": self.chosen, "chosen_tuning_loss": self.chosen_final}


@dataclass
class MethodOutcome:
    method: str
    chosen: dict[str, float]
    phases: list[PhaseRecord]
    finals: dict[int, RunResult]  # seed -> result on the real data
    final_requests: list[RunRequest]


def method_study(spec: MethodSpec, seed: int, final_seeds: Iterable[int],
                 on_phase: Callable[[PhaseRecord], None] | None = None
                 ) -> Generator[list[RunRequest], dict[str, RunResult], MethodOutcome]:
    """The phases of one optimizer: yields each phase's runs (tuning split, ``seed``) and
    receives ``{run key: result}``; then yields the chosen setting's final runs (one per
    seed of ``final_seeds``) and returns the outcome."""
    current = dict(spec.start)
    incumbent: dict | None = None
    records = []
    for phase in spec.phases:
        requests = [RunRequest.of(spec.name, knobs, seed, "tuning") for knobs in expand(phase, current)]
        results = yield requests
        candidates = [{"run": r.name, "knobs": r.knobs, "final": results[r.key].final,
                       "diverged": results[r.key].diverged, "incumbent": False} for r in requests]
        if phase.extend and len(requests) > 1:
            candidates += yield from _extend(phase, requests, candidates, seed)
        if incumbent is not None and incumbent["run"] not in {c["run"] for c in candidates}:
            candidates.append({**incumbent, "incumbent": True})
        best = min(candidates, key=lambda c: c["final"])  # the first of equals, in grid order
        if math.isinf(best["final"]):
            raise RuntimeError(f"{spec.name}: every run of phase {phase.name!r} diverged "
                               f"({', '.join(c['run'] for c in candidates)}); lower its grid")
        current, incumbent = dict(best["knobs"]), {k: v for k, v in best.items() if k != "incumbent"}
        record = PhaseRecord(spec.name, phase.name, phase.grid, candidates, dict(current), best["final"])
        records.append(record)
        if on_phase is not None:
            on_phase(record)
    final_requests = [RunRequest.of(spec.name, current, s, "final") for s in final_seeds]
    results = yield final_requests
    return MethodOutcome(spec.name, current, records, {r.seed: results[r.key] for r in final_requests},
                         final_requests)


def _extend(phase: Phase, requests: list[RunRequest], candidates: list[dict], seed: int):
    """Runs beyond the edge of a one-key grid while the edge is the best so far: from the
    smallest (largest) value, divide (multiply) by the ratio of the two smallest (largest)
    values, at most ``phase.extend`` times per side, stopping at the first run that is not
    better. Yields the runs one at a time; returns their candidate records (``"extension"``)."""
    key = next(iter(phase.grid))
    added: list[dict] = []
    values = sorted({r.knobs[key] for r in requests})
    for side in (0, -1):
        edge, inner = values[side], values[1 if side == 0 else -2]
        factor = inner / edge
        for _ in range(phase.extend):
            everything = candidates + added
            best = min(everything, key=lambda c: c["final"])
            if best["knobs"][key] != edge or math.isinf(best["final"]):
                break
            knobs = dict(best["knobs"])
            knobs[key] = clean_value(edge / factor)
            request = RunRequest.of(requests[0].method, knobs, seed, "tuning")
            results = yield [request]
            result = results[request.key]
            added.append({"run": request.name, "knobs": request.knobs, "final": result.final,
                          "diverged": result.diverged, "incumbent": False, "extension": True})
            edge = knobs[key]
    return added


def confirm_plan(method: str, knobs: dict[str, float], seeds: Iterable[int]
                 ) -> Generator[list[RunRequest], dict[str, RunResult], MethodOutcome]:
    """The final runs only (``--confirm``): one per seed of a fixed setting."""
    requests = [RunRequest.of(method, knobs, s, "final") for s in seeds]
    results = yield requests
    return MethodOutcome(method, dict(knobs), [], {r.seed: results[r.key] for r in requests}, requests)


def drive(plans: dict[str, Generator], execute: Callable[[RunRequest], RunResult], jobs: int = 1
          ) -> dict[str, MethodOutcome]:
    """Run the plans (name -> generator from ``method_study`` / ``confirm_plan``) with ``jobs``
    runs at a time. A plan's next phase starts as soon as its runs are done; queued runs go in
    the order of ``plans`` (put the longest plan first), then first come first served. A run
    requested twice is run once. ``execute`` must be thread-safe; an exception in it stops the
    study after the runs in flight end."""
    if jobs < 1:
        raise ValueError(f"jobs={jobs!r} must be >= 1")
    order = {name: i for i, name in enumerate(plans)}
    results: dict[str, RunResult] = {}
    waiting: dict[str, list[RunRequest]] = {}
    outcomes: dict[str, MethodOutcome] = {}
    queue: list[tuple[int, int, RunRequest]] = []
    queued: set[str] = set()
    in_flight: dict[Future, RunRequest] = {}
    counter = itertools.count()

    def advance(name: str, sent: dict | None) -> None:
        try:
            requests = plans[name].send(sent)
        except StopIteration as stop:
            outcomes[name] = stop.value
            waiting.pop(name, None)
            return
        waiting[name] = requests
        for r in requests:
            if r.key not in results and r.key not in queued:
                queued.add(r.key)
                queue.append((order[name], next(counter), r))

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for name in plans:
            advance(name, None)
        while True:
            progressed = True
            while progressed:  # plans whose runs are all known move on (maybe several phases)
                progressed = False
                for name, requests in list(waiting.items()):
                    if all(r.key in results for r in requests):
                        advance(name, {r.key: results[r.key] for r in requests})
                        progressed = True
            queue.sort(key=lambda item: item[:2])
            while queue and len(in_flight) < jobs:
                _, _, request = queue.pop(0)
                in_flight[pool.submit(execute, request)] = request
            if not in_flight:
                break
            done, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
            for future in done:
                request = in_flight.pop(future)
                error = future.exception()
                if error is not None:
                    queue.clear()
                    wait(list(in_flight))
                    raise error
                results[request.key] = future.result()
    if waiting:
        raise RuntimeError(f"plans left waiting: {sorted(waiting)}")
    return outcomes


class StudyState:
    """The study's progress on disk (``study_state.json``): every phase's runs and choice, written
    after each phase, and the chosen settings. Rerunning the study recomputes it from the
    finished runs, so it is a record, not an input."""

    def __init__(self, path: str, spec: StudySpec) -> None:
        self.path, self.spec = path, spec
        self.phases: dict[str, list[dict]] = {m.name: [] for m in spec.methods}
        self.chosen: dict[str, dict] = {}

    def record(self, record: PhaseRecord) -> None:
        self.phases[record.method].append(record.to_json())
        self.save()

    def save(self) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"spec": self.spec.raw, "phases": self.phases, "chosen": self.chosen}, f, indent=1, default=str)
        os.replace(tmp, self.path)
