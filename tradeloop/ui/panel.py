"""The live panel of ``tradeloop up``: a pure function from :class:`PanelData` to one renderable.

It fits a 120 x 40 terminal: topics with traffic in two column pairs, one row per process (its
supervisor state beside its newest heartbeat and a few of its gauges), the models published, and
what each learner earns live: the sizer's uplift over fixed size and the allocator's weights and
their uplift over equal weights. Numbers are formatted for people (:mod:`tradeloop.ui.humanize`);
``--summary-json`` keeps the exact values.

Example:
    >>> import io
    >>> from rich.console import Console
    >>> console = Console(width=120, height=40, record=True, file=io.StringIO())
    >>> console.print(render_panel(PanelData(elapsed_seconds=151.0, bootstrap="127.0.0.1:19092",
    ...     topics=(TopicRow("trades", 47_831, 412.5),))))
    >>> text = console.export_text()
    >>> "47.8k" in text, "412/s" in text, "2m 31s" in text
    (True, True, True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from tradeloop.ui.humanize import count, duration, gauge, gauge_label, percent, rate, signed

__all__ = [
    "MAX_EVENTS",
    "AllocatorView",
    "BeatRow",
    "ModelRow",
    "PanelData",
    "ProcessRow",
    "SizerView",
    "TopicRow",
    "render_panel",
]

MAX_EVENTS = 3
"""Newest supervisor events shown (restarts, give-ups); the log keeps them all."""

# The gauges worth a glance per component, in this order; others follow while they fit.
_GAUGES: Mapping[str, tuple[str, ...]] = {
    "worker": ("events_in_per_s", "events_in_total", "experiences_total", "lag", "dead_letters_total"),
    "trainer": ("ingested", "lag", "runs", "periods_ingested", "allocator_runs", "failures"),
    "inference": ("decisions", "fallbacks_ratio", "sizer_age_seconds"),
    "health": ("healthy", "failing_checks"),
}
_STATE_STYLE = {"running": "green", "finished": "dim", "stopped": "dim", "gave up": "bold red"}


@dataclass(frozen=True, slots=True)
class TopicRow:
    """One topic: records on it and events per second over the last refresh."""

    name: str
    records: int
    per_second: float = 0.0


@dataclass(frozen=True, slots=True)
class ProcessRow:
    """One process, named like its heartbeat component; ``state`` is the supervisor's word for it."""

    name: str
    pid: int | None
    state: str
    restarts: int = 0


@dataclass(frozen=True, slots=True)
class BeatRow:
    """The newest heartbeat of one component process."""

    component: str
    component_id: str
    status: str
    age_seconds: float
    gauges: Mapping[str, float] = field(default_factory=dict)
    info: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ModelRow:
    """A published model version and why it was published (gate, rollback, restore...)."""

    model: str
    version: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SizerView:
    """The served sizer's live uplift over fixed size 1.0 (unit-notional P&L)."""

    decisions_with_model: int = 0
    live_uplift: float = 0.0
    model_pnl: float = 0.0
    fixed_pnl: float = 0.0


@dataclass(frozen=True, slots=True)
class AllocatorView:
    """The newest learned strategy weights the engine received, and their realised uplift.

    ``uplift_vs_equal`` sums ``(w - equal) . r`` over the allocation periods that closed while
    learned weights were in force (``periods`` of them).
    """

    weights_updates: int = 0
    model_version: str | None = None
    weights: Mapping[str, float] = field(default_factory=dict)
    fallback_reason: str | None = None
    periods: int = 0
    uplift_vs_equal: float = 0.0


@dataclass(frozen=True, slots=True)
class PanelData:
    """Everything the panel shows, gathered by ``tradeloop up`` each refresh."""

    elapsed_seconds: float
    bootstrap: str
    log_dir: str = ""
    topics: Sequence[TopicRow] = ()
    processes: Sequence[ProcessRow] = ()
    beats: Sequence[BeatRow] = ()
    published: Sequence[ModelRow] = ()
    serving: Mapping[str, str] = field(default_factory=dict)
    sizer: SizerView = SizerView()
    allocator: AllocatorView = AllocatorView()
    events: Sequence[str] = ()


def _table(title: str) -> Table:
    return Table(
        title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD, pad_edge=False,
        show_edge=False, collapse_padding=True,
    )  # fmt: skip


def _topics(rows: Sequence[TopicRow]) -> Table:
    """Topics with records, in two column pairs (left half, then right half)."""
    busy = [r for r in rows if r.records > 0]
    quiet = len(rows) - len(busy)
    title = f"topics with records ({quiet} empty)" if quiet else "topics"
    table = _table(title)
    for _ in range(2):
        table.add_column("topic", no_wrap=True, overflow="ellipsis", max_width=30)
        table.add_column("records", justify="right", no_wrap=True)
        table.add_column("events/s", justify="right", no_wrap=True)
    half = (len(busy) + 1) // 2
    for i in range(half):
        cells: list[str] = []
        for row in (busy[i], busy[i + half] if i + half < len(busy) else None):
            cells += ["", "", ""] if row is None else [row.name, count(row.records), rate(row.per_second)]
        table.add_row(*cells)
    return table


