"""A music21 worker process the build can kill: parsing a large score can take minutes, or hang.

``python -m audiorec_assets.datasets.classical.worker`` reads one JSON request per line on stdin (the keyword
arguments of :func:`~.excerpt.prepare_excerpt`) and answers one JSON line each on its stdout:
``{"ok": true, "meta": {...}}`` or ``{"ok": false, "error": "..."}``. Anything music21 prints goes to
stderr (a log file of the build), never into the answers. One process serves many scores (music21's import
takes a second or two); :class:`ExcerptWorker` kills it when an answer is late or it dies, and starts a fresh one.
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
from contextlib import suppress
from pathlib import Path

STARTUP_TIMEOUT_S = 180.0  # importing music21 on a busy machine


class WorkerTimeout(Exception):
    """The worker did not answer in time (it has been killed)."""


class WorkerDied(Exception):
    """The worker process ended without answering (a crash, or killed from outside)."""


class WorkerStartError(RuntimeError):
    """The worker process could not start (music21 missing, a broken environment): fails the build."""


class ExcerptWorker:
    """One worker process at a time; thread-confined (use one per build thread)."""

    def __init__(self, log_path: Path):
        self.log_path = Path(log_path)
        self._proc: subprocess.Popen | None = None
        self._answers: queue.Queue[str | None] = queue.Queue()
        self.started = 0  # processes started (the first one starts a fresh log)

    def request(self, payload: dict, timeout_s: float) -> dict:
        """Send one request; its answer within ``timeout_s`` seconds, else :class:`WorkerTimeout`."""
        if self._proc is None or self._proc.poll() is not None:
            self._start()
        assert self._proc is not None and self._proc.stdin is not None
        try:
            self._proc.stdin.write(json.dumps(payload) + "\n")
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise WorkerDied(self._reap()) from None
        try:
            line = self._answers.get(timeout=timeout_s)
        except queue.Empty:
            self.kill()
            raise WorkerTimeout(f"no answer after {timeout_s:g} s") from None
        if line is None:
            raise WorkerDied(self._reap())
        return json.loads(line)

    def close(self) -> None:
        """End the process: EOF on its stdin, then a kill if it lingers."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin:
                proc.stdin.close()
            proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()

    def kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            with suppress(ProcessLookupError):
                proc.kill()
            proc.wait()

    def _reap(self) -> str:
        proc, self._proc = self._proc, None
        if proc is None:
            return "the worker process is gone"
        code = proc.wait()
        return f"the worker process ended (exit status {code}; see {self.log_path})"

    def _start(self) -> None:
        self.kill()
        self._answers = queue.Queue()
        package_root = str(Path(__file__).resolve().parents[3])  # the folder holding audiorec_assets/
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([package_root, *filter(None, [env.get("PYTHONPATH")])])
        env.setdefault("OMP_NUM_THREADS", "1")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab" if self.started else "wb") as log:  # a fresh log per build
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "audiorec_assets.datasets.classical.worker"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env, text=True, encoding="utf-8",
                bufsize=1,
            )
        self.started += 1
        answers, stdout = self._answers, self._proc.stdout

        def read() -> None:  # a thread per process: its answers (None at EOF) into that process's queue
            assert stdout is not None
            for line in stdout:
                answers.put(line)
            answers.put(None)

        threading.Thread(target=read, daemon=True, name="classical-worker-reader").start()
        try:
            ready = self._answers.get(timeout=STARTUP_TIMEOUT_S)
        except queue.Empty:
            self.kill()
            raise WorkerStartError(f"the music21 worker did not start within {STARTUP_TIMEOUT_S:g} s "
                                   f"(see {self.log_path})") from None
        if ready is None or not json.loads(ready).get("ready"):
            detail = _log_tail(self.log_path)
            self._reap()
            raise WorkerStartError(f"the music21 worker failed to start: {detail} (log: {self.log_path})")


def _log_tail(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    return lines[-1][:300] if lines else "no output"


def main() -> None:
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)  # stray prints (music21 warnings) go to the log, never into the answers
    sys.stdout = sys.stderr
    try:
        import music21

        from audiorec_assets.datasets.classical.excerpt import prepare_excerpt
    except Exception as err:  # noqa: BLE001 - reported to the parent, which fails the build
        print(f"cannot import music21: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
        answers.write(json.dumps({"ready": False, "error": str(err)}) + "\n")
        return
    answers.write(json.dumps({"ready": True, "music21": music21.__version__}) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            reply = {"ok": True, "meta": prepare_excerpt(**json.loads(line))}
        except Exception as err:  # noqa: BLE001 - one score's failure is that score's skip reason
            message = " ".join(str(err).split()) or "no message"
            message = re.sub(r",? id\(\)=\d+| 0x[0-9a-f]{6,}", "", message)  # object ids: not part of the reason
            reply = {"ok": False, "error": f"{type(err).__name__}: {message}"[:400]}
        answers.write(json.dumps(reply) + "\n")


if __name__ == "__main__":
    main()
