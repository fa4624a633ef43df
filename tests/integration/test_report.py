"""vrs-report on a run trained for one epoch: the HTML's structure, and the page in a real browser."""

from __future__ import annotations

import base64
import fcntl
import io
import json
import os
import select
import shutil
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.conftest import compose_config
from vrs.cli.evaluate import evaluate
from vrs.cli.report import report
from vrs.cli.train import train
from vrs.run import find_checkpoint

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
# As the machine notes advise: no background traffic on a closed network, no sandbox as root.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--mute-audio"]  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, small_data: Path) -> Path:
    """runs/{fused,popularity}, laid out as `make demo` lays out runs/demo."""
    root = tmp_path_factory.mktemp("runs")
    overrides = ["trainer.max_epochs=1", "data.image_size=32", "logger=none"]
    train(compose_config("train", overrides, root / "fused", small_data))
    evaluate(
        compose_config("eval", ["model=popularity", "data.image_size=32"], root / "popularity", small_data)
    )
    return root


@pytest.fixture(scope="module")
def report_html(runs: Path, small_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("report")
    overrides = [f"run_dir={runs / 'fused'}", "data.image_size=32", "users=4", "k=5", "thumb_size=64"]
    path = report(compose_config("report", overrides, cwd, small_data))
    assert path == runs / "fused" / "report.html"
    return path


class _Page(HTMLParser):
    """Tags of interest: every <img> src, table headers, cards and their hits."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.headers: list[str] = []
        self.cards: list[str] = []
        self.hits = 0
        self.svgs = 0
        self.cells: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        cls = (a.get("class") or "").split()
        if tag == "img":
            self.images.append(a.get("src") or "")
        elif tag == "section" and "card" in cls:
            self.cards.append(a.get("data-user") or "")
        elif tag == "figure" and {"rec", "hit"} <= set(cls):
            self.hits += 1
        elif tag == "svg":
            self.svgs += 1
        self._in = tag if tag in ("th", "td") else None

    def handle_data(self, data: str) -> None:
        if self._in == "th":
            self.headers.append(data)
        if self._in in ("th", "td"):
            self.cells.append(data)


def test_report_is_self_contained_html(report_html: Path, runs: Path) -> None:
    page = _Page()
    page.feed(report_html.read_text(encoding="utf-8"))
    # Metrics beside the baseline found next to the run.
    assert {"metric", "fused", "popularity", "test/recall_10", "test/ndcg_20"} <= set(page.headers)
    # Every image is inlined, and the item map is a real PNG.
    assert page.images and all(src.startswith("data:image/") for src in page.images)
    maps = [src for src in page.images if src.startswith("data:image/png") and len(src) > 20_000]
    assert Image.open(io.BytesIO(base64.b64decode(maps[0].split(",", 1)[1]))).size == (560, 560)
    assert page.svgs == 2  # recall and NDCG against K
    # Four cards, about half hits; a hit card frames its held-out item among the recommendations.
    assert len(page.cards) == 4 and len(set(page.cards)) == 4
    assert page.hits == report_html.read_text().count("badge hit") >= 1
    # The curves recomputed from the checkpoint agree with what vrs-train tested.
    metrics = json.loads((runs / "fused" / "metrics.json").read_text())
    row = page.cells[page.cells.index("test/recall") + 1 :][:5]  # K = 1, 5, 10, 20, 50
    assert row[2] == f"{metrics['test/recall_10']:.4f}" and row[3] == f"{metrics['test/recall_20']:.4f}"
    assert not list(report_html.parent.glob(".report.html.*"))  # the atomic write left no temp file


def test_report_cli_errors(tmp_path: Path, small_data: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    cli = [sys.executable, "-m", "vrs.cli.report", f"data.root={small_data}"]
    result = subprocess.run(cli, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "error: run_dir=DIR is required" in result.stderr
    assert "Traceback" not in result.stderr
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        report(compose_config("report", [f"run_dir={tmp_path}"], tmp_path, small_data))


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install chromium; .ci/run installs it)")
def test_report_renders_in_chromium(report_html: Path, tmp_path: Path) -> None:
    moved = tmp_path / "moved" / "copy.html"  # the report must not depend on files beside it
    moved.parent.mkdir()
    shutil.copy(report_html, moved)
    with Chromium(tmp_path / "profile") as browser:
        result = browser.open(moved.as_uri(), width=1400)
    images = result["images"]
    assert sum(img["card"] for img in images) >= 4 * 5, images[:3]
    broken = [img["alt"] for img in images if not (img["complete"] and img["naturalWidth"] > 0)]
    assert not broken, f"images that did not load: {broken[:5]}"
    assert not result["errors"], result["errors"]
    assert all(url == moved.as_uri() or url.startswith("data:") for url in result["requests"]), result[
        "requests"
    ]
    shot = tmp_path / "report.png"
    shot.write_bytes(result["screenshot"])
    assert Image.open(shot).size[0] == 1400
    if os.environ.get("VRS_TEST_ARTIFACTS"):
        out = Path(os.environ["VRS_TEST_ARTIFACTS"])
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, out / "report.png")


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe:
    JSON messages ended by NUL, read on fd 3 and written on fd 4), so no driver package is needed."""

    def __init__(self, profile: Path, timeout: float = 60.0) -> None:
        self.timeout = timeout
        to_child, self._write = os.pipe()
        self._read, from_child = os.pipe()
        # Move both child ends above 4 first, so that placing them on 3 and 4 cannot clobber either.
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_child, from_child)]
        for fd in (to_child, from_child):
            os.close(fd)

        def place() -> None:
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self.proc = subprocess.Popen(
            [
                CHROMIUM,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                "--remote-debugging-pipe",
                "about:blank",
            ],
            pass_fds=(3, 4),
            preexec_fn=place,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for fd in high:
            os.close(fd)
        self._buf = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.call("Browser.close")
        except Exception:  # already gone: nothing to close
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._read)
        os.close(self._write)

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self._write, json.dumps(msg).encode() + b"\0")
        reply = self._wait(lambda m: m.get("id") == self._next_id)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def _wait(self, match: Any) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        while True:
            while b"\0" in self._buf:
                raw, self._buf = self._buf.split(b"\0", 1)
                msg = json.loads(raw)
                if match(msg):
                    return msg
                self.events.append(msg)
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._read], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the pipe")
            self._buf += chunk

    def open(self, url: str, width: int) -> dict[str, Any]:
        """Loads `url`; returns its images' load state, console errors, requests and a full-page PNG."""
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session)
        self.call("Emulation.setDeviceMetricsOverride", session, width=width, height=900,
                  deviceScaleFactor=1, mobile=False)  # fmt: skip
        before = len(self.events)
        self.call("Page.navigate", session, url=url)
        if not any(e.get("method") == "Page.loadEventFired" for e in self.events[before:]):
            self._wait(lambda m: m.get("method") == "Page.loadEventFired")  # load waits for every image
        script = """JSON.stringify([...document.images].map(i => ({alt: i.alt, complete: i.complete,
            naturalWidth: i.naturalWidth, card: !!i.closest('.card')})))"""
        images = self.call("Runtime.evaluate", session, expression=script, returnByValue=True)["result"]
        size = self.call("Page.getLayoutMetrics", session)["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": width, "height": size["height"], "scale": 1}
        shot = self.call(
            "Page.captureScreenshot", session, format="png", captureBeyondViewport=True, clip=clip
        )
        mine = [e for e in self.events if e.get("sessionId") == session]
        errors = [e["params"] for e in mine if _is_error(e)]
        requests = [
            e["params"]["request"]["url"] for e in mine if e.get("method") == "Network.requestWillBeSent"
        ]
        return {"images": json.loads(images["value"]), "errors": errors, "requests": requests,
                "screenshot": base64.b64decode(shot["data"])}  # fmt: skip


