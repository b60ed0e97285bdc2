"""Single flight: a burst of misses for one key computes once."""

from __future__ import annotations

import asyncio

from shared.clients.singleflight import SingleFlight


async def test_concurrent_misses_for_one_key_compute_once() -> None:
    flight: SingleFlight[int] = SingleFlight()
    calls = 0

    async def compute() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return 42

    results = await asyncio.gather(*(flight.run("k", compute) for _ in range(50)))
    assert results == [42] * 50
    assert calls == 1
    assert await flight.run("k", compute) == 42  # the next miss computes afresh
    assert calls == 2


async def test_a_failure_reaches_every_waiter_and_is_not_remembered() -> None:
    flight: SingleFlight[int] = SingleFlight()

    async def fail() -> int:
        await asyncio.sleep(0.01)
        raise RuntimeError("database down")

    results = await asyncio.gather(
        *(flight.run("k", fail) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)

    async def recover() -> int:
        return 7

    assert await flight.run("k", recover) == 7


async def test_different_keys_do_not_wait_for_each_other() -> None:
    flight: SingleFlight[str] = SingleFlight()
    release = asyncio.Event()

    async def slow() -> str:
        await release.wait()
        return "slow"

    async def fast() -> str:
        return "fast"

    waiting = asyncio.create_task(flight.run("a", slow))
    assert await asyncio.wait_for(flight.run("b", fast), timeout=1) == "fast"
    release.set()
    assert await waiting == "slow"
