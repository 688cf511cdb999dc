"""The newcomer's path: a fresh clone, `make demo`, then every command the README lists.

Clones this repository into a temporary folder (the handbook folder stays reachable through
``VIGIL_HANDBOOK_DIR``), runs ``make demo`` with the already installed environment
(``SETUP=``: no reinstall), then each command of the README's components table and of its
dataset-version section, exactly as written there, and checks that each exits 0 and
produces what the README says. Commands that need a service (Redis, RabbitMQ) use the test
services and skip locally when they are down (fail in CI, like the integration tests).
``docker compose up`` needs a Docker engine: the compose services' commands are run natively
by tests/unit/test_deploy_static.py instead.

The first tests (not slow: no clone) read the README and the other documents of ``DOCS``
statically: every ``vigil`` command they show names a command and options the CLI has, every
``python -m vigil.…`` module exists, every ``make`` target exists, every benchmark flag is one
its script declares, every linked or named file of the repository exists.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import typer
import yaml

from conftest import AMQP_URL, HANDBOOK_DIR, REDIS_URL, require_service
from vigil.cli import app
from vigil.cli.serve_commands import check_api_key
from vigil.config import load_settings

pytestmark = pytest.mark.timeout(2400)

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
BIN = Path(sys.executable).parent
DOCS = [
    "README.md",
    "docs/MODEL_CARD.md",
    "docs/DATASET_CARD.md",
    "docs/benchmarks.md",
    "docs/lifecycle.md",
    "docs/scaling.md",
    "docs/providers.md",
    "docs/architecture.md",
    "docs/STRESS_REPORT.md",
]
REPO_PATH = re.compile(
    r"^(?:docs|src|tests|benchmarks|scripts|configs|deploy|\.ci)/[\w./*<>{},-]*$"
)


def shown_commands(document: str) -> list[str]:
    """The commands a reader copies from a document: code-block lines and inline code spans,
    continuation lines joined, comments cut, split at ``&&``, ``;`` and pipes."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / document).read_text())
    lines = [
        line for block in re.findall(r"```\w*\n(.*?)```", text, re.S) for line in block.split("\n")
    ]
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    lines += re.findall(r"(?m)^ {4}(\S.*)$", prose)  # indented blocks
    lines += [span.replace("\n", " ") for span in re.findall(r"`([^`]+)`", prose)]
    commands = []
    for line in lines:
        line = re.sub(r"\s+#.*$", "", line)
        commands += [part.strip() for part in re.split(r"\s*(?:&&|;|\||\$\()\s*", line)]
    return [command for command in commands if command]


def vigil_error(command: str) -> str | None:
    """Why the CLI would refuse ``command`` for its words (an unknown command or option, an
    extra argument), else None. A missing value or a placeholder (``N``, ``<run>``) is a
    mention of the command, not an error."""
    words = shlex.split(re.sub(r"<[^>]*>|…", "X", command))
    cli, name, index = typer.main.get_command(app), "vigil", 1
    while hasattr(cli, "get_command") and index < len(words) and not words[index].startswith("-"):
        cli = cli.get_command(None, words[index])  # type: ignore[union-attr]
        if cli is None:
            return f"no command {words[index]!r} in `{name}`"
        name, index = f"{name} {words[index]}", index + 1
    try:
        cli.make_context(name, words[index:])
    except typer.Exit:
        return None  # --version, --help
    except typer.exceptions.TyperException as error:
        if type(error).__name__ == "NoSuchOption" or "extra argument" in str(error):
            return f"`{name}`: {error}"
    return None


def benchmark_sources(script: str) -> str:
    """A benchmark's source with that of the benchmarks/ modules it imports (shared flags)."""
    source = (ROOT / "benchmarks" / script).read_text()
    imported = re.findall(r"(?m)^from (_?\w+) import", source)
    return source + "".join(
        (ROOT / "benchmarks" / f"{name}.py").read_text()
        for name in imported
        if (ROOT / "benchmarks" / f"{name}.py").is_file()
    )


@pytest.mark.parametrize("document", DOCS)
def test_shown_vigil_commands_exist_with_their_options(document: str) -> None:
    commands = [c for c in shown_commands(document) if re.match(r"(\S*/)?vigil(\s|$)", c)]
    assert commands, document
    errors = {command: vigil_error(command) for command in commands}
    assert not {command: error for command, error in errors.items() if error}


