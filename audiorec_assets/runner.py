"""The commands that run the graph or read its state: ``audiorec demo``, ``materialize`` and ``status``.

They run in-process through the study's jobs (``defs/execute.py``), on the instance of ``$DAGSTER_HOME`` when it
is set (the runs then show in ``dagster dev``), else on a throw-away one.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path

import dagster as dg
import pandas as pd

from audiorec_assets import stopping
from audiorec_assets.settings import LakePaths, load_settings

PREFIX = "[audiorec]"
EXIT_RUN_FAILED = 1
EXIT_BAD_INPUT = 2
LEADERBOARD_COLUMNS = ["encoder", "recommender", "reference", "hitrate", "hitrate_ci_low", "hitrate_ci_high", "ndcg",
                       "recall", "n_users", "n_seeds"]
SEED_COLUMNS = ["hitrate_seed_sd", "ndcg_seed_sd"]  # printed when a cell ran under several seeds


def instance() -> dg.DagsterInstance:
    """The persistent Dagster instance when ``$DAGSTER_HOME`` is set (runs then show in ``dagster dev``); a home
    folder that does not exist yet is made (Dagster itself refuses one), a relative one is taken from here."""
    if os.environ.get("DAGSTER_HOME"):
        home = Path(os.environ["DAGSTER_HOME"]).expanduser().absolute()
        home.mkdir(parents=True, exist_ok=True)
        os.environ["DAGSTER_HOME"] = str(home)
        return dg.DagsterInstance.get()
    return dg.DagsterInstance.ephemeral()


def _definitions(lake_root: Path, inst: dg.DagsterInstance) -> dg.Definitions:
    from audiorec_assets.definitions import build_definitions
    from audiorec_assets.defs.health import tidy

    dead, _ = tidy(inst, LakePaths(lake_root))  # what lake_health_sensor does under dagster dev
    for run_id in dead:
        print(f"{PREFIX} run {run_id} was still marked running but its process is gone: marked failed", flush=True)
    return build_definitions(lake_root)


def step_count(defs: dg.Definitions, planned) -> int:
    """How many steps (ops) ``planned`` executes."""
    job = defs.resolve_job_def(planned.job)
    return len(job.get_subset(asset_selection=set(planned.keys)).graph.nodes)


def failure_lines(result: dg.ExecuteInProcessResult) -> list[str]:
    """Each failed step and failed check of ``result`` in one line: the user's error, not Dagster's wrapper."""
    lines = [f"check failed: {e.asset_key.to_user_string()} {e.check_name}"
             for e in result.get_asset_check_evaluations() if not e.passed]
    for event in result.all_events:
        if event.is_step_failure:
            error = event.step_failure_data.error
            while error is not None and error.cause is not None:
                error = error.cause
            lines.append(f"{event.step_key} failed: {error.message.strip() if error else ''}")
    return lines


def run_planned(defs: dg.Definitions, inst: dg.DagsterInstance, planned, run_config: dict) -> bool:
    """One planned run with its checks; its failures printed in one line each. Raises
    :class:`~audiorec_assets.stopping.Stopped` when a stop signal came during the run."""
    from audiorec_assets.defs.execute import execute

    run_id = str(uuid.uuid4())  # known before the run exists, so a stop in Dagster's set-up still finds it
    try:
        result = execute(defs, inst, planned, run_config=run_config, run_id=run_id)
        signum = stopping.received()
        if signum is not None:  # Dagster interrupted the run and marked it failed: start no other
            raise stopping.Stopped(signum)
    except stopping.Stopped:
        _end_stopped(inst, run_id, planned.label)
        raise
    for line in failure_lines(result):
        print(f"{PREFIX}   {line}", file=sys.stderr, flush=True)
    if not result.success:
        print(f"{PREFIX} {planned.label} failed (run {result.run_id}).", file=sys.stderr, flush=True)
    return result.success


def _end_stopped(inst: dg.DagsterInstance, run_id: str, label: str) -> None:
    """After a stop signal: cancel the run if the signal came before Dagster started it; say how it ended."""
    run = inst.get_run_by_id(run_id)
    if run is not None and not run.is_finished:
        inst.report_run_canceled(run, message="audiorec was stopped by a signal before the run finished")
        run = inst.get_run_by_id(run_id)
    what = f"run {run_id}: {run.status.value}" if run is not None else "before its run was created"
    print(f"{PREFIX} {label} interrupted ({what})", file=sys.stderr, flush=True)


def prepare_classical(lake: LakePaths, seed: int, n_works: int = 300) -> None:
    """Into an empty (or classical) ``raw/``: the classical catalogue (``datasets/classical/``, cached between builds),
    then a mock listening log whose tastes follow composer and instrumentation (``datasets/mock_logs/``)."""
    from audiorec_assets.datasets.classical import (ClassicalError, ForeignRawError, RendererMissing,
                                                    build_classical_raw, default_cache_dir)
    from audiorec_assets.datasets.mock_logs import MockLogConfig, write_mock_logs

    last = [0.0]

    def progress(done: int, total: int, message: str) -> None:
        if done == total or time.monotonic() - last[0] >= 5:
            last[0] = time.monotonic()
            print(f"{PREFIX} classical: {done}/{total} works ({message})", flush=True)

    try:
        report = build_classical_raw(lake.raw, default_cache_dir(), n_works=n_works, progress=progress)
    except (ForeignRawError, RendererMissing, ClassicalError, ImportError) as err:
        raise SystemExit(f"{PREFIX} demo --dataset classical: {err}") from None
    print(f"{PREFIX} {report.summary()}", flush=True)
    if not any(lake.raw.glob("listens.*")) or (lake.raw / "listens.synthetic.json").exists():
        mock = write_mock_logs(lake.raw, MockLogConfig(seed=seed, taste_columns=("composer", "instrumentation")),
                               staging=lake.staging)
        print(f"{PREFIX} mock listening log: {mock.rows} listens by {mock.users} users, tastes over "
              f"{list(mock.taste_columns)}, {mock.cold_tracks} cold tracks (synthetic: audiorec.split_info says so)",
              flush=True)


def demo(lake_root: Path, dataset: str = "demo") -> None:
    """Write the demo data if ``raw/`` is empty (``dataset``: the synthetic demo, or the classical catalogue with a
    mock log), then bring the study up to date as Dagster's automation would (``defs/execute.py``)."""
    from audiorec_assets.datasets.demo import write_demo_if_empty
    from audiorec_assets.datasets.demo_settings import write_demo_settings
    from audiorec_assets.defs.execute import bring_up_to_date
    from audiorec_assets.defs.partitions import lake_members, sync_partitions
    from audiorec_assets.guide import print_next_steps

    lake = LakePaths(lake_root)
    inst = instance()  # before minutes of data generation: a home Dagster cannot use fails now
    lake.root.mkdir(parents=True, exist_ok=True)
    write_demo_settings(lake, dataset)
    settings = load_settings(lake.root)
    if dataset == "classical":
        prepare_classical(lake, settings.seed)
    print(f"{PREFIX} lake: {lake.root} (preset {settings.preset}; encoders {settings.encoders}; "
          f"recommenders {settings.recommenders})", flush=True)
    written = write_demo_if_empty(lake.raw, lake.staging, seed=settings.seed)  # the only place the demo is written
    if written:
        print(f"{PREFIX} {lake.raw} held no data: wrote the demo data set (seed {settings.seed}; {written.n_events} "
              f"listens, flagged synthetic), in {written.seconds:.1f} s", flush=True)
    defs = _definitions(lake.root, inst)
    wanted = lake_members(lake, settings)
    sync_partitions(inst, wanted)
    for name, why in wanted.left_out.items():
        print(f"{PREFIX} not run: encoder {name!r} cannot run here: {why}", flush=True)

    def run(planned) -> bool:
        started = time.perf_counter()
        print(f"{PREFIX} {planned.label} ...", flush=True)
        ok = run_planned(defs, inst, planned, {"loggers": {"console": {"config": {"log_level": "INFO"}}}})
        if ok:
            print(f"{PREFIX} {planned.label} done in {time.perf_counter() - started:.1f} s", flush=True)
        return ok

    runs = bring_up_to_date(defs, inst, lake.root, run)
    failed = [p.label for p, ok in runs if not ok]
    if not runs:
        print(f"{PREFIX} everything is up to date", flush=True)
    elif failed:
        print(f"{PREFIX} {len(failed)} of {len(runs)} run(s) failed: {failed}", file=sys.stderr, flush=True)
    print_leaderboard(lake)
    print_next_steps(lake)
    if failed:
        raise SystemExit(EXIT_RUN_FAILED)


