"""Trend chart: sentiment shares over time, one panel per topic, alerts marked.

Each panel stacks the negative / neutral / positive shares per bucket, draws the record
volume as grey bars on a second axis (a share of 3 records means little) and puts a red
marker on every alert bucket. Rendered with the Agg backend, so it works headless.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path

from aigc_apps.errors import DataError

from .store import as_utc
from .trends import Bucket

COLORS = {"negative": "#d62728", "neutral": "#bbbbbb", "positive": "#2ca02c"}
MAX_PANELS = 8


def plot_trends(
    series: Mapping[str, Sequence[Bucket]],
    out: str | Path,
    alerts: Mapping[str, Sequence[datetime]] | None = None,
    title: str = "Sentiment share per topic",
) -> Path:
    """Write the chart to ``out`` (PNG/SVG/PDF by extension) and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    topics = [t for t, buckets in series.items() if any(b.count for b in buckets)][:MAX_PANELS]
    if not topics:
        raise DataError("nothing to plot: no records in the selected range")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    alerts = alerts or {}
    fig, axes = plt.subplots(len(topics), 1, figsize=(11, 2.6 * len(topics) + 0.8),
                             sharex=True, squeeze=False)
    for ax, topic in zip(axes[:, 0], topics, strict=True):
        buckets = series[topic]
        times = [b.start for b in buckets]
        width = buckets[0].seconds / 86400 * 0.8 if buckets else 0.03
        neg = [b.share_negative for b in buckets]
        pos = [b.share_positive for b in buckets]
        neu = [1 - n - p if b.count else 0.0 for n, p, b in zip(neg, pos, buckets, strict=True)]
        volume = ax.twinx()
        volume.bar(times, [b.count for b in buckets], width=width, color="#000000", alpha=0.08,
                   label="volume")
        volume.set_ylabel("records", color="#777777")
        ax.set_zorder(volume.get_zorder() + 1)
        ax.patch.set_visible(False)
        ax.stackplot(times, neg, neu, pos, labels=["negative", "neutral", "positive"],
                     colors=[COLORS["negative"], COLORS["neutral"], COLORS["positive"]],
                     alpha=0.75, step="post")
        fired = [as_utc(t) for t in alerts.get(topic, ())]
        span = timedelta(seconds=buckets[0].seconds) if buckets else timedelta(0)
        marks = [b for b in buckets if any(b.start <= t < b.start + span for t in fired)]
        if marks:
            ax.scatter([b.start for b in marks], [b.share_negative for b in marks], marker="v",
                       s=90, color="black", zorder=5, label="alert")
            for b in marks:
                ax.axvline(b.start, color="black", linestyle=":", linewidth=1)
        ax.set_ylim(0, 1)
        ax.set_ylabel("share")
        ax.set_title(f"{topic}  ({sum(b.count for b in buckets)} records, "
                     f"{len(marks)} alert{'s' if len(marks) != 1 else ''})", loc="left",
                     fontsize=10)
        ax.legend(loc="upper left", fontsize=7, ncol=4)
    axes[-1, 0].xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M"))
    fig.autofmt_xdate()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
