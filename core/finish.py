"""A run in the form it is published: its files' contents, statistics, metrics and console text.

Made where the run was evaluated (in a sweep, a Ray worker), so that the process that writes the
files and logs them to MLflow only copies bytes. ``write_finished`` writes the set atomically
(core.outputs.write_file_set: the health json, last, lists every file's digest), the same files
``BacktestResult.write`` writes, byte for byte.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .config import RunConfig
from .console import format_parts
from .engine import BacktestResult
from .outputs import output_paths, write_run_files, write_table
from .stats import breakdown_records, metrics_for_tracking, summary_stats


@dataclass
class FinishedRun:
    """What is written and logged of one run (one combination of a sweep)."""

    config: RunConfig
    files: dict[str, bytes]  # file name -> content: trades, summary, stats (the health json comes last)
    health: dict  # the health json's content, less the digests of the files
    stats: dict  # summary_stats (breakdowns are in the stats file)
    metrics: dict[str, float]  # numeric statistics and health counts, as MLflow metrics
    console_parts: tuple[str, str, str]  # core.console.format_parts: headline and money, data health, outputs
    daily_dates: np.ndarray = field(repr=False)  # trade_date (days since 1970) of each traded day
    daily_pnl: np.ndarray = field(repr=False)  # pnl_pts of that day
    by_anchor: list[dict] | None = field(default=None, repr=False)  # trades and pnl by anchor hour (stats file rows)
    synthetic: bool = False
    wall_seconds: float = 0.0

    @property
    def stem(self) -> str:
        cfg = self.config
        return f"{cfg.symbol}_{cfg.start:%Y-%m-%d}_{cfg.end:%Y-%m-%d}"

    def paths(self, folder: Path | None = None) -> dict[str, Path]:
        cfg = self.config
        return output_paths(Path(folder or cfg.results_dir), cfg.symbol, cfg.start, cfg.end)


def parquet_bytes(table: pa.Table, synthetic: bool) -> bytes:
    """A table as parquet bytes, labelled SYNTHETIC or user data in its schema metadata (as every output)."""
    sink = io.BytesIO()
    write_table(table.replace_schema_metadata({b"atmburst.data": b"SYNTHETIC" if synthetic else b"user"}), sink)
    return sink.getvalue()


def finish_run(result: BacktestResult, label: str = "", time_label: str = "wall") -> FinishedRun:
    """The published form of ``result`` (files as bytes, statistics, metrics, console text)."""
    cfg = result.config
    stats = summary_stats(result.trades_table)
    tables = breakdown_records(result.trades_table, cfg.strike_step)
    paths = output_paths(cfg.results_dir, cfg.symbol, cfg.start, cfg.end)
    stem = paths["trades"].stem.replace("trades_", "")
    stats_doc = {"synthetic_data": result.synthetic, **stats,
                 "breakdowns": tables}
    files = {paths["trades"].name: parquet_bytes(result.trades_table, result.synthetic),
             paths["summary"].name: parquet_bytes(result.summary_table, result.synthetic),
             f"stats_{stem}.json": json.dumps(stats_doc, indent=2, default=str).encode()}
    metrics = metrics_for_tracking(stats)
    metrics.update({f"health.{k}": float(v) for k, v in result.health["problems"].items()})
    summary = result.summary_table
    console_parts = format_parts(result, paths, label=label, time_label=time_label)
    return FinishedRun(
        config=cfg, files=files,
        health={"synthetic_data": result.synthetic, **result.health, "wall_seconds": round(result.wall_seconds, 3)},
        stats=stats, metrics=metrics, console_parts=console_parts,
        daily_dates=summary.column("trade_date").cast(pa.int32()).to_numpy(zero_copy_only=False),
        daily_pnl=summary.column("pnl_pts").to_numpy(zero_copy_only=False),
        by_anchor=tables.get("anchor"), synthetic=result.synthetic, wall_seconds=result.wall_seconds)


def write_finished(run: FinishedRun, folder: Path | None = None, extra: dict[str, bytes] | None = None
                   ) -> dict[str, Path]:
    """Write ``run``'s files (and ``extra``: name -> bytes) into ``folder`` (default its results_dir) as
    one set; returns {name: path} plus the keys trades, summary and health. OSError (e.g. a full disk)
    is raised with nothing new left behind."""
    paths = run.paths(folder)
    contents = {**run.files, **(extra or {})}
    files = {name: (lambda fh, data=data: fh.write(data)) for name, data in contents.items()}
    return {**write_run_files(paths, files, run.health), **paths}


def load_result(paths: dict[str, Path], cfg: RunConfig, health: dict, synthetic: bool) -> BacktestResult:
    """A BacktestResult read back from a run's written trades and summary files (for its report)."""
    trades = pq.read_table(paths["trades"]).replace_schema_metadata(None)
    summary = pq.read_table(paths["summary"]).replace_schema_metadata(None)
    return BacktestResult(trades_table=trades, summary_table=summary, health=health,
                          wall_seconds=float(health.get("wall_seconds", 0.0)), config=cfg, synthetic=synthetic)