@pytest.mark.parametrize("document", DOCS)
def test_shown_make_targets_and_benchmark_flags_exist(document: str) -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"(?m)^([\w-]+):", makefile))
    shown = shown_commands(document)
    for command in (re.sub(r"<[^>]*>", "X", c) for c in shown):  # placeholders
        for target in re.findall(r"^make ([\w-]+)", command):
            assert target in targets, f"{document}: `{command}`"
        for script, rest in re.findall(r"(bench_\w+\.py)((?:\s+\S+)*)", command):
            assert (ROOT / "benchmarks" / script).is_file(), f"{document}: `{command}`"
            source = benchmark_sources(script)
            for flag in re.findall(r"(?:^|\s)(--[a-z][\w-]*)", rest):
                assert f'"{flag}"' in source, f"{document}: {script} has no {flag}: `{command}`"


@pytest.mark.parametrize("document", DOCS)
def test_shown_vigil_modules_exist(document: str) -> None:
    for command in shown_commands(document):
        for module in re.findall(r"python -m (vigil[\w.]*)", command):
            path = ROOT / "src" / module.replace(".", "/")
            assert path.with_suffix(".py").is_file() or (path / "__main__.py").is_file(), (
                f"{document}: `{command}`"
            )


@pytest.mark.parametrize("document", DOCS)
def test_linked_and_named_repository_files_exist(document: str) -> None:
    text = (ROOT / document).read_text()
    folder = (ROOT / document).parent
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if not target.startswith(("http", "#", "mailto:")):
            assert (folder / target.split("#")[0]).exists(), f"{document} links {target}"
    for span in re.findall(r"`([^`]+)`", text):
        for word in span.split():
            word = word.strip(",;:()")
            if REPO_PATH.match(word):
                pattern = re.sub(r"<[^>]+>|\{[^}]+\}", "*", word)
                assert list(ROOT.glob(pattern)), f"{document} names {word}"


def test_demo_summary_suggests_a_readme_serve_command_that_starts_on_its_defaults() -> None:
    """The demo's last line names how to serve its model: a command the README shows, which
    the API accepts on the demo's defaults (it refuses the published default key unless
    ``--insecure-dev-key`` allows it)."""
    summary = (ROOT / "scripts/demo_report.py").read_text()
    suggested = re.search(r"try: (vigil serve[^,]*),", summary)
    assert suggested, "the demo's summary no longer says how to serve its model"
    command = in_readme(suggested.group(1))
    defaults = load_settings(ROOT / "configs/vigil.yaml", environ={})
    check_api_key(defaults, insecure_dev_key="--insecure-dev-key" in command.split())


class Clone:
    """A fresh clone and the environment its commands run in."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.demo_output = ""
        self.demo_seconds = 0.0
        self.env = {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(path / "src"),  # the clone's code, the installed dependencies
            "VIGIL_HANDBOOK_DIR": str(HANDBOOK_DIR.resolve()),
        }
        for name in [n for n in self.env if n.startswith("VIGIL_") and "__" in n]:
            del self.env[name]  # the commands run on the README's defaults only

    def run(
        self, command: str, timeout: float = 900, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        completed = subprocess.run(
            shlex.split(command),
            cwd=self.path,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert completed.returncode == 0, (
            f"`{command}` exited {completed.returncode}:\n"
            f"{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}"
        )
        return completed

    def start(
        self, command: str, log: Path, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        with log.open("wb") as sink:
            return subprocess.Popen(
                shlex.split(command),
                cwd=self.path,
                env={**self.env, **(env or {})},
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )


def in_readme(command: str) -> str:
    """The command, asserted to be written in the README exactly so."""
    assert command in README, f"the README no longer shows `{command}`"
    return command


def readme_block(containing: str) -> str:
    """The README's bash block holding ``containing``, dedented (a list item indents it)."""
    blocks = [textwrap.dedent(b) for b in re.findall(r"```bash\n(.*?)```", README, re.S)]
    found = [block for block in blocks if containing in block]
    assert found, f"the README no longer shows a bash block with {containing!r}"
    return found[0]


