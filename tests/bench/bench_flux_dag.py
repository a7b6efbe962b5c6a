"""The flux at national scale through the path the deposit DAG uses.

The delta step leaves chunks of one file's worth (Parquet); each chunk is built in its
own task (``build``), then each file is validated in its own task (``validate``), all
in-process. Here two worker slots stand for a Celery worker of concurrency 2 on this
2-core machine: chunks are built two at a time, then files validated two at a time,
each task in a fresh process, reading its input included. Prints figures, asserts
nothing about time.
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

SLOTS = 2


def _task(step: str, work: str, arg: str) -> tuple[dict, float]:
    """One task in a fresh worker process: the pipeline step, and the process's peak RSS."""
    from cpf_deposit import pipeline
    from cpf_deposit.config import load_config

    config = load_config()
    if step == "build":
        out = pipeline.build_step(config, Path(work), arg)
    else:
        out = pipeline.validate_step(config, Path(work), arg)
    return out, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _chunks(n: int, work: Path, limits) -> list[str]:
    from cpf_deposit.pipeline import SELECTED, _write_chunks
    from tests.bench.synthetic import synthetic_passages

    return sorted(
        _write_chunks(
            synthetic_passages(n),
            work / SELECTED,
            limits.max_passages_per_file,
            limits.max_file_bytes,
        )
    )


def _stage(pool, step: str, work: Path, args: list[str]) -> tuple[list[dict], float, float]:
    t0 = time.perf_counter()
    results = list(pool.map(_task, [step] * len(args), [str(work)] * len(args), args))
    return [r for r, _ in results], time.perf_counter() - t0, max(m for _, m in results)


def run(n: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="cpf-bench-") as home:
        os.environ["CPF_DEPOSIT_HOME"] = home
        os.environ.pop("CPF_DEPOSIT_CONFIG", None)
        from cpf_deposit.config import load_config

        work = Path(home) / "work"
        work.mkdir()
        chunks = _chunks(n, work, load_config().limits)
        # max_tasks_per_child=1: every task is a fresh process, as Airflow runs it.
        ctx = get_context("spawn")
        with ProcessPoolExecutor(SLOTS, mp_context=ctx, max_tasks_per_child=1) as pool:
            t0 = time.perf_counter()
            built, build_s, build_rss = _stage(pool, "build", work, chunks)
            files = [f["file"] for b in built for f in b["files"]]
            checked, validate_s, validate_rss = _stage(pool, "validate", work, files)
            total = time.perf_counter() - t0
        assert all(c["valid"] for c in checked)
        sizes = [f["size"] for b in built for f in b["files"]]
    return {
        "benchmark": "flux build + validate, DAG path (2 worker slots)",
        "passages": n,
        "wall_s": round(total, 2),
        "build_s": round(build_s, 2),
        "validate_s": round(validate_s, 2),
        "chunks": len(chunks),
        "files": len(files),
        "total_mb": round(sum(sizes) / 1e6, 1),
        "peak_rss_build_task_mb": round(build_rss, 1),
        "peak_rss_validate_task_mb": round(validate_rss, 1),
    }