def _is_error(event: dict[str, Any]) -> bool:
    """An uncaught exception, console.error/assert, or an error logged by the browser (a failed load)."""
    method, params = event.get("method"), event.get("params", {})
    return (
        method == "Runtime.exceptionThrown"
        or (method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"))
        or (method == "Log.entryAdded" and params["entry"]["level"] == "error")
    )


def test_user_cards_equal_brute_force_ranking(runs: Path, small_data: Path) -> None:
    import torch

    from vrs.data.datamodule import RecDataModule
    from vrs.lit.module import RecModule
    from vrs.report.evaluation import eval_batches, user_cards

    dm = RecDataModule(str(small_data), image_size=32)
    dm.setup()
    module = RecModule.load_from_checkpoint(runs / "fused" / "checkpoints" / "last.ckpt", map_location="cpu")
    module.attach_data(dm.content, dm.train_counts)
    net, targets = module.net.eval(), dm.data.test_targets[:12]
    cards = user_cards(net, dm.data, targets, module.hparams.max_len, k=5)
    batch = next(eval_batches(dm.data, targets, module.hparams.max_len, len(targets)))
    with torch.no_grad():
        items = net.encode_items()  # (N, D)
        scores = net.encode_users(batch, items) @ items.T  # (M, N)
    for m, card in enumerate(cards):
        row = scores[m].clone()
        seen = batch.seen[m][batch.seen[m] >= 0]
        target = row[card.target].item()
        row[seen] = float("-inf")
        assert card.target_rank == int((row >= target).sum()) - 1  # ties count against the target
        top = row.topk(5)
        assert card.items == top.indices.tolist()
        torch.testing.assert_close(torch.tensor(card.scores), top.values, rtol=1e-4, atol=1e-5)


def test_find_checkpoint_takes_the_tested_one_not_the_resume_state(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    for i, name in enumerate(["last.ckpt", "epoch_003.ckpt", "resume.ckpt"]):  # resume.ckpt newest
        (folder / name).write_bytes(b"")
        os.utime(folder / name, (1_000_000 + i, 1_000_000 + i))
    assert find_checkpoint(tmp_path).name == "epoch_003.ckpt"
    (folder / "epoch_003.ckpt").unlink()
    assert find_checkpoint(tmp_path).name == "last.ckpt"
    (folder / "last.ckpt").unlink()
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        find_checkpoint(tmp_path)


def test_report_skips_decompression_bombs(runs: Path, small_data: Path, tmp_path: Path) -> None:
    """Items whose image declares billions of pixels: with on_bad_image=skip they lose their image
    (a warning names them) and the report shows placeholders instead of failing."""
    from tests.unit.test_images import bomb_png

    data = Path(shutil.copytree(small_data, tmp_path / "data"))
    bombs = sorted((data / "images").iterdir())[::2]  # half the catalogue: some reach the cards
    for path in bombs:
        bomb_png(path)
    overrides = [f"run_dir={runs / 'fused'}", "data.image_size=32", "users=2", "k=5", "thumb_size=32"]
    overrides += ["data.on_bad_image=skip", f"out={tmp_path / 'report.html'}"]
    with pytest.warns(UserWarning, match=rf"images/{bombs[0].name}.*decompression-bomb"):
        path = report(compose_config("report", overrides, tmp_path, data))
    page = _Page()
    page.feed(path.read_text())
    assert page.images and page.cards