def _stop(process: subprocess.Popen[bytes]) -> bool:
    """SIGTERM, then True when the process stopped cleanly (uvicorn re-raises the signal)."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=60) in (0, -signal.SIGTERM)
    except subprocess.TimeoutExpired:
        process.kill()
        raise


def _wait_http(
    url: str, process: subprocess.Popen[bytes], log: Path, seconds: float = 90
) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"exited {process.returncode} before answering:\n{log.read_text()[-3000:]}")
        try:
            return httpx.get(url, timeout=2)
        except httpx.HTTPError:
            time.sleep(0.5)
    pytest.fail(f"{url} did not answer in {seconds} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clone]:
    if shutil.which("git") is None or shutil.which("make") is None:
        pytest.fail("git and make are needed for the newcomer's path")
    path = tmp_path_factory.mktemp("newcomer") / "vigil"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(path)], check=True)
    repo = Clone(path)
    started = time.monotonic()
    demo = repo.run(in_readme("make demo") + " SETUP=", timeout=1200)
    repo.demo_output = demo.stdout
    repo.demo_seconds = time.monotonic() - started
    yield repo


@pytest.mark.slow
def test_make_demo_prints_streamed_ap_next_to_batch_ap(clone: Clone) -> None:
    out = clone.demo_output
    match = re.search(r"streamed AP (\d\.\d+), batch AP (\d\.\d+)", out)
    assert match, out[-3000:]
    streamed, batch = map(float, match.groups())
    assert abs(streamed - batch) <= 0.02
    print(f"\ndemo: {clone.demo_seconds:.0f} s; streamed AP {streamed}, batch AP {batch}")
    for default in ("data/raw", "models/current/model.onnx", "data/vigil.db", "data/features"):
        assert (clone.path / default).exists(), default


@pytest.mark.slow
def test_config(clone: Clone) -> None:
    out = clone.run(in_readme("vigil config --set train.lr=0.01")).stdout
    settings = json.loads(out)
    assert settings["train"]["lr"] == 0.01
    assert settings["train"]["history_days"] == 35  # the file was read


@pytest.mark.slow
def test_generate_validate_features(clone: Clone) -> None:
    out = clone.run(in_readme("vigil generate --out data/generated --csv")).stdout
    assert "transactions over 183 days" in out
    assert (clone.path / "data/generated/transactions.csv").is_file()
    out = clone.run(in_readme("vigil validate data/raw --report data/quality.json")).stdout
    assert "satisfy the data contract" in out
    assert json.loads((clone.path / "data/quality.json").read_text())["rows"] > 300_000
    out = clone.run(in_readme("vigil features")).stdout
    assert "features:" in out and "24 features" in out
    command = "vigil backfill features -i data/raw -o data/features/backfill.parquet"
    out = clone.run(in_readme(command)).stdout
    assert "feature rows" in out and "from 32 buckets and 4 slices" in out


@pytest.mark.slow
def test_warm_state(clone: Clone) -> None:
    require_service("Redis", "127.0.0.1", 6379)
    out = clone.run(
        in_readme("vigil warm-state"), env={"VIGIL_STORAGE__STATE_URL": REDIS_URL}
    ).stdout
    assert "state store warmed" in out


@pytest.mark.slow
def test_train_and_experiments(clone: Clone) -> None:
    out = clone.run(in_readme("vigil train"))
    assert "test AUC ROC" in out.stdout + out.stderr
    clone.run(in_readme("vigil experiments run logistic"))
    assert "logistic" in clone.run(in_readme("vigil experiments")).stdout


@pytest.mark.slow
def test_predict(clone: Clone) -> None:
    command = "vigil predict -i data/demo/last_week.csv --history data/raw -o data/demo/again.csv"
    out = clone.run(in_readme(command)).stdout
    assert "predictions" in out
    scores = (clone.path / "data/demo/again.csv").read_text().splitlines()
    assert scores[0] == "transaction_id,score,label" and len(scores) > 10_000


@pytest.mark.slow
def test_serve_answers_health_and_docs_offline(clone: Clone, tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    server = clone.start(in_readme("vigil serve --insecure-dev-key") + " --port 8765", log)
    try:
        health = _wait_http("http://127.0.0.1:8765/health", server, log)
        assert health.status_code == 200, health.text
        docs = httpx.get("http://127.0.0.1:8765/docs", timeout=5)
        assert docs.status_code == 200 and "swagger" in docs.text.lower()
        verdict = readme_block("/verdict").replace("127.0.0.1:8000", "127.0.0.1:8765")
        given = subprocess.run(
            ["bash", "-c", verdict], cwd=clone.path, env=clone.env, capture_output=True,
            text=True, timeout=60,
        )  # fmt: skip
        assert given.returncode == 0 and '"verdict":"fraud"' in given.stdout, (
            f"{verdict}\n{given.stdout[-3000:]}\n{given.stderr[-3000:]}"
        )
    finally:
        assert _stop(server), log.read_text()[-3000:]


@pytest.mark.slow
def test_db_replay_registry_dashboards(clone: Clone) -> None:
    clone.run(in_readme("vigil db upgrade"))
    assert "nothing to do" in clone.run(in_readme("vigil db maintain")).stdout  # SQLite
    command = "vigil replay --input data/demo/last_week_labelled.parquet --limit 1000"
    out = clone.run(in_readme(command)).stdout
    assert "replayed 1000 transactions" in out
    clone.run(in_readme("vigil registry show"))
    out = clone.run(in_readme("vigil dashboards")).stdout
    assert out.count(".json") == 3
    diff = subprocess.run(["git", "diff", "--stat"], cwd=clone.path, capture_output=True, text=True)
    assert diff.stdout == "", f"generated dashboards differ from the committed ones:\n{diff.stdout}"


@pytest.mark.slow
def test_worker_starts_and_drains_on_sigterm(clone: Clone, tmp_path: Path) -> None:
    require_service("RabbitMQ", "127.0.0.1", 5672)
    log = tmp_path / "worker.log"
    suffix = uuid.uuid4().hex[:8]  # queues of its own on the shared broker
    env = {
        "VIGIL_BROKER__URL": AMQP_URL,
        "VIGIL_BROKER__TRANSACTIONS_QUEUE": f"e2e-transactions-{suffix}",
        "VIGIL_BROKER__DECISIONS_EXCHANGE": f"e2e-decisions-{suffix}",
        "VIGIL_BROKER__LABELS_QUEUE": f"e2e-labels-{suffix}",
    }
    worker = clone.start(in_readme("vigil worker"), log, env=env)
    try:
        time.sleep(8)
        assert worker.poll() is None, log.read_text()[-3000:]
    finally:
        assert _stop(worker), log.read_text()[-3000:]


@pytest.mark.slow
def test_pipelines_daily_job(clone: Clone) -> None:
    out = clone.run(in_readme("vigil pipelines run daily --date 2018-09-23")).stdout
    assert "succeeded" in out
    assert any((clone.path / "data/marts").rglob("*.parquet"))


@pytest.mark.slow
def test_ui_starts(clone: Clone, tmp_path: Path) -> None:
    log = tmp_path / "ui.log"
    ui = clone.start(in_readme("vigil ui") + " --port 8766", log)
    try:
        page = _wait_http("http://127.0.0.1:8766/", ui, log)
        assert page.status_code == 200
    finally:
        _stop(ui)


@pytest.mark.slow
def test_dataset_versions_reproduce_push_pull_and_checkout(clone: Clone) -> None:
    locked = yaml.safe_load((clone.path / "dvc.lock").read_text())["stages"]
    clone.run(in_readme("dvc repro"), timeout=1800)
    rebuilt = yaml.safe_load((clone.path / "dvc.lock").read_text())["stages"]
    versions = yaml.safe_load((clone.path / "configs/pipeline.yaml").read_text())[
        "dataset_versions"
    ]
    for version in versions:
        stage = f"extract_data@{version}"
        assert rebuilt[stage]["outs"][0]["md5"] == locked[stage]["outs"][0]["md5"], stage
    clone.run(in_readme("dvc push"))
    shutil.rmtree(clone.path / "data/pipeline")
    shutil.rmtree(clone.path / ".dvc/cache")
    clone.run(in_readme("dvc pull"))
    for version in versions:
        raw = clone.path / f"data/pipeline/datasets/{version}/raw"
        shutil.rmtree(raw)
        clone.run(in_readme(f"dvc checkout extract_data@{version}"))
        assert len(list(raw.rglob("*.parquet"))) == 90
    assert "up to date" in clone.run(in_readme("dvc status")).stdout
