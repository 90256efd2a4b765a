"""The Dagster UI in a real browser (Debian's Chromium driven by Playwright): a person fills the one missing
encoder × recommender cell by clicking, and the leaderboard the UI shows then holds it, in the asset's page without
a click, its values rounded to 3 decimals.

A small own-catalogue lake (encoders mfcc and random, recommender knn) and an instance with the repo's
``dagster.yaml`` are prepared in-process: ingest, both encoders' embeddings, the cell ``random|knn`` and the
leaderboard. ``dagster dev`` is then started as README says, with automation off (``AUDIOREC_AUTOMATION=off``),
so the cell ``mfcc|knn`` is still missing when the browser arrives and nothing but the clicks below runs.

The cell is launched from the lineage graph of its four assets (``models``, ``recommendations``, ``metrics``,
``user_metrics``: the group ``recommenders``) for the one partition: the multi-asset can be subset, so
materializing ``metrics`` alone would run only ``metrics``, which reads the cell's recommendations. The
leaderboard's multi-asset cannot be subset: the UI asks to confirm its sibling ``leaderboard_plot``.

Screenshots of every step go to ``$AUDIOREC_UI_ARTIFACTS`` (default ``<repo>/test-artifacts/ui/``), with the
``dagster dev`` log. Run with ``.venv/bin/python -m pytest -m ui`` (about two and a half minutes on 2 cores).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS_ENV = "AUDIOREC_UI_ARTIFACTS"
SETTINGS = "encoders: [mfcc, random]\nrecommenders: [knn]\nks: [5, 10]\ntop_n: 20\n"
BUILT, MISSING = "random|knn", "mfcc|knn"  # the cell prepared in-process, the cell launched in the browser
SERVER_START_S, RUN_S = 240, 300  # generous: 2 slow shared cores
SCREENSHOT_NAME = re.compile(r"^\d\d-[\w-]+\.png$")

pytestmark = pytest.mark.ui


@pytest.fixture
def artifacts() -> Path:
    """The screenshot folder CI keeps; screenshots of an earlier run are removed first."""
    folder = Path(os.environ.get(ARTIFACTS_ENV) or REPO / "test-artifacts" / "ui")
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        if SCREENSHOT_NAME.match(old.name):
            old.unlink()
    return folder


@pytest.fixture
def study(lake, dagster_home, monkeypatch):
    """The lake with every cell but ``MISSING`` materialized, in an instance with the repo's ``dagster.yaml``."""
    import dagster as dg

    from audiorec_assets.definitions import build_definitions
    from audiorec_assets.defs.evaluation import LEADERBOARD
    from audiorec_assets.defs.execute import PlannedRun, execute
    from audiorec_assets.defs.jobs import job_of_keys
    from audiorec_assets.defs.partitions import lake_members, sync_partitions
    from audiorec_assets.settings import LakePaths, load_settings
    from audiorec_assets_tests.helpers import write_own
    from audiorec_assets_tests.test_pipeline import small_log

    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent: install Debian's chromium package (no browser is downloaded)")
    write_own(lake / "raw", small_log(n_users=24, n_tracks=16))
    (lake / "experiment.yaml").write_text(SETTINGS)
    shutil.copy(REPO / "dagster.yaml", dagster_home / "dagster.yaml")
    monkeypatch.chdir(dagster_home)  # dagster.yaml's storage paths are relative to where Dagster runs
    defs = build_definitions(lake)
    keys_of: dict[str, list] = {}
    for key, job in job_of_keys(defs).items():
        keys_of.setdefault(job, []).append(key)
    with dg.DagsterInstance.get() as instance:
        sync_partitions(instance, lake_members(LakePaths(lake), load_settings(lake)))
        leaderboard = (LEADERBOARD, dg.AssetKey(["audiorec", "leaderboard_plot"]))
        for planned in [PlannedRun("ingest_job", tuple(keys_of["ingest_job"]), None),
                        PlannedRun("encoding_job", tuple(keys_of["encoding_job"]), "mfcc"),
                        PlannedRun("embeddings_job", tuple(keys_of["embeddings_job"]), "mfcc"),
                        PlannedRun("embeddings_job", tuple(keys_of["embeddings_job"]), "random"),
                        PlannedRun("cells_job", tuple(keys_of["cells_job"]), BUILT),
                        PlannedRun("tables_job", leaderboard, None)]:
            assert execute(defs, instance, planned).success, planned.label
    return lake, dagster_home


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        answer = json.load(response)
    assert not answer.get("errors"), answer["errors"]
    return answer["data"]


