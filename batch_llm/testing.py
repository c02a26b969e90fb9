"""pytest fixtures for code that uses batch-llm: an offline provider emulator per test session,
and ``ProviderContract``, the suite a provider adapter passes.

Installed as a pytest plugin (entry point ``batch_llm``), so the fixtures are available without
any import::

    def test_my_pipeline(batch_llm_openai_env):
        emu = batch_llm_openai_env          # OPENAI_BASE_URL and OPENAI_API_KEY point at it
        emu.knobs.line_error_every = 5      # make every fifth batch line fail
        ...
        assert emu.stats.batches_created == 1

``batch_llm_anthropic_env`` and ``batch_llm_gemini_env`` do the same for the Anthropic and
google-genai SDKs (``ANTHROPIC_*`` and ``GOOGLE_GEMINI_BASE_URL``/``GOOGLE_API_KEY``).

Sockets: with pytest-socket's ``--disable-socket``, tests that use these fixtures may still reach
127.0.0.1 (and nothing else).
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from .emulator import Emulator

__all__ = [
    "FakeClock",
    "ProviderContract",
    "batch_llm_anthropic_env",
    "batch_llm_emulator",
    "batch_llm_gemini_env",
    "batch_llm_openai_env",
]

_DUMMY_KEY = "sk-batch-llm-emulator"
_GEMINI_KEY_VARS = ("GOOGLE_API_KEY", "GEMINI_API_KEY")


def _allow_localhost(request: pytest.FixtureRequest) -> None:
    """Let this test reach the emulator when pytest-socket restricts the network."""
    # Whatever name the plugin was registered under, its module is loaded if it is active.
    pytest_socket = sys.modules.get("pytest_socket")
    if pytest_socket is None:
        return
    blocked = socket.socket is not pytest_socket._true_socket
    restricted = socket.socket.connect is not pytest_socket._true_connect
    if not (blocked or restricted):
        return
    hosts = ["127.0.0.1", "::1", "localhost"]
    configured = request.config.getoption("--allow-hosts", default=None)
    if isinstance(configured, str):
        hosts.extend(h for h in configured.split(",") if h)
    pytest_socket.enable_socket()
    pytest_socket.socket_allow_hosts(hosts)
    # pytest-socket's own teardown hook lifts these settings after the test.


@pytest.fixture(scope="session")
def _batch_llm_emulator_server() -> Iterator[Emulator]:
    emulator = Emulator(host="127.0.0.1", port=0).start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def batch_llm_emulator(request: pytest.FixtureRequest) -> Emulator:
    """The session's emulator, reset (files, batches, stats, knobs) for this test."""
    _allow_localhost(request)
    emulator: Emulator = request.getfixturevalue("_batch_llm_emulator_server")
    emulator.reset()
    return emulator


