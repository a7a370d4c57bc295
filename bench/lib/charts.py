"""charts.py: SVG bar charts of bench/'s comparison results, drawn by the
summaries of those scripts from the same figures as their markdown tables.
matplotlib (Debian python3-matplotlib) with the Agg backend; without it,
available() says so once on stderr and the tables are written as before.

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
    import charts
    if charts.available():
        charts.draw(path, title, note, [charts.Panel(...), ...])

A chart is panels of horizontal bars, one bar per server (or router, or
proxy) and optional group headings; portico's bars in colour, peers grey,
a floor (a stub that does less than any of them) light. The SVG keeps text
as text (no embedded glyphs) and is the same file for the same figures:
fixed ids (svg.hashsalt) and no date.
"""

import io
import math
import sys
import textwrap
from dataclasses import dataclass, field

PORTICO = "#1c64c8"
VARIANT = "#8db4e8"   # portico built or run another way
PEER = "#9aa1a8"
FLOOR = "#dfe2e6"
FLOOR_EDGE = "#868e96"
INK = "#212529"
MUTED = "#5c636a"

_plt = None
_ticker = None
_checked = False


def available():
    """Whether matplotlib can be imported; says why not, once, on stderr."""
    global _plt, _ticker, _checked
    if not _checked:
        _checked = True
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
            import matplotlib.ticker as ticker
        except ImportError as e:
            print(f"charts: no SVG charts ({e}; apt-get install python3-matplotlib, or"
                  f" .ci/setup --bench; {sys.executable} is the python3 that needs it);"
                  " the tables are complete without them", file=sys.stderr)
            return False
        plt.rcParams.update({
            "svg.fonttype": "none",          # text as <text>, no glyph paths
            "svg.hashsalt": "portico-bench",  # the same ids on every run
            "font.family": "DejaVu Sans",
            "font.size": 9,
            "axes.edgecolor": "#ced4da",
            "axes.labelcolor": MUTED,
            "xtick.color": MUTED,
            "ytick.color": INK,
            "axes.spines.top": False,
            "axes.spines.right": False,
        })
        _plt, _ticker = plt, ticker
    return _plt is not None


@dataclass
class Bar:
    """One bar: label on the axis, value (None: not measured, drawn as –),
    kind "portico", "variant" (of portico), "peer" or "floor", and the text
    printed after it."""
    label: str
    value: float | None
    kind: str = "peer"
    text: str = ""


@dataclass
class Panel:
    """One axis of bars, top to bottom. A str in bars is a group heading."""
    title: str
    bars: list = field(default_factory=list)
    unit: str = ""
    log: bool = False


def _fit(ax, lo, hi, log, labels, renderer):
    """Widens ax's x range until every bar's text ends inside the axes."""
    width = ax.get_window_extent(renderer).width
    need = hi
    for value, text in labels:
        room = width - text.get_window_extent(renderer).width - 8
        if room <= width * 0.15:
            room = width * 0.15
        if log:
            need = max(need, 10 ** (math.log10(lo) + (math.log10(value) - math.log10(lo)) * width / room))
        else:
            need = max(need, value * width / room)
    ax.set_xlim(lo, need)