def print_leaderboard(lake: LakePaths) -> None:
    """The warm and the cold leaderboard, as stored (``audiorec.leaderboard``, ``audiorec.leaderboard_cold``)."""
    from audiorec_assets.warehouse import read_table

    if not (lake.table_dir("leaderboard") / "all.parquet").exists():
        raise SystemExit("[audiorec] no leaderboard yet: see the messages above.")
    for table, title in (("leaderboard", "warm tracks: test split"),
                         ("leaderboard_cold", "cold tracks (no train plays): test_cold split")):
        if not (lake.table_dir(table) / "all.parquet").exists():
            continue
        board = read_table(lake, table)
        k = int(board["k"].iloc[0]) if len(board) else "?"
        print(f"\nLeaderboard, {title}, @{k} (audiorec.{table}; reference = no audio):")
        several_seeds = "n_seeds" in board and (pd.to_numeric(board["n_seeds"], errors="coerce") > 1).any()
        columns = [c for c in LEADERBOARD_COLUMNS + (SEED_COLUMNS if several_seeds else []) if c in board.columns]
        print(board[columns].to_string(index=False, float_format=lambda v: f"{v:.4f}"))


def materialize(lake_root: Path, encoders: list[str] | None, recommenders: list[str] | None,
                select: str | None, force: bool, dry_run: bool = False, rich: bool | None = None) -> None:
    """Bring the chosen cells up to date with the planner of ``audiorec demo`` restricted to them
    (``defs/plan.py``), with a live display (``live.py``)."""
    from audiorec_assets.defs.execute import bring_up_to_date, next_round, observe_sources
    from audiorec_assets.defs.plan import PlanError, plan
    from audiorec_assets.defs.progress_log import listening, run_config_loggers
    from audiorec_assets.live import LiveProgress

    lake = LakePaths(lake_root)
    settings = load_settings(lake.root)
    inst = instance()
    defs = _definitions(lake.root, inst)
    observe_sources(lake.root, inst)  # what the observe-inputs sensor would record: stale status is current
    try:
        chosen = plan(defs, inst, lake.root, settings, encoders, recommenders, select, force)
    except PlanError as err:
        print(f"{PREFIX} materialize: {err}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_BAD_INPUT) from None
    if dry_run:
        first = chosen.selected if chosen.selected is not None else next_round(
            defs, inst, lake.root, chosen.scope, chosen.asked)
        print(f"{PREFIX} would run {len(first)} run(s), {sum(step_count(defs, p) for p in first)} step(s)"
              + (": " + "; ".join(p.label for p in first) if first else "")
              + ("" if chosen.selected is not None or not first else
                 " (then what their results make due: the automation conditions are evaluated again after them)"),
              flush=True)
        return
    display = LiveProgress(0, rich=rich)

    def run(planned) -> bool:
        display.start_run(planned.job + (f"[{planned.partition_key}]" if planned.partition_key else ""),
                          step_count(defs, planned), 0)
        return run_planned(defs, inst, planned, run_config_loggers())

    try:
        with listening(display):
            if chosen.selected is not None:
                runs = [(planned, run(planned)) for planned in chosen.selected]
            else:
                runs = bring_up_to_date(defs, inst, lake.root, run, scope=chosen.scope, asked=chosen.asked,
                                        keep_cursor=False)
    finally:
        display.close()
    failed = [p.label for p, ok in runs if not ok]
    if not runs:
        print(f"{PREFIX} nothing to run: the chosen cells and what they stand on are up to date (--force reruns "
              f"the cells)", flush=True)
        return
    if failed:
        print(f"{PREFIX} {len(failed)} of {len(runs)} run(s) failed: {failed}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_RUN_FAILED)
    print(f"{PREFIX} done: {len(runs)} run(s) in this instance "
          f"({os.environ.get('DAGSTER_HOME') or 'a throw-away instance: set DAGSTER_HOME to keep them'})",
          flush=True)


def status_frame(lake_root: Path, observe: bool = True) -> tuple[pd.DataFrame, str]:
    """Every layer and cell with its state, and a one-line header (the lake and the instance)."""
    from audiorec_assets.defs.execute import observe_sources
    from audiorec_assets.defs.status import fill_command, study_status

    lake = LakePaths(lake_root)
    settings = load_settings(lake.root)
    inst = instance()
    defs = _definitions(lake.root, inst)
    if observe:
        observe_sources(lake.root, inst)
    status = study_status(defs, inst, lake.root, settings)
    layers = (("ingest", status.ingest), ("embeddings", status.embeddings), ("cell", status.cells),
              ("tables", [status.tables]))
    rows = [{"layer": layer, "asset": s.target.key.to_user_string(), "encoder": s.target.encoder or "",
             "recommender": s.target.recommender or "", "state": s.state, "detail": s.detail,
             "command": (fill_command([s]) or "") if layer == "cell" else ""}
            for layer, states in layers for s in states]
    where = os.environ.get("DAGSTER_HOME") or "a throw-away one (DAGSTER_HOME unset)"
    return pd.DataFrame(rows), f"lake {lake.root} · Dagster instance {where}"


def status(lake_root: Path, fmt: str = "table", observe: bool = True) -> None:
    from audiorec_assets.defs.status import FAILED, RUNNING, STALE
    from audiorec_assets.queries import render

    frame, header = status_frame(lake_root, observe)
    print(f"{PREFIX} {header}", file=sys.stdout if fmt in ("table", "markdown") else sys.stderr, flush=True)
    if fmt != "table":
        print(render(frame, fmt))
        return
    for layer in ("ingest", "embeddings"):
        part = frame[frame["layer"] == layer]
        names = part["encoder"].where(part["encoder"] != "", part["asset"])
        print(f"{layer}: " + " · ".join(f"{n} {s}" for n, s in zip(names, part["state"])))
    cells = frame[frame["layer"] == "cell"]
    grid = cells.pivot(index="encoder", columns="recommender", values="state").reindex(
        index=list(dict.fromkeys(cells["encoder"])), columns=list(dict.fromkeys(cells["recommender"]))).fillna("-")
    print(f"\ncells (encoder × recommender; '-' = no such cell):\n{grid.rename_axis(index=None, columns=None).to_string()}")
    tables = frame[frame["layer"] == "tables"].iloc[0]
    print(f"\ntables: {tables['asset']} {tables['state']}")
    notes = frame[(frame["detail"] != "") | frame["state"].isin([STALE, FAILED, RUNNING])]
    if len(notes):
        print("\nwhy:")
    for _, row in notes.iterrows():  # every layer's reason: the grid and the lines above show only the state
        name = {"cell": f"{row['encoder']} × {row['recommender']}", "embeddings": f"embeddings {row['encoder']}"
                }.get(row["layer"], row["asset"])
        print(f"  {name}: {row['state']}: {row['detail'] or 'no cause recorded'}")
    todo = cells[cells["command"] != ""]
    if len(todo):
        print("\nto fill:")
        for _, row in todo.iterrows():
            print(f"  {row['encoder']} × {row['recommender']} ({row['state']}): {row['command']}")