@pytest.fixture
def batch_llm_openai_env(batch_llm_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """The emulator, with ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY`` set to use it."""
    monkeypatch.setenv("OPENAI_BASE_URL", batch_llm_emulator.openai_base_url)
    monkeypatch.setenv("OPENAI_API_KEY", _DUMMY_KEY)
    return batch_llm_emulator


@pytest.fixture
def batch_llm_anthropic_env(
    batch_llm_emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> Emulator:
    """The emulator, with ``ANTHROPIC_BASE_URL`` and ``ANTHROPIC_API_KEY`` set to use it."""
    monkeypatch.setenv("ANTHROPIC_BASE_URL", batch_llm_emulator.anthropic_base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", _DUMMY_KEY)
    return batch_llm_emulator


@pytest.fixture
def batch_llm_gemini_env(batch_llm_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """The emulator, with ``GOOGLE_GEMINI_BASE_URL`` and ``GOOGLE_API_KEY`` set to use it.

    google-genai reads both; ``GEMINI_API_KEY`` is cleared so the SDK does not warn about two.
    """
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", batch_llm_emulator.gemini_base_url)
    for name in _GEMINI_KEY_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GOOGLE_API_KEY", _DUMMY_KEY)
    return batch_llm_emulator


class FakeClock:
    """Time for tests that must not wait: ``now()`` is a clock that moves only when something
    sleeps on ``sleep`` (or a test calls ``advance``). Hand both to the scheduler and a
    ``FakeProvider`` so a day-long batch runs in milliseconds::

        clock = FakeClock()
        provider = FakeProvider(knobs=Knobs(processing_delay=86_400), clock=clock.now)
        scheduler = Scheduler(journal="off", clock=clock.now, sleep=clock.sleep,
                              poll_policy=PollPolicy(clock=clock.now))

    Attributes:
        slept: every wait asked for, in order.
    """

    def __init__(self, start: float | None = None) -> None:
        # Unix time by default: journals and providers stamp batches with it.
        self._now = time.time() if start is None else start
        self.slept: list[float] = []

    def now(self) -> float:
        """The current fake time, in seconds."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time on."""
        self._now += max(0.0, seconds)

    async def sleep(self, seconds: float) -> None:
        """Move time on by ``seconds`` at once, and let other tasks run."""
        self.slept.append(seconds)
        self.advance(seconds)
        await asyncio.sleep(0)


class ProviderContract:
    """The behaviour every provider adapter must have, as a pytest suite to subclass.

    A new adapter is done when a test module subclasses this and passes::

        class TestMyProvider(ProviderContract):
            endpoint = "/v1/chat/completions"

            @pytest.fixture
            def provider(self) -> Provider:
                return MyProvider(base_url=..., api_key="test")

            def body(self, i: int) -> dict[str, Any]:
                return {"model": "m", "messages": [{"role": "user", "content": f"{i} + 1?"}]}

    Override ``failing_body`` to return a body the provider answers with an error for that
    line alone (the per-line error test is skipped without one), and ``factory_options`` to
    give the ``base_url``/``api_key`` that reach the same server through the adapter's
    registered factory, as the CLI does (None: only check that the factory takes them).
    Optional duties are tested when the adapter declares them in ``capabilities``.
    """

    endpoint: str = "/v1/chat/completions"
    #: Seconds a test waits for a batch to end.
    timeout: float = 60.0

    @pytest.fixture
    def provider(self) -> Any:
        """A fresh adapter under test."""
        raise NotImplementedError("a ProviderContract subclass defines the provider fixture")

    def body(self, i: int) -> dict[str, Any]:
        """A request body the provider answers; ``i`` makes each one different."""
        raise NotImplementedError("a ProviderContract subclass defines body(i)")

    def failing_body(self) -> dict[str, Any] | None:
        """A body whose line fails alone (None: skip that test)."""
        return None

    def factory_options(self, provider: Any) -> dict[str, Any] | None:
        """``base_url``/``api_key`` that reach ``provider``'s server through its factory."""
        return None

    # -- helpers ----------------------------------------------------------------------------

    def _lines(self, provider: Any, bodies: list[dict[str, Any]]) -> list[Any]:
        lines = []
        for i, body in enumerate(bodies):
            line = provider.prepare(self.endpoint, body)
            line.custom_id = f"line-{i}"
            lines.append(line)
        return lines

    def _run(self, provider: Any, work: Callable[[], Awaitable[Any]]) -> Any:
        async def run() -> Any:
            try:
                return await work()
            finally:
                await provider.aclose()

        return asyncio.run(run())

    async def _until_ended(self, provider: Any, status: Any) -> Any:
        loop = asyncio.get_running_loop()
        until = loop.time() + self.timeout
        while not status.ended:
            assert loop.time() < until, f"batch {status.batch_id} did not end in {self.timeout} s"
            await asyncio.sleep(0.02)
            status = await provider.poll(status)
        return status

    async def _answers(self, provider: Any, status: Any, keep: Any = None) -> dict[str, Any]:
        answers: dict[str, Any] = {}
        async for rows in provider.results(status, sink=keep):
            for custom_id, outcome in rows:
                assert custom_id not in answers, f"{custom_id} answered twice"
                answers[custom_id] = outcome
        return answers

    def _complete_batch(
        self, provider: Any, bodies: list[dict[str, Any]], metadata: dict[str, str] | None = None
    ) -> tuple[Any, dict[str, Any], list[tuple[str, bytes]]]:
        lines = self._lines(provider, bodies)
        kept: list[tuple[str, bytes]] = []

        async def work() -> tuple[Any, dict[str, Any]]:
            status = await provider.submit(lines[0].key, lines, metadata or {})
            status = await self._until_ended(provider, status)
            answers = await self._answers(
                provider, status, lambda name, chunk: kept.append((name, chunk))
            )
            return status, answers

        status, answers = self._run(provider, work)
        return status, answers, kept

    # -- required -----------------------------------------------------------------------------

    def test_declares_its_name_and_only_known_capabilities(self, provider: Any) -> None:
        from .providers._base import CAPABILITIES

        assert isinstance(provider.name, str) and provider.name
        assert set(provider.capabilities) <= CAPABILITIES
        for capability in CAPABILITIES:
            assert provider.supports(capability) == (capability in provider.capabilities)

    def test_prepare_encodes_a_line_and_refuses_bad_input(self, provider: Any) -> None:
        from ._errors import InvalidRequestError

        line = provider.prepare(self.endpoint, self.body(0))
        assert isinstance(line.data, bytes) and line.data
        assert line.nbytes >= len(line.data)
        assert line.inputs >= 1
        hash(line.key)
        limits = provider.limits(line.key)
        assert limits.max_requests >= 1 and limits.max_bytes >= line.nbytes
        with pytest.raises(InvalidRequestError):
            provider.prepare(self.endpoint, ["not", "a", "mapping"])
        with pytest.raises(InvalidRequestError):
            provider.prepare("/v1/no-such-endpoint-anywhere", self.body(0))

    def test_a_batch_runs_to_its_end_and_answers_every_line_once(self, provider: Any) -> None:
        status, answers, _ = self._complete_batch(provider, [self.body(i) for i in range(5)])
        assert status.ended and status.outcome == "completed"
        assert status.batch_id
        assert sorted(answers) == [f"line-{i}" for i in range(5)]
        assert not any(isinstance(outcome, BaseException) for outcome in answers.values())

    def test_replaying_kept_bytes_gives_the_same_answers(self, provider: Any) -> None:
        status, answers, kept = self._complete_batch(provider, [self.body(i) for i in range(3)])
        assert kept, "results() must hand every raw chunk to its sink"

        async def replay() -> dict[str, Any]:
            replayed: dict[str, Any] = {}
            bare = type(status)(
                status.batch_id, "ended", status.raw_status, endpoint=status.endpoint
            )
            async for rows in provider.replay(bare, kept):
                replayed.update(rows)
            return replayed

        assert self._run(provider, replay) == answers

    def test_a_failing_line_fails_alone(self, provider: Any) -> None:
        bad = self.failing_body()
        if bad is None:
            pytest.skip("no failing_body() for this provider")
        _, answers, _ = self._complete_batch(provider, [self.body(0), bad, self.body(2)])
        assert isinstance(answers["line-1"], BaseException)
        assert not isinstance(answers["line-0"], BaseException)
        assert not isinstance(answers["line-2"], BaseException)

    def test_a_cancelled_batch_ends(self, provider: Any) -> None:
        lines = self._lines(provider, [self.body(i) for i in range(3)])

        async def work() -> tuple[Any, BaseException | None]:
            status = await provider.submit(lines[0].key, lines, {})
            try:
                await provider.cancel(status)
            except Exception as exc:  # a provider may refuse to cancel a batch already done
                return await provider.poll(status), exc
            return await self._until_ended(provider, status), None

        ended, refused = self._run(provider, work)
        if refused is not None:
            assert ended.ended, f"cancel refused a batch still running: {refused}"
        assert ended.outcome in ("cancelled", "completed")

    def test_an_unknown_batch_is_not_found(self, provider: Any) -> None:
        from .providers import BatchStatus

        probe = BatchStatus("batch-llm-no-such-batch", "in_progress", "in_progress")
        with pytest.raises(Exception) as raised:
            self._run(provider, lambda: provider.poll(probe))
        assert provider.is_not_found(raised.value)

    def test_a_fan_out_through_the_scheduler_is_one_batch_in_order(self, provider: Any) -> None:
        from ._retry import RetryPolicy
        from ._scheduler import Scheduler
        from ._waiting import wait

        bodies = [self.body(i) for i in range(6)]
        retry = RetryPolicy(attempts=3, initial=0.01, cap=0.05)
        with Scheduler(journal="off", poll_interval=0.02, poll_max=0.2, retry=retry) as sched:
            answers = wait(sched.submit_many(provider, self.endpoint, bodies), timeout=60)
            assert len(sched.batches) == 1
        assert len(answers) == len(bodies)

    def test_its_description_and_identity_hold_no_secret(self, provider: Any) -> None:
        identity = provider.identity()
        assert identity == provider.identity() and isinstance(identity, str)
        options = self.factory_options(provider) or {}
        key = options.get("api_key")
        if key:
            assert key not in provider.describe() and key not in identity

    def test_its_factory_takes_base_url_and_api_key(self, provider: Any) -> None:
        from .providers import resolve_provider

        options = self.factory_options(provider)
        built = resolve_provider(provider.name, **(options or {"base_url": None, "api_key": "k"}))
        assert built.name == provider.name
        if options is None:
            return
        status, _, _ = self._complete_batch(provider, [self.body(0)])
        again = self._run(built, lambda: built.poll(status))
        assert again.batch_id == status.batch_id and again.ended

    # -- optional, as declared ----------------------------------------------------------------

    def test_reconcile_finds_a_batch_by_its_intent(self, provider: Any) -> None:
        from .providers._base import INTENT_KEY

        if not provider.supports("reconcile"):
            pytest.skip("does not declare reconcile")
        lines = self._lines(provider, [self.body(i) for i in range(2)])
        intent = "contract-" + str(id(self))
        since = time.time() - 60

        async def work() -> tuple[Any, Any]:
            made = await provider.submit(lines[0].key, lines, {INTENT_KEY: intent})
            found = await provider.find_batch(intent, since, len(lines))
            return made, found

        made, found = self._run(provider, work)
        assert found is not None and found.batch_id == made.batch_id

    def test_list_shows_the_newest_batches(self, provider: Any) -> None:
        if not provider.supports("list"):
            pytest.skip("does not declare list")
        status, _, _ = self._complete_batch(provider, [self.body(0)])
        listed = self._run(provider, lambda: provider.list_batches(20))
        assert status.batch_id in [s.batch_id for s in listed]

    def test_usage_reads_the_tokens_of_an_answer(self, provider: Any) -> None:
        if not provider.supports("usage"):
            pytest.skip("does not declare usage")
        _, answers, _ = self._complete_batch(provider, [self.body(0)])
        line = provider.prepare(self.endpoint, self.body(0))
        usage = provider.usage(line.endpoint, answers["line-0"], line.key)
        assert usage is not None and usage.input_tokens > 0

    def test_realtime_answers_as_the_batch_does(self, provider: Any) -> None:
        if not provider.supports("realtime"):
            pytest.skip("does not declare realtime")
        _, answers, _ = self._complete_batch(provider, [self.body(0)])
        line = provider.prepare(self.endpoint, self.body(0))
        assert self._run(provider, lambda: provider.realtime(line)) == answers["line-0"]
