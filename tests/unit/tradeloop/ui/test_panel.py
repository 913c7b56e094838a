"""The ``tradeloop up`` panel fits a 120 x 40 terminal and formats numbers for people."""

from __future__ import annotations

import re

from rich.console import Console

from streams.topics import ALL_TOPICS
from tradeloop.ui import panel
from tradeloop.ui.panel import (
    AllocatorView,
    BeatRow,
    ModelRow,
    PanelData,
    ProcessRow,
    SizerView,
    TopicRow,
    render_panel,
)

STRATEGIES = ["ema_cross_fast", "ema_cross_slow", "mean_reversion_1", "mean_reversion_2", "breakout_1",
              "breakout_2", "momentum_1", "momentum_2"]  # fmt: skip


def busy_panel() -> PanelData:
    """A panel as full as ``tradeloop up`` makes it: every topic busy, every process beating."""
    topics = [TopicRow(t.name, 47_831 * (i + 1), 1234.5 / (i + 1)) for i, t in enumerate(ALL_TOPICS)]
    topics.append(TopicRow("nothing-yet", 0, 0.0))
    worker = {"events_in_per_s": 1234.5, "events_in_total": 47_831.0, "dead_letters_total": 12.0,
              "experiences_total": 1_234_567.0, "pending_joins": 321.0, "lag": 4_783.0, "partitions": 3.0,
              "recovery_seconds": 0.0034}  # fmt: skip
    trainer = {"ingested": 12_345.0, "lag": 0.0, "runs": 3.0, "failures": 0.0, "periods_ingested": 310.0,
               "allocator_runs": 2.0}  # fmt: skip
    inference = {"decisions": 3052.0, "fallbacks": 17.0, "sizer_age_seconds": 95.0, "partitions": 3.0,
                 "symbols": 4.0}  # fmt: skip
    beats = [
        BeatRow("worker", "worker-vm-1", "UP", 1.2, worker),
        BeatRow("trainer", "trainer-vm-2", "UP", 0.4, trainer, {"serving_model": "v0002-20261123T101010"}),
        BeatRow("inference", "inference-vm-3-ab12", "UP", 2.0, inference, {"sizer": "v0002-20261123T101010"}),
        BeatRow("health", "health-vm-4", "UP", 3.0, {"healthy": 1.0, "failing_checks": 0.0}),
        BeatRow("worker", "worker-vm-0", "STOPPING", 300.0, worker),  # an older process of the same component
    ]
    processes = [ProcessRow("broker", 101, "running"), ProcessRow("worker", 102, "running", 1),
                 ProcessRow("trainer", 103, "running"), ProcessRow("inference", 104, "running"),
                 ProcessRow("simulator", 105, "running"), ProcessRow("health", 100, "running")]  # fmt: skip
    published = [ModelRow("sizer", f"v000{i}-20261123T10101{i}", "gate") for i in range(1, 5)]
    published += [ModelRow("allocator", "v0001-20261123T101500", "gate")]
    weights = {s: w for s, w in zip(STRATEGIES, (0.31, 0.2, 0.12, 0.1, 0.09, 0.08, 0.06, 0.04), strict=True)}
    return PanelData(
        elapsed_seconds=151.0, bootstrap="127.0.0.1:19092", log_dir=".tradeloop/logs", topics=topics,
        processes=processes, beats=beats, published=published,
        serving={"sizer": "v0004-20261123T101014", "allocator": "v0001-20261123T101500"},
        sizer=SizerView(3052, 0.357123, 1.159, 0.802),
        allocator=AllocatorView(7, "v0001-20261123T101500", weights, None, 41, 0.0123),
        events=[f"worker exited with 1; restart {i} in 2 s" for i in range(5)],
    )  # fmt: skip


def render(data: PanelData, width: int = 120, height: int = 40) -> list[str]:
    console = Console(width=width, height=height, record=True, color_system=None)
    console.print(render_panel(data))
    return console.export_text().rstrip("\n").splitlines()


def test_busy_panel_fits_120_by_40() -> None:
    lines = render(busy_panel())
    assert len(lines) <= 40, "\n".join(lines)
    assert max(len(line) for line in lines) <= 120
    text = "\n".join(lines)
    for shown in (
        "47.8k",
        "1.23M",
        "1.23k/s",
        "400 ms ago",
        "2m 31s",
        "1m 35s",
        "+0.357",
        "+0.0123",
        "3.05k",
        "fallbacks 0.557%",
        "ema_cross_fast 31%",
    ):
        assert shown in text, shown
    assert not re.search(r"\de[+-]\d", text), "scientific notation left in the panel"
    assert "nothing-yet" not in text and "1 empty" in text  # topics without traffic are folded away
    assert "v0004-20261123T101014" in text and "momentum_2 4%" in text
    assert text.count("worker exited") == panel.MAX_EVENTS


def test_empty_panel_before_anything_started() -> None:
    lines = render(PanelData(elapsed_seconds=0.4, bootstrap="127.0.0.1:19092"))
    assert (
        len(lines) <= 40 and "none yet" in "\n".join(lines) and "no weights published yet" in "\n".join(lines)
    )
