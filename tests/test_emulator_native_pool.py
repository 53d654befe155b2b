"""The cores sharing a compiled plan's blocks of samples inside compiled code (emulator/native_pool.py): a step
of many streams gives the numbers and counts of the interpreted run whoever runs its blocks, helpers asleep,
callers at once, after a fork and after a helper's failure."""

import os
import threading
import time

import pytest

from gnaexp.emulator import native  # noqa: F401 — loaded: plans run compiled from their second run
from gnaexp.emulator import native_plan, native_pool, parallel
from test_emulator_plan_compile import MODELS, _plan, _same

pytestmark = pytest.mark.skipif(parallel.available_cores() < 2, reason="needs two cores")


@pytest.fixture
def gru(monkeypatch):
    """A GRU plan over 150 samples (a step of 150 streams: one task whose blocks the pool shares), blocks of 6
    samples; its interpreted run's result."""
    plan, feeds = _plan(MODELS["gru"](), 150, 2048.0, 15.0)
    interpreted = plan.run(feeds)
    plan.run(feeds)  # compiles
    assert plan._compiled.shares_rows
    monkeypatch.setattr(native_plan, "BLOCK_BYTES", 8 * plan._compiled.width * 6)
    return plan, feeds, interpreted


def test_a_step_of_many_streams_shares_its_blocks_with_a_helper(gru):
    plan, feeds, interpreted = gru
    pool = native_pool.pool()
    helped = 0
    for _ in range(30):
        seq = pool.seq
        _same(interpreted, plan.run(feeds))
        assert pool.seq == seq + 1 and sum(pool.blocks_run) == 25  # one job, every block run once
        helped += sum(pool.blocks_run[1:]) > 0
    assert helped > 0  # a spinning helper took blocks


def test_helpers_that_sleep_are_woken_and_end_when_idle(gru, monkeypatch):
    """A helper that spun out sleeps; the next call wakes it (and runs every block it has not claimed itself);
    after IDLE_SECONDS it ends, and a later call starts another."""
    plan, feeds, interpreted = gru
    monkeypatch.setattr(native_pool, "PATIENCE_SPINS", 1)
    for _ in range(10):
        _same(interpreted, plan.run(feeds))
        time.sleep(0.002)
    helpers = [t for t in threading.enumerate() if t.name.startswith("gnaexp-pool")]
    assert helpers
    for t in helpers:
        t.join(timeout=native_pool.IDLE_SECONDS + 5)
    assert not any(t.is_alive() for t in helpers)
    _same(interpreted, plan.run(feeds))
    assert any(t.name.startswith("gnaexp-pool") for t in threading.enumerate())


def test_callers_at_once_each_get_their_own_numbers(gru):
    """Two threads running plans at once: one job holds the pool, the other runs alone; every result exact."""
    plan, feeds, interpreted = gru
    other, other_feeds = _plan(MODELS["lstm_bidirectional"](), 150, 2048.0, 1.0)
    other_interpreted = other.run(other_feeds)
    other.run(other_feeds)
    failures = []

    def loop(p, f, expected):
        try:
            for _ in range(40):
                _same(expected, p.run(f))
        except BaseException as exc:  # noqa: BLE001 — reported below
            failures.append(exc)

    threads = [threading.Thread(target=loop, args=args) for args in
               ((plan, feeds, interpreted), (other, other_feeds, other_interpreted))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


def test_a_forked_child_runs_with_a_pool_of_its_own(gru):
    plan, feeds, interpreted = gru
    plan.run(feeds)  # the parent's pool and helpers exist
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the parent's helpers do not exist here
        try:
            _same(interpreted, plan.run(feeds))
            ok = native_pool.pool() is not None and sum(native_pool.pool().blocks_run) == 25
            os.write(write, b"ok" if ok else b"no")
        finally:
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert os.read(read, 2) == b"ok" and status == 0


def test_a_helpers_failure_is_raised_and_a_fresh_pool_serves_after(gru, monkeypatch):
    plan, feeds, interpreted = gru
    broken = native_pool.Pool(1)

    def fail(*args):
        raise MemoryError("no memory for the helper's block")

    broken.serve = fail
    monkeypatch.setattr(native_pool, "_POOL", broken)
    with pytest.raises(MemoryError, match="helper's block"):
        for _ in range(50):  # the first call may finish before its helper fails
            plan.run(feeds)
            time.sleep(0.01)
    assert native_pool.pool() is not broken
    _same(interpreted, plan.run(feeds))
