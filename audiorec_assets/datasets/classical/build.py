"""Build the classical catalogue into a lake's ``raw/`` folder: :func:`build_classical_raw`.

Per selected work: the excerpt as MIDI (a killable music21 worker, under ``parse_timeout_s``), then the clip
(FluidSynth, under ``render_timeout_s``), both cached (:mod:`.cache`). A work that fails or runs out of time is
skipped with its reason; the others are published into ``raw/`` together at the end (:mod:`.publish`).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from audiorec_assets.datasets.classical.cache import cached_selection, clip_path, excerpt_paths, read_json, write_text
from audiorec_assets.datasets.classical.publish import Outcome, SkippedWork, check_collisions, owned_by_builder, publish
from audiorec_assets.datasets.classical.render import (SAMPLE_RATE, Renderer, RenderError, RenderTimeout, find_renderer,
                                                       render_clip)
from audiorec_assets.datasets.classical.worker import ExcerptWorker, WorkerDied, WorkerStartError, WorkerTimeout
from audiorec_assets.datasets.classical.works import ClassicalError, WorkSpec

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class ClassicalReport:
    """What :func:`build_classical_raw` did."""

    raw_dir: Path
    n_selected: int
    tracks: tuple[str, ...]  # track ids published, in selection order
    skipped: tuple[SkippedWork, ...]
    seconds: float
    parsed: int = 0  # excerpts made by a worker in this build (the rest came from the cache)
    rendered: int = 0  # clips rendered in this build
    cached: int = 0  # published tracks whose excerpt and clip both came from the cache
    removed: tuple[str, ...] = ()  # files of an earlier build that this one no longer has

    def summary(self) -> str:
        """A few lines for people: counts, time, and each skipped work with its reason."""
        lines = [f"classical catalogue: {len(self.tracks)} of {self.n_selected} works in {self.raw_dir} "
                 f"({self.seconds:.0f} s; {self.parsed} parsed, {self.rendered} rendered, {self.cached} from cache)"]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)}:")
            lines += [f"  {s.track_id} ({s.corpus_path}): {s.stage}: {s.reason}" for s in self.skipped]
        return "\n".join(lines)


def build_classical_raw(raw_dir: Path, cache_dir: Path, *, n_works: int = 300, excerpt_s: float = 30.0,
                        jobs: int = 2, parse_timeout_s: float = 120.0, render_timeout_s: float = 60.0,
                        progress: Progress | None = None, works: list[WorkSpec] | None = None,
                        max_per_composer: int = 30, key_timeout_s: float = 15.0,
                        fluidsynth: str | Path | None = None, soundfont: str | Path | None = None,
                        sample_rate: int = SAMPLE_RATE) -> ClassicalReport:
    """Render ~``n_works`` works of the music21 corpus into ``raw_dir`` (see :mod:`.publish`); return the report.

    ``works``: render these instead of the corpus selection (e.g. :func:`~.works.file_work`). ``jobs``: works in
    flight at once (one music21 worker process each). ``parse_timeout_s`` (parse, cut, write the excerpt; the
    worker is killed after it) and ``render_timeout_s`` are per work. ``progress(done, total, message)`` is called
    after each work (from the build's threads, one call at a time). Raises :class:`ClassicalError` (one line) when
    FluidSynth, the soundfont or music21 is missing and :class:`ForeignRawError` when ``raw_dir`` holds another
    catalogue; a work that fails is skipped and listed in the report. When no work renders, nothing is written."""
    started = time.perf_counter()
    raw_dir, cache_dir = Path(raw_dir), Path(cache_dir)
    if excerpt_s <= 0 or jobs < 1 or parse_timeout_s <= 0 or render_timeout_s <= 0:
        raise ValueError("excerpt_s, jobs, parse_timeout_s and render_timeout_s must be positive")
    renderer = find_renderer(fluidsynth, soundfont, sample_rate)
    music21_version = _music21_version()
    previous = owned_by_builder(raw_dir)  # refuse a foreign raw/ before minutes of work
    specs = (list(works) if works is not None
             else cached_selection(cache_dir, n_works, max_per_composer, music21_version))
    duplicated = [t for t, n in Counter(s.track_id for s in specs).items() if n > 1]
    if duplicated:
        raise ValueError(f"track id {duplicated[0]!r} appears more than once among the works")
    if previous is not None:
        check_collisions(raw_dir, [s.track_id for s in specs], set(previous.get("files", [])))
    settings = {"n_works": n_works if works is None else len(specs), "excerpt_s": excerpt_s,
                "sample_rate": sample_rate, "max_per_composer": max_per_composer, "music21": music21_version,
                "renderer": renderer.identity(), "parse_timeout_s": parse_timeout_s,
                "render_timeout_s": render_timeout_s, "key_timeout_s": key_timeout_s}
    context = _Context(cache_dir, renderer, excerpt_s, parse_timeout_s, render_timeout_s,
                       min(key_timeout_s, parse_timeout_s / 2), music21_version)
    outcomes = _run(context, specs, jobs, progress)
    kept = [o for o in outcomes if o.skipped is None]
    skipped = [o.skipped for o in outcomes if o.skipped]
    # nothing rendered (every work skipped): raw/ stays as it was
    removed = publish(raw_dir, kept, skipped, settings, music21_version) if kept else []
    return ClassicalReport(
        raw_dir=raw_dir, n_selected=len(specs), tracks=tuple(o.spec.track_id for o in kept),
        skipped=tuple(skipped), seconds=round(time.perf_counter() - started, 2),
        parsed=sum(o.parsed for o in outcomes), rendered=sum(o.rendered for o in outcomes),
        cached=sum(1 for o in kept if not o.parsed and not o.rendered), removed=tuple(removed),
    )


def _music21_version() -> str:
    try:
        return metadata.version("music21")
    except metadata.PackageNotFoundError:
        raise ClassicalError("music21 is not installed: the classical catalogue reads the music21 corpus; "
                             "pip install 'audiorec[classical]'.") from None


@dataclass
class _Context:
    cache_dir: Path
    renderer: Renderer
    excerpt_s: float
    parse_timeout_s: float
    render_timeout_s: float
    key_timeout_s: float
    music21_version: str

    def __post_init__(self) -> None:
        self._local = threading.local()
        self._workers: list[ExcerptWorker] = []
        self._lock = threading.Lock()

    def worker(self) -> ExcerptWorker:
        """This thread's worker (started on its first request, so a fully cached build starts none)."""
        worker = getattr(self._local, "worker", None)
        if worker is None:
            with self._lock:
                worker = ExcerptWorker(self.cache_dir / "logs" / f"worker-{len(self._workers) + 1}.log")
                self._workers.append(worker)
            self._local.worker = worker
        return worker

    def close(self) -> None:
        for worker in self._workers:
            worker.close()

    def kill(self) -> None:
        """Kill every worker process (from any thread: a thread waiting on one gets :class:`WorkerDied`)."""
        for worker in list(self._workers):
            worker.kill()


def _run(context: _Context, specs: list[WorkSpec], jobs: int, progress: Progress | None) -> list[Outcome]:
    done = 0
    lock = threading.Lock()
    stopping = threading.Event()

    def one(spec: WorkSpec) -> Outcome:
        nonlocal done
        if stopping.is_set():
            return _skip(Outcome(spec), "parse", "the build stopped")
        outcome = _process(context, spec)
        with lock:
            done += 1
            if progress is not None:
                state = (f"skipped ({outcome.skipped.stage}: {outcome.skipped.reason})" if outcome.skipped
                         else "rendered" if outcome.rendered else "cached")
                progress(done, len(specs), f"{spec.track_id}: {state}")
        return outcome

    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="classical")
    try:
        futures = [pool.submit(one, spec) for spec in specs]
        return [future.result() for future in futures]
    except BaseException:  # Ctrl-C, or a failure that fails the build: stop the other threads now
        stopping.set()
        pool.shutdown(wait=False, cancel_futures=True)
        context.kill()
        raise
    finally:
        pool.shutdown(wait=True)
        context.close()