def _figures(component: str, gauges: Mapping[str, float], width: int = 64) -> str:
    """A component's key gauges as ``label value`` pairs, those of :data:`_GAUGES` first."""
    gauges = dict(gauges)
    if gauges.get("decisions"):  # an inference worker: its fallback share says more than the count
        gauges["fallbacks_ratio"] = gauges.get("fallbacks", 0.0) / gauges["decisions"]
    order = [g for g in _GAUGES.get(component, ()) if g in gauges]
    order += sorted(g for g in gauges if g not in order and not g.endswith("_ts"))
    text = ""
    for name in order:
        item = f"{gauge_label(name)} {gauge(name, gauges[name])}"
        if len(text) + len(item) + 2 > width:
            break
        text = f"{text}  {item}" if text else item
    return text


def _processes(processes: Sequence[ProcessRow], beats: Sequence[BeatRow]) -> Table:
    """One row per process: supervisor state, restarts, newest heartbeat, key gauges."""
    table = _table("processes")
    # Every column keeps its width; only the figures give way in a narrow terminal.
    widest = max((len(p.state) for p in processes), default=5)
    for name, width in (
        ("process", 9),
        ("pid", 7),
        ("state", widest),
        ("restarts", 8),
        ("beat", 10),
        ("status", 8),
    ):
        table.add_column(name, no_wrap=True, min_width=width)
    table.add_column("figures", no_wrap=True, overflow="ellipsis", max_width=66)
    newest: dict[str, BeatRow] = {}
    for row in beats:
        if row.component not in newest or row.age_seconds < newest[row.component].age_seconds:
            newest[row.component] = row
    for process in processes:
        beat = newest.pop(process.name, None)
        style = _STATE_STYLE.get(process.state, "yellow")
        table.add_row(
            process.name, str(process.pid or "-"), Text(process.state, style), str(process.restarts),
            "-" if beat is None else f"{duration(beat.age_seconds)} ago", "-" if beat is None else beat.status,
            "" if beat is None else _figures(beat.component, beat.gauges),
        )  # fmt: skip
    for component, other in sorted(newest.items()):  # heartbeats of processes up does not run
        table.add_row(component, "-", Text("elsewhere", "dim"), "-", f"{duration(other.age_seconds)} ago",
                      other.status, _figures(component, other.gauges))  # fmt: skip
    return table


def _learners(data: PanelData) -> Table:
    """Per model: what was published and serves, then what it earns live."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold", no_wrap=True, width=9)
    grid.add_column(overflow="fold")
    for model in ("sizer", "allocator"):
        versions = [m for m in data.published if m.model == model]
        newest = f"newest {versions[-1].version} ({versions[-1].reason})" if versions else "none yet"
        grid.add_row(model, f"published {len(versions)}, {newest}; serving {data.serving.get(model, 'none')}")
        if model == "sizer":
            sizer = data.sizer
            grid.add_row("", f"live uplift over fixed size {signed(sizer.live_uplift)} unit P&L over "
                             f"{count(sizer.decisions_with_model)} model decisions (model {signed(sizer.model_pnl)} "
                             f"vs fixed {signed(sizer.fixed_pnl)})")  # fmt: skip
            continue
        alloc = data.allocator
        if alloc.model_version is None:
            reason = alloc.fallback_reason or "no weights published yet"
            grid.add_row(
                "", f"equal weights ({reason}); learned weight updates received: {alloc.weights_updates}"
            )
        else:
            grid.add_row("", f"learned weight updates received: {alloc.weights_updates}, newest from "
                             f"{alloc.model_version}; uplift over equal weights {signed(alloc.uplift_vs_equal)} "
                             f"unit P&L over {alloc.periods} periods")  # fmt: skip
        if alloc.weights:
            ranked = sorted(alloc.weights.items(), key=lambda kv: -kv[1])
            grid.add_row("", "weights " + "  ".join(f"{name} {percent(w)}" for name, w in ranked))
    return grid


def render_panel(data: PanelData) -> RenderableType:
    """The whole panel; at most about 30 lines for 14 topics, 6 processes and 8 strategies."""
    header = Text.assemble(
        ("tradeloop up", "bold"), f"  {duration(data.elapsed_seconds)}  broker {data.bootstrap}",
        f"  logs {data.log_dir}" if data.log_dir else "",
    )  # fmt: skip
    parts: list[RenderableType] = [header, _topics(data.topics), _processes(data.processes, data.beats)]
    parts.append(_learners(data))
    for event in list(data.events)[-MAX_EVENTS:]:
        parts.append(Text(event, style="yellow", overflow="ellipsis", no_wrap=True))
    return Group(*parts)