METRICS_NODE = '{ assetNodes(assetKeys: [{path: ["audiorec", "metrics"]}]) { id } }'
RUN_QUERY = """query($runId: ID!) { runOrError(runId: $runId) { __typename
  ... on Run { status tags { key value } assetSelection { path } } } }"""


@pytest.fixture
def dagster_dev(study, artifacts) -> Iterator[int]:
    """``dagster dev`` on a free port of 127.0.0.1, automation off, once its code location answers; the whole
    process group is killed afterwards, also on failure."""
    _, home = study
    port = free_port()
    log_path = artifacts / "dagster-dev.log"
    env = {**os.environ, "AUDIOREC_AUTOMATION": "off"}
    with open(log_path, "w") as log:
        dev = subprocess.Popen([str(Path(sys.executable).parent / "dagster"), "dev", "-w", str(REPO / "workspace.yaml"),
                                "-h", "127.0.0.1", "-p", str(port)], cwd=home, env=env, start_new_session=True,
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        started = time.time()
        while True:
            assert dev.poll() is None, f"dagster dev exited with {dev.returncode}: see {log_path}"
            try:
                if graphql(port, METRICS_NODE)["assetNodes"]:
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError, AssertionError):
                pass
            assert time.time() - started < SERVER_START_S, f"dagster dev did not serve audiorec: see {log_path}"
            time.sleep(2)
        yield port
    finally:
        stop(dev)


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the process group (webserver, daemon, code servers, run workers), SIGKILL to what is left."""
    for sig, wait_s in ((signal.SIGTERM, 45), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait_s)
        except subprocess.TimeoutExpired:
            continue
        if sig == signal.SIGTERM:  # the leader is gone; children that outlive it still die
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return


def wait_for_run(port: int, run_id: str) -> dict:
    """Poll the webserver until run ``run_id`` ends; it must succeed."""
    started = time.time()
    while time.time() - started < RUN_S:
        run = graphql(port, RUN_QUERY, {"runId": run_id})["runOrError"]
        if run.get("status") in ("SUCCESS", "FAILURE", "CANCELED"):
            assert run["status"] == "SUCCESS", f"run {run_id} ended {run['status']}: see its page in the UI"
            return run
        time.sleep(3)
    raise AssertionError(f"run {run_id} did not end in {RUN_S} s")


class Steps:
    """Numbered screenshots of one browser page: ``01-asset-graph.png``, ..."""

    def __init__(self, page, folder: Path):
        self.page, self.folder, self.count = page, folder, 0

    def shot(self, name: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{name}.png"
        self.page.screenshot(path=str(path))
        return path


@pytest.fixture
def browser_page(dagster_dev):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            # nothing leaves this machine: only the webserver answers (the first-visit dialog embeds remote pages)
            page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(
                f"http://127.0.0.1:{dagster_dev}/") else route.abort())
            page.set_default_timeout(60_000)
            yield page
        finally:
            browser.close()


FIRST_VISIT = "Join the Dagster community"  # Dagster's dialog on a first visit to a local webserver


def skip_first_visit(page, steps: Steps) -> None:
    """Skip Dagster's first-visit dialog if it shows (a second after the first page loads): screenshot, Skip.
    Should it show again later, Playwright skips it before the next action."""
    dialog = page.get_by_role("dialog").filter(has_text=FIRST_VISIT)
    try:
        dialog.wait_for(timeout=8_000)
    except Exception:  # playwright's TimeoutError: not shown (dismissed before on this instance)
        pass
    else:
        steps.shot("first-visit-dialog")
        dialog.get_by_role("button", name="Skip").click()
        dialog.wait_for(state="hidden")
    page.add_locator_handler(dialog, lambda shown: shown.get_by_role("button", name="Skip").click())


def launched_run(page, steps: Steps, name: str, port: int) -> dict:
    """After a launch: the toast "Launched run <id>", its View button, the run page until it shows success;
    the run as the webserver reports it."""
    from playwright.sync_api import expect

    toast = page.get_by_text(re.compile(r"Launched run [0-9a-f]{8}"))
    toast.wait_for(timeout=60_000)
    view = page.get_by_role("link", name="View", exact=True)
    href = view.get_attribute("href")  # /runs/<run id>
    steps.shot(f"{name}-launched")
    try:
        view.click(timeout=5_000)
    except Exception:  # playwright's TimeoutError: the toast went away while the screenshot was taken
        page.goto(href if href.startswith("http") else f"http://127.0.0.1:{port}{href}")
    run_id = re.fullmatch(r".*/runs/([0-9a-f-]{36})", href).group(1)
    page.wait_for_url(re.compile(rf"/runs/{run_id}"))
    run = wait_for_run(port, run_id)
    # what the run page shows by itself: the status tag and, in the event log, the run's last events
    expect(page.get_by_text("Success", exact=True).first).to_be_visible(timeout=60_000)
    expect(page.get_by_text(re.compile(r'^Finished execution of run for "'))).to_be_visible(timeout=60_000)
    steps.shot(f"{name}-run-succeeded")
    return run


def test_launch_the_missing_cell_and_see_it_on_the_leaderboard(browser_page, dagster_dev, artifacts):
    from playwright.sync_api import expect

    page, port = browser_page, dagster_dev
    base = f"http://127.0.0.1:{port}"
    steps = Steps(page, artifacts)
    try:
        # 1. the asset graph, first visit: Dagster's community dialog, skipped
        page.goto(f"{base}/asset-groups")
        expect(page.get_by_text("Global asset lineage")).to_be_visible()
        skip_first_visit(page, steps)
        expect(page.get_by_text("recommenders", exact=True).first).to_be_visible()
        steps.shot("asset-graph")

        # 2. metrics, partitions view: one cell materialized, one missing
        page.goto(f"{base}/assets/audiorec/metrics?view=partitions")
        expect(page.get_by_text("Materialized (1)")).to_be_visible()
        expect(page.get_by_text("Missing (1)")).to_be_visible()
        steps.shot("metrics-partitions-one-missing")

        # 3. the cell's four assets in the lineage graph (they can be subset: metrics alone would not train)
        page.goto(f"{base}/asset-groups")
        editor = page.locator(".CodeMirror", has=page.locator(".CodeMirror-placeholder",
                                                                has_text="Search and filter assets"))
        editor.click()
        page.keyboard.type('group:"recommenders"')
        page.keyboard.press("Enter")
        for name in ("models", "recommendations", "metrics", "user_metrics"):
            expect(page.get_by_text(name, exact=True).first).to_be_visible()
        steps.shot("cell-assets")

        # 4. Materialize all → the one partition encoder × recommender → Launch 1 run
        page.get_by_role("button").filter(has_text=re.compile(r"^Materialize all")).click()
        launch = page.get_by_role("dialog").filter(has_text="Launch runs to materialize 4 assets")
        expect(launch).to_be_visible()
        for member in MISSING.split("|"):  # the encoder's selector first, then the recommender's
            launch.get_by_text("Select a partition or create one").first.click()
            menu = page.get_by_role("menu").filter(has=page.get_by_placeholder("Filter partitions"))
            menu.get_by_role("menuitem", name=re.compile(rf"^{re.escape(member)}( |$)")).click()
            launch.get_by_text("Launch runs to materialize").click()  # closes the menu, not the dialog
        expect(launch.get_by_text("1 partition", exact=True)).to_be_visible()
        steps.shot("cell-launch-dialog")
        launch.get_by_role("button", name="Launch 1 run").click()
        cell_run = launched_run(page, steps, "cell", port)
        tags = {t["key"]: t["value"] for t in cell_run["tags"]}
        assert tags.get("dagster/partition") == MISSING, tags
        assert {"/".join(k["path"]) for k in cell_run["assetSelection"]} == {
            "audiorec/models", "audiorec/recommendations", "audiorec/metrics", "audiorec/user_metrics"}

        # 5. metrics, partitions view again: both cells materialized
        page.goto(f"{base}/assets/audiorec/metrics?view=partitions")
        expect(page.get_by_text("Materialized (2)")).to_be_visible()
        expect(page.get_by_text("Missing (0)")).to_be_visible()
        steps.shot("metrics-partitions-all-filled")

        # 6. the leaderboard: Materialize; the UI adds its plot (the multi-asset cannot be subset) and, as no
        # reference model is configured, warns that reference_metrics was never materialized
        page.goto(f"{base}/assets/audiorec/leaderboard")
        page.get_by_role("button").filter(has_text=re.compile(r"^Materialize$")).click()
        sibling = page.get_by_role("dialog").filter(has_text="Additional assets will be materialized")
        expect(sibling.get_by_text("audiorec / leaderboard_plot")).to_be_visible()
        steps.shot("leaderboard-with-plot-sibling")
        sibling.get_by_role("button", name="Confirm").click()
        expect(sibling).to_be_hidden()
        upstream = page.get_by_role("dialog").filter(has_text="Are you sure?")
        expect(page.get_by_text(re.compile(r"Launched run [0-9a-f]{8}")).or_(upstream)).to_be_visible()
        if upstream.is_visible():
            steps.shot("leaderboard-upstream-warning")
            upstream.get_by_role("button", name="Confirm").click()
            expect(upstream).to_be_hidden()
        launched_run(page, steps, "leaderboard", port)

        # 7. the leaderboard's latest materialization, as the UI shows it without a click (no "[Show Markdown]"
        # dialog is opened): both cells, the new one included, their metrics rounded to 3 decimals
        page.goto(f"{base}/assets/audiorec/leaderboard")
        table = page.get_by_role("row").filter(has=page.get_by_role("cell", name="table", exact=True))
        expect(page.get_by_role("dialog")).to_have_count(0)
        for encoder in ("mfcc", "random"):
            board_row = (table.get_by_role("row").filter(has=page.get_by_role("cell", name=encoder, exact=True))
                         .filter(has=page.get_by_role("cell", name="knn", exact=True)))
            expect(board_row).to_be_visible(timeout=60_000)
            numbers = [text.strip() for text in board_row.get_by_role("cell").all_inner_texts()
                       if re.fullmatch(r"\s*-?\d+\.\d+\s*", text)]
            assert numbers, f"no metric values in the leaderboard's {encoder}|knn row"
            assert all(len(n.split(".")[1]) <= 3 for n in numbers), f"{encoder}|knn not rounded: {numbers}"
            ci = board_row.get_by_role("cell", name=re.compile(r"^\d\.\d{3}–\d\.\d{3}$"))
            expect(ci).to_be_visible()  # HitRate's 95 % CI, e.g. 0.250–0.512
        table.scroll_into_view_if_needed()
        steps.shot("leaderboard-with-new-cell")
    except Exception:
        with contextlib.suppress(Exception):  # the page as it was when the test failed, for CI
            steps.shot("failure")
        raise
