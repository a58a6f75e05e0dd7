"""Ctrl-C during long Rust work: KeyboardInterrupt within a chunk's time, no lost state."""

import _thread
import threading
import time

import numpy as np
import pytest

import g3rs
from conftest import QUERY_IMAGES, photo


def interrupt_after(seconds):
    timer = threading.Timer(seconds, _thread.interrupt_main)
    timer.start()
    return timer


def test_a_long_search_stops_at_ctrl_c():
    rng = np.random.default_rng(3)
    database = g3rs.Database.build(rng.standard_normal((20_000, 64), dtype=np.float32), rng.uniform(-60, 60, (20_000, 2)))
    queries = rng.standard_normal((8 * 1024, 64), dtype=np.float32)
    started = time.perf_counter()
    database.search(queries[:1024], k=10)
    chunk = time.perf_counter() - started
    timer = interrupt_after(max(1.5 * chunk, 0.05))
    started = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        database.search(queries, k=10)
    elapsed = time.perf_counter() - started
    timer.cancel()
    # Eight chunks uninterrupted; the interrupt lands in the second and ends at its end.
    assert elapsed < 5 * chunk + 1.0
    # The database is intact.
    assert database.search(queries[:2], k=3).rows.shape == (2, 3)


class Slow:
    def __init__(self):
        self.calls = 0

    def score(self, query, candidates):
        self.calls += 1
        time.sleep(0.25)
        return [0.0] * len(candidates)


def test_a_long_run_stops_at_ctrl_c(photo_database, g3_checkpoint, clip_directory):
    slow = Slow()
    settings = {
        "models.clip": str(clip_directory),
        "models.g3_checkpoint": str(g3_checkpoint),
        "database": photo_database,
        "pool.concurrent_queries": 1,
    }
    pipeline = g3rs.Pipeline("g3", settings=settings, verifier=slow)
    photos = [photo(QUERY_IMAGES[0])] * 16
    timer = interrupt_after(0.4)
    started = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        pipeline.locate(photos)
    elapsed = time.perf_counter() - started
    timer.cancel()
    assert elapsed < 16 * 0.25 / 2
    assert slow.calls < 16
    # The pipeline goes on serving.
    (prediction,) = pipeline.locate(photos[:1])
    assert prediction.image_id == str(photos[0])
