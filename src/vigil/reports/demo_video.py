"""``vigil docs demo-video``: record the running system, from a fresh folder to a model deploy.

Scenes (every one from real commands and pages): simulate, train, stream replay, start the
API, its OpenAPI page, a prediction with curl, the UI scoring a transaction, the history and
analytics pages, a second model trained and hot-swapped in through ``POST /admin/reload``,
then the analysts' case queue (:mod:`vigil.reports.demo_cases`): a day's cases, verdicts
with one key and one click, and the card's next payment scored before and after the verdict.
Embedded defaults only (SQLite, in-process state, no broker), so it runs anywhere. The models
take the verdict features, trained on a simulated investigator's reviews (``vigil train
--simulated-verdicts``: simulated data has no analysts); the replay and the API start from
the simulated past (``--warm-from``), not from an empty state.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from vigil.child_env import child_environment
from vigil.data.io import read_transactions
from vigil.data.schema import TX_DATETIME
from vigil.reports.browser import chromium, free_port, server
from vigil.reports.demo_cases import case_scenes
from vigil.reports.video import SIZE, Recorder, assemble

LABEL_DELAY = 7  # days: the case scenes look for a terminal compromised within it
WORLD = {
    "data.n_customers": 300,
    "data.n_terminals": 600,
    "data.n_days": 60,
    "train.train_start": "2018-05-05",
    "train.train_days": 14,
    "train.history_days": 0,
    "train.epochs": 6,
    "features.verdicts": True,
    "features.label_delay_days": LABEL_DELAY,
    "cases.review_budget": 10,  # 300 cards: the handbook's 100 a day of 5,000 would be a third
}
API_KEY = "demo-key"
EXAMPLE_DAY = {"month": "05", "day": "30"}
SHOWN_SETTINGS = "--set data.n_customers=300 ... (demo settings)"
EXAMPLE = {
    "transaction_id": 990000001,
    "tx_datetime": "2018-05-30T21:14:05",
    "customer_id": 42,
    "terminal_id": 311,
    "tx_amount": 412.50,
}


@dataclass(frozen=True)
class DemoPaths:
    """Where the demo's data, runs, database and model live."""

    root: Path

    def overrides(self) -> list[str]:
        """``--set`` arguments shared by every command of the demo."""
        values = {
            **WORLD,
            "data.raw_dir": str(self.root / "raw"),
            "features.output_path": str(self.root / "features.parquet"),
            "train.runs_dir": str(self.root / "runs"),
            "tracking.mlflow_uri": f"file:{self.root / 'mlruns'}",
            "inference.model_path": str(self.root / "model" / "model.onnx"),
            "storage.database_url": f"sqlite:///{self.root / 'vigil.db'}",
            "serving.api_key": API_KEY,
        }
        return [part for k, v in values.items() for part in ("--set", f"{k}={v}")]


def _vigil(*args: str) -> list[str]:
    return [sys.executable, "-m", "vigil", *args]


def _last_week(paths: DemoPaths) -> Path:
    frame = read_transactions(paths.root / "raw")
    recent = frame[frame[TX_DATETIME] >= frame[TX_DATETIME].max() - pd.Timedelta(days=7)]
    target = paths.root / "last_week.parquet"
    recent.to_parquet(target, index=False)
    return target


def _newest_run(paths: DemoPaths) -> Path:
    return max((paths.root / "runs").iterdir(), key=lambda p: p.stat().st_mtime)


def _curl(url: str, body: Mapping[str, object] | None = None, key: bool = False) -> list[str]:
    command = ["curl", "-s", url]
    if key:
        command += ["-H", f"X-API-Key: {API_KEY}"]
    if body is not None:
        command += ["-H", "content-type: application/json", "-d", json.dumps(body)]
    return command


def _pretty(output: str) -> str:
    try:
        return json.dumps(json.loads(output), indent=2)
    except json.JSONDecodeError:
        return output


def _offline_scenes(rec: Recorder, paths: DemoPaths, env: dict[str, str]) -> None:
    sets = paths.overrides()
    rec.run(_vigil("generate", *sets, "--no-progress"), f"vigil generate {SHOWN_SETTINGS}",
            "1. Simulate payments: 300 customers, 600 terminals, 60 days, 3 fraud scenarios",
            env=env)  # fmt: skip
    raw = str(paths.root / "raw")
    rec.run(_vigil("train", *sets, "--data", raw, "--simulated-verdicts", "--promote"),
            f"vigil train {SHOWN_SETTINGS} --simulated-verdicts --promote",
            "2. Train the MLP (verdict features from a simulated investigator), export ONNX, log "
            "to MLflow", seconds=7, env=env)  # fmt: skip
    last_week = _last_week(paths)
    rec.run(_vigil("replay", *sets, "--input", str(last_week), "--limit", "4000",
                   "--label-after", "0", "--warm-from", raw),
            "vigil replay --input last_week.parquet --limit 4000 --warm-from raw",
            "3. Stream replay: online features, scoring and storage, labels fed back",
            env=env)  # fmt: skip


