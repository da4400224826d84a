"""`fspo synth` against a rate-limited provider: a real OpenAI client and a local server that 429s.

The server (`bench.fixed_latency_server`, an OpenAI-compatible test double on 127.0.0.1) admits
at most `n` requests in any `window` seconds and answers 429 with `Retry-After` beyond, as hosted
providers do. The runs use the tiny domain's first three stages (11 requests).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from bench.fixed_latency_server import FixedLatencyServer, synth_answer
from fspo_train.cli.synth import build_parser
from fspo_train.synth import RunnerSettings, load_domain, run_synth
from fspo_train.synth.ratelimit import RateLimits, TokenBucket
from tests.train.synth.conftest import TINY_DOMAIN, make_run

pytestmark = pytest.mark.integration

STAGES = ["personas", "questions", "views"]
REQUESTS = 4 + 1 + 6  # 4 personas, one question batch, the views of 6 questions


def _run(out: Path, server: FixedLatencyServer, settings: RunnerSettings) -> None:
    domain = load_domain(TINY_DOMAIN).with_overrides(global_count=6, specific_per_user=0)
    spec = f"openai:scripted@{server.base_url}"
    run = make_run(out, domain=domain, generators=[spec], labeller=spec, settings=settings)
    run_synth(run, stages=STAGES)


def _statuses(out: Path) -> list[str]:
    rows = [
        json.loads(line) for path in out.glob("*.jsonl") for line in path.read_text().splitlines()
    ]
    return [row["status"] for row in rows if "status" in row]


def test_429s_are_waited_out_as_the_server_asks_without_spending_retries(tmp_path: Path) -> None:
    """Sequential requests (concurrency 1), no retries allowed: only 429-aware waiting finishes."""
    settings = RunnerSettings(
        concurrency=1, max_retries=0, backoff_base=0.0, progress=False, fsync=False
    )
    with FixedLatencyServer(answer=synth_answer, rate_limit=(3, 1.0)) as server:
        _run(tmp_path / "run", server, settings)
        accepted, rejected = server.requests, server.rejected
    assert len(accepted) == REQUESTS
    assert _statuses(tmp_path / "run") == ["ok"] * REQUESTS  # no failed item
    assert rejected  # the server did throttle the run
    assert settings.limits.rate_limited == len(rejected)
    arrivals = sorted([r.at for r in accepted] + [r.at for r in rejected])
    for rejection in rejected:
        later = [t for t in arrivals if t > rejection.at]
        assert later, "the refused request was never sent again"
        # The next request waited the `Retry-After` the server gave (less clock jitter).
        assert later[0] - rejection.at >= rejection.retry_after - 0.05


def _most_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    return max(sum(1 for u in times if t <= u < t + window) for t in times)


def test_a_requests_per_minute_limit_keeps_the_run_under_the_provider_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """8 requests in flight, 180/min allowed by the client, 240/min by the server: no 429."""
    settings = RunnerSettings(
        concurrency=8,
        max_retries=0,
        backoff_base=0.0,
        progress=True,
        fsync=False,
        requests_per_minute=180,
    )
    with FixedLatencyServer(answer=synth_answer, rate_limit=(4, 1.0)) as server:
        _run(tmp_path / "run", server, settings)
        accepted, rejected = server.requests, server.rejected
    assert rejected == []
    assert _statuses(tmp_path / "run") == ["ok"] * REQUESTS
    times = [r.at for r in accepted]
    assert _most_in_window(times, 1.0) <= 3 + 1  # 3/s, plus one at a window's edge
    observed = (len(times) - 1) / (max(times) - min(times))
    assert observed <= 180 / 60 * 1.1  # requests per second, measured at the server
    assert "req/min" in capsys.readouterr().err  # the progress bar shows the rate


def test_the_flags_reach_the_runner_settings() -> None:
    required = ["--out", "o", "--domain", "roleplay", "--generator", "offline"]
    required += ["--labeller", "offline"]
    limits = ["--requests-per-minute", "500", "--tokens-per-minute", "2e5"]
    args = build_parser().parse_args(["synth", *required, *limits])
    assert (args.requests_per_minute, args.tokens_per_minute) == (500.0, 200000.0)
    assert args.max_rate_limit_wait == 900.0


def test_the_token_bucket_paces_tokens_and_settles_the_true_count() -> None:
    bucket = TokenBucket(tokens_per_minute=600)  # 10 tokens/s, 100 at most
    start = 1000.0
    bucket._last = start  # a fixed clock from here on
    assert bucket.try_acquire(80, now=start) == 0.0
    assert bucket.try_acquire(40, now=start) == pytest.approx(2.0)  # 20 left, 20 more at 10/s
    assert bucket.try_acquire(40, now=start + 2.0) == 0.0
    bucket.settle(30)  # the answer used 30 tokens more than reserved: the bucket owes them
    assert bucket.try_acquire(10, now=start + 2.0) == pytest.approx(4.0)
    assert bucket.try_acquire(500, now=start + 20.0) == 0.0  # larger than the bucket: a full one


def test_a_pause_holds_every_request_and_is_counted() -> None:
    limits = RateLimits()
    limits.pause(0.5)
    limits.pause(0.1)  # a shorter pause does not shorten the first
    assert limits.rate_limited == 2

    async def two_requests() -> float:
        start = time.monotonic()
        await asyncio.gather(limits.wait_turn(10), limits.wait_turn(10))
        return time.monotonic() - start

    assert asyncio.run(two_requests()) >= 0.45
    limits.record(10, 25)
    assert limits.describe().endswith(", 2 x 429")
    with pytest.raises(ValueError, match="requests_per_minute must be > 0"):
        RateLimits(requests_per_minute=0)