def draw(path, title, note, panels, columns=1, column_width=4.6):
    """Writes panels (a list of Panel) as one SVG at path, columns panels
    a row (each column_width inches wide), the title above and the note (how
    it was measured, which run) below. Panels on one row that list the same
    bars name them once."""
    plt = _plt
    width = column_width * columns if columns > 1 else 7.2
    # About 15 characters an inch at the note's size.
    note = "\n".join(textwrap.fill(line, int(width * 15)) for line in note.split("\n"))
    rows = math.ceil(len(panels) / columns)
    lengths = [len(p.bars) for p in panels]
    per_row = [max(lengths[r * columns:(r + 1) * columns]) for r in range(rows)]
    height = 0.9 + 0.6 * rows + 0.2 * sum(per_row) + 0.16 * (note.count("\n") + 1)
    fig, axes = plt.subplots(rows, columns, figsize=(width, height),
                             squeeze=False, layout="constrained",
                             gridspec_kw={"height_ratios": [n + 1.5 for n in per_row]})
    drawn = []
    for i, ax in enumerate(axes.flat):
        if i >= len(panels):
            ax.set_visible(False)
            continue
        p = panels[i]
        first_in_row = i % columns == 0
        same_as_left = (not first_in_row and
                        [_name(b) for b in p.bars] == [_name(b) for b in panels[i - 1].bars])
        # About 13 characters an inch at the panel title's size.
        drawn.append((ax, p.log) + _panel(ax, p, labels=not same_as_left,
                                           title_chars=int((width / columns - 0.8) * 13)))
    # About 11 characters an inch at the title's size.
    fig.suptitle(textwrap.fill(title, int(width * 11)), x=0.01, ha="left", fontsize=11,
                 fontweight="bold", color=INK)
    fig.supxlabel(note, x=0.01, ha="left", fontsize=7.5, color=MUTED, linespacing=1.4)
    # The texts after the bars take what room they take: lay out, widen the
    # x ranges to fit them, lay out again (tick labels may move the axes).
    for _ in range(2):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        for ax, log, lo, hi, labels in drawn:
            _fit(ax, lo, hi, log, labels, renderer)
    out = io.StringIO()
    fig.savefig(out, format="svg", metadata={"Date": None, "Creator": "portico bench/lib/charts.py"})
    plt.close(fig)
    # Text is laid out with DejaVu Sans' metrics; where a browser lacks the
    # font (GitHub shows the file as an image, with the viewer's fonts),
    # Verdana is close to it in width, then any sans-serif.
    svg = out.getvalue().replace("'DejaVu Sans'", "'DejaVu Sans', Verdana, sans-serif")
    with open(path, "w", encoding="utf-8") as f:
        f.write(svg)
    print(f"charts: wrote {path}", file=sys.stderr)


def _name(b):
    return b if isinstance(b, str) else b.label


def _panel(ax, p, labels, title_chars):
    """Draws p on ax; returns (lo, hi, [(value, text artist)]) for _fit."""
    n = len(p.bars)
    ys = list(range(n))[::-1]
    values = [b.value for b in p.bars if not isinstance(b, str) and b.value and b.value > 0]
    top = max(values) if values else 1.0
    if p.log:
        lo = 10 ** math.floor(math.log10(min(values) if values else 1.0) - 0.3)
        hi = top * 1.5
    else:
        lo, hi = 0, top * 1.1
    texts = []
    if p.log:
        ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(-0.7, n - 0.3)
    ticks, names = [], []
    for y, b in zip(ys, p.bars):
        if isinstance(b, str):
            ticks.append(y)
            names.append(b)
            continue
        ticks.append(y)
        names.append(b.label)
        if b.value is None or (p.log and b.value <= 0):   # nothing a log axis can place
            ax.text(lo, y, f"  {b.text or '–'}", va="center", fontsize=8, color=MUTED)
            continue
        style = {"portico": dict(color=PORTICO), "variant": dict(color=VARIANT),
                 "floor": dict(color=FLOOR, edgecolor=FLOOR_EDGE, linewidth=0.6, hatch="////"),
                 }.get(b.kind, dict(color=PEER))
        ax.barh(y, b.value - (lo if p.log else 0), left=lo if p.log else 0, height=0.72, **style)
        t = ax.annotate(b.text, (b.value, y), xytext=(3, 0), textcoords="offset points",
                        va="center", fontsize=8,
                        color=PORTICO if b.kind == "portico" else INK,
                        fontweight="bold" if b.kind == "portico" else "normal")
        texts.append((b.value, t))
    ax.set_yticks(ticks, names if labels else [""] * len(names))
    ax.tick_params(axis="y", length=0)
    if labels:
        for t, b in zip(ax.get_yticklabels(), p.bars):
            if isinstance(b, str):
                t.set_fontweight("bold")
                t.set_color(MUTED)
            elif b.kind == "portico":
                t.set_fontweight("bold")
                t.set_color(PORTICO)
    ax.set_title(textwrap.fill(p.title, title_chars), loc="left", fontsize=9, color=INK)
    if p.unit:
        ax.set_xlabel(p.unit, fontsize=8)
    ax.tick_params(axis="x", labelsize=7.5)
    # Few ticks: the bars carry their figures.
    ax.xaxis.set_major_locator(_ticker.LogLocator(numticks=6) if p.log else _ticker.MaxNLocator(4))
    if p.log:
        ax.xaxis.set_major_formatter(lambda v, _: f"{v:,.{max(0, -math.floor(math.log10(v)))}f}")
    else:
        ax.xaxis.set_major_formatter(lambda v, _: f"{v:,.{0 if hi >= 10 else 1}f}")
    ax.grid(axis="x", color="#eef0f2", linewidth=0.6)
    ax.set_axisbelow(True)
    return lo, hi, texts