def _api_scenes(rec: Recorder, paths: DemoPaths, api: str, env: dict[str, str]) -> None:
    log = (paths.root / "serve.log").read_text()
    rec.terminal(f"vigil serve --port {api.rsplit(':', 1)[1]} --warm-from raw", log,
                 "4. Start the API: FastAPI + ONNX Runtime, no torch in serving")  # fmt: skip
    # The OpenAPI document that /docs renders, as the routes it lists.
    spec = json.loads(rec.run(_curl(f"{api}/openapi.json"), "curl /openapi.json", "5",
                              env=env, show=False))  # fmt: skip
    routes = [
        f"{verb.upper():6} {path:28} {op.get('summary', '')}"
        for path, ops in spec["paths"].items()
        for verb, op in ops.items()
    ]
    rec.terminal("curl -s /openapi.json | jq -r '.paths | ...'", "\n".join(routes),
                 "5. OpenAPI (/docs, /openapi.json): every route typed and documented",
                 seconds=7)  # fmt: skip
    out = rec.run(_curl(f"{api}/predict", EXAMPLE), "curl -X POST /predict", "6",
                  env=env, show=False)  # fmt: skip
    rec.terminal(f"curl -s -X POST /predict -d '{json.dumps(EXAMPLE)}' | jq", _pretty(out),
                 "6. One prediction: score, decision, reason codes, model version",
                 seconds=8)  # fmt: skip


def _scroll_to(text: str) -> Callable[[Any], None]:
    def action(page: Any) -> None:
        page.get_by_text(text).first.scroll_into_view_if_needed()
        page.wait_for_timeout(1000)

    return action


def _ui_scenes(rec: Recorder, ui: str) -> None:
    def score(page: Any) -> None:
        page.get_by_label("Amount").fill("412.5")
        # A day the replay covered, so the analytics show one period.
        for part, value in EXAMPLE_DAY.items():
            page.get_by_role("spinbutton", name=f"{part}, Date").click()
            page.keyboard.type(value)
        page.get_by_role("button", name="Score").click()
        page.wait_for_timeout(4000)
        _scroll_to("Reason codes")(page)

    rec.browser(f"{ui}/?page=score", "7. The UI scores a transaction through the API",
                seconds=7, action=score, wait_ms=6000)  # fmt: skip
    rec.browser(f"{ui}/?page=history", "8. History: every stored decision",
                seconds=5, wait_ms=6000)  # fmt: skip
    rec.browser(f"{ui}/?page=history", "8. History: a decision and its reason codes",
                seconds=6, wait_ms=6000, action=_scroll_to("Why was it decided so?"))  # fmt: skip
    rec.browser(f"{ui}/?page=analytics",
                "9. Analytics: filters; flag rate, precision, recall, prevented and missed loss",
                seconds=7, wait_ms=7000)  # fmt: skip
    charts = _scroll_to("Prevented and missed loss")
    rec.browser(f"{ui}/?page=analytics", "9. Analytics: loss and the review queue, per day",
                seconds=7, wait_ms=7000, action=charts)  # fmt: skip


def _deploy_scenes(rec: Recorder, paths: DemoPaths, api: str, env: dict[str, str]) -> None:
    sets = paths.overrides()
    rec.run(_vigil("train", *sets, "--data", str(paths.root / "raw"), "--simulated-verdicts",
                   "--set", "model.kind=lightgbm", "--set", "train.experiment_name=lightgbm"),
            f"vigil train {SHOWN_SETTINGS} --simulated-verdicts --set model.kind=lightgbm",
            "10. Train a challenger (LightGBM) on the same data", env=env)  # fmt: skip
    body = {"model_path": str(_newest_run(paths) / "model.onnx")}
    out = rec.run(_curl(f"{api}/admin/reload", body, key=True), "curl /admin/reload", "11",
                  env=env, show=False)  # fmt: skip
    rec.terminal("curl -s -X POST /admin/reload -H 'X-API-Key: ...' -d '{\"model_path\": ...}'",
                 _pretty(out), "11. Deploy: hot swap, no restart, no failed request",
                 seconds=7)  # fmt: skip
    meta = rec.run(_curl(f"{api}/metadata"), "curl /metadata", "12", env=env, show=False)
    rec.terminal("curl -s /metadata | jq", _pretty(meta)[:1800],
                 "12. The API now serves the new model (version, kind, metrics)",
                 seconds=7)  # fmt: skip


def record_demo(workdir: Path, mp4: Path, gif: Path) -> Path:
    """Record every scene into ``workdir`` and write the MP4 and GIF."""
    shutil.rmtree(workdir, ignore_errors=True)
    paths = DemoPaths(workdir.resolve())
    frames_dir = paths.root / "frames"
    frames_dir.mkdir(parents=True)
    # configuration only through the --set flags: no VIGIL_* of this shell reaches a scene
    env = child_environment(None, os.environ, NO_COLOR="1", TERM="dumb", COLUMNS="110")
    with chromium(SIZE) as page:
        rec = Recorder(page, frames_dir)
        _offline_scenes(rec, paths, env)
        api_port, ui_port = free_port(), free_port()
        api, ui = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{ui_port}"
        sets = paths.overrides()
        serve = _vigil("serve", *sets, "--port", str(api_port), "--warm-from",
                       str(paths.root / "raw"))  # fmt: skip
        with server(serve, f"{api}/health", paths.root / "serve.log", env):
            _api_scenes(rec, paths, api, env)
            ui_command = _vigil("ui", *sets, "--api-url", api, "--port", str(ui_port))
            with server(ui_command, f"{ui}/_stcore/health", paths.root / "ui.log", env):
                _ui_scenes(rec, ui)
                _deploy_scenes(rec, paths, api, env)
                truth = read_transactions(paths.root / "raw")
                newest = max(truth[TX_DATETIME].max(), pd.Timestamp(str(EXAMPLE["tx_datetime"])))
                case_scenes(rec, api, ui, API_KEY, truth, newest.to_pydatetime(), LABEL_DELAY)
    return assemble(rec.frames, mp4, gif)
