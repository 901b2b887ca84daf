"""Module 06 headline figures: what a retry policy and `except Exception` buy.

1. Calls made to get through a 0.5 s outage: a `while True` retry loop against a tenacity
   policy (transient-only, full-jitter exponential backoff, capped, 8 attempts, 10 s deadline).
2. Seconds from Ctrl-C (SIGINT) to exit for a worker whose jobs sit in a bare `except:`
   against one that catches `Exception`.
3. Jitter at the cap: 200 clients that failed together; the most retries in one 10 ms window
   at the 8th (capped) retry, `wait_exponential_jitter` against full jitter.
4. Retry amplification: calls a failing bank gets for one request when 3 layers each make 3
   attempts, against retrying in one layer.

Figures 1 and 2 are medians of 5 runs; 3 and 4 are deterministic (seeded, simulated clock).
Run: .venv/bin/python benchmarks/bench_errors.py
"""

from __future__ import annotations

import contextlib
import functools
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import tenacity

RUNS = 5
OUTAGE = 0.5  # seconds the fake dependency answers 503
WORKER = """
import time
print("ready", flush=True)
for job in range(30):
    try:
        time.sleep(0.05)
    {handler}
        continue
"""


class Flaky:
    """Answers 503 until OUTAGE seconds have passed, then "ok"; counts its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.up_at = time.monotonic() + OUTAGE

    def __call__(self) -> str:
        self.calls += 1
        if time.monotonic() < self.up_at:
            request = httpx.Request("GET", "http://inventory/stock")
            response = httpx.Response(503, request=request)
            raise httpx.HTTPStatusError("503", request=request, response=response)
        return "ok"


def hammer(call: Callable[[], str]) -> str:
    while True:
        try:
            return call()
        except Exception:
            continue


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code in {429, 502, 503, 504}
    return isinstance(exc, httpx.TransportError)


def polite(call: Callable[[], str]) -> str:
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_transient),
        wait=tenacity.wait_random_exponential(multiplier=0.05, max=1.0),
        stop=tenacity.stop_after_attempt(8) | tenacity.stop_before_delay(10),
        reraise=True,
    )
    result: str = retrying(call)
    return result


def calls_through_outage(policy: Callable[[Callable[[], str]], str]) -> int:
    dependency = Flaky()
    policy(dependency)
    return dependency.calls


def busiest_10ms_at_last_retry(wait: tenacity.wait.wait_base, clients: int = 200) -> int:
    """200 clients fail together and retry 8 times; the most retries in one 10 ms window
    at the last retry (the wait is capped by then)."""
    last: list[float] = []

    def down() -> None:
        raise ConnectionError("down")

    for _ in range(clients):
        waits: list[float] = []  # the injected sleep records the waits instead of waiting
        policy = tenacity.Retrying(
            wait=wait, stop=tenacity.stop_after_attempt(9), reraise=True, sleep=waits.append
        )
        with contextlib.suppress(ConnectionError):
            policy(down)
        last.append(sum(waits))
    buckets: dict[int, int] = {}
    for moment in last:
        buckets[int(moment / 0.01)] = buckets.get(int(moment / 0.01), 0) + 1
    return max(buckets.values())


def bank_calls(layers_that_retry: int, attempts: int = 3) -> int:
    calls = [0]

    def bank() -> None:
        calls[0] += 1
        raise ConnectionError("bank down")

    call: Callable[[], None] = bank
    for _ in range(layers_that_retry):
        layer = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(attempts), wait=tenacity.wait_none(), reraise=True
        )
        call = functools.partial(layer, call)
    with contextlib.suppress(ConnectionError):
        call()
    return calls[0]


def seconds_to_obey_ctrl_c(handler: str, folder: Path) -> float:
    script = folder / "worker.py"
    script.write_text(WORKER.format(handler=handler))
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(0.2)
        pressed = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
        return time.perf_counter() - pressed
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def main() -> None:
    naive = statistics.median(calls_through_outage(hammer) for _ in range(RUNS))
    backoff = statistics.median(calls_through_outage(polite) for _ in range(RUNS))
    print(f"calls to get through a {OUTAGE} s outage (median of {RUNS}):")
    print(f"  while-True retry loop   {naive:>10.0f}")
    print(f"  tenacity retry policy   {backoff:>10.0f}")
    print(f"  ratio                   {naive / backoff:>10.0f}x fewer calls")
    with tempfile.TemporaryDirectory(prefix="prodready-bench-errors-") as scratch:
        folder = Path(scratch)
        bare = statistics.median(seconds_to_obey_ctrl_c("except:", folder) for _ in range(RUNS))
        fixed = statistics.median(
            seconds_to_obey_ctrl_c("except Exception:", folder) for _ in range(RUNS)
        )
    print(f"seconds from Ctrl-C to exit (median of {RUNS}):")
    print(f"  bare except:            {bare:>10.3f}")
    print(f"  except Exception:       {fixed:>10.3f}")
    print(f"  ratio                   {bare / fixed:>10.0f}x sooner")
    random.seed(6)
    capped = busiest_10ms_at_last_retry(
        tenacity.wait_exponential_jitter(multiplier=0.1, max=2.0, jitter=0.1)
    )
    full = busiest_10ms_at_last_retry(tenacity.wait_random_exponential(multiplier=0.1, max=2.0))
    print("200 clients, busiest 10 ms at the 8th (capped) retry:")
    print(f"  wait_exponential_jitter {capped:>10d}")
    print(f"  full jitter             {full:>10d}")
    print(f"  ratio                   {capped / full:>10.1f}x lower peak")
    print("calls to a failing bank for one request (3 attempts per retrying layer):")
    print(f"  3 layers retry          {bank_calls(3):>10d}")
    print(f"  1 layer retries         {bank_calls(1):>10d}")


if __name__ == "__main__":
    main()