def _process(context: _Context, spec: WorkSpec) -> Outcome:
    outcome = Outcome(spec)
    midi_path, meta_path = excerpt_paths(context.cache_dir, spec, context.excerpt_s, context.music21_version)
    meta = read_json(meta_path)
    if meta is not None and "error" not in meta and not midi_path.exists():
        meta = None
    if meta is None:
        payload = {"spec": spec.to_json(), "excerpt_s": context.excerpt_s, "midi_path": str(midi_path),
                   "key_timeout_s": context.key_timeout_s}
        try:
            answer = context.worker().request(payload, context.parse_timeout_s)
        except WorkerTimeout:
            return _skip(outcome, "parse", f"timed out after {context.parse_timeout_s:g} s (parse, cut, MIDI)")
        except WorkerDied as err:
            return _skip(outcome, "parse", f"the music21 worker died: {err}")
        except WorkerStartError as err:
            raise ClassicalError(str(err)) from None
        outcome.parsed = True
        meta = answer["meta"] if answer.get("ok") else {"error": answer.get("error", "unknown error")}
        write_text(meta_path, json.dumps(meta, ensure_ascii=False))  # a failed score is remembered too
    if "error" in meta:
        return _skip(outcome, "parse", meta["error"])
    outcome.meta = meta
    clip = clip_path(context.cache_dir, spec, midi_path, context.excerpt_s, context.renderer)
    if not clip.exists():
        try:
            render_clip(context.renderer, midi_path, clip, context.excerpt_s, context.render_timeout_s,
                        context.cache_dir / "tmp")
        except (RenderTimeout, RenderError) as err:
            return _skip(outcome, "render", str(err))
        outcome.rendered = True
    outcome.clip = clip
    return outcome


def _skip(outcome: Outcome, stage: str, reason: str) -> Outcome:
    outcome.skipped = SkippedWork(outcome.spec.track_id, outcome.spec.title, outcome.spec.provenance, stage, reason)
    return outcome
