"""The progress display of a fan-out: requests done out of total, with the batch's status,
never at 100% before every answer is in; on by policy only where a bar can be seen."""

from __future__ import annotations

import io
import sys
import time
import types
from collections.abc import Sequence
from typing import Any

import pytest
from helpers import CHAT, chat
from tqdm import tqdm

import batch_llm
from batch_llm import OpenAIProvider, RequestFuture, Scheduler
from batch_llm import _progress as progress_module
from batch_llm.emulator import Emulator


class Recorder:
    """A tqdm factory that keeps every bar it makes and every state each bar was drawn in."""

    def __init__(self, futures: Sequence[RequestFuture] = ()) -> None:
        self.futures = futures
        self.bars: list[Any] = []
        # (position, status text, every future done at that moment)
        self.history: list[tuple[int, str, bool]] = []

    def __call__(self, **kwargs: Any) -> Any:
        recorder = self

        class Bar(tqdm):  # type: ignore[type-arg]
            def _note(self) -> None:
                done = bool(recorder.futures) and all(f.done() for f in recorder.futures)
                recorder.history.append((int(self.n), str(self.postfix or ""), done))

            def update(self, n: float | None = 1) -> bool | None:
                result = super().update(n)
                self._note()
                return result

            def refresh(self, *args: Any, **kwargs: Any) -> None:
                super().refresh(*args, **kwargs)
                self._note()

        bar = Bar(file=io.StringIO(), mininterval=0, **kwargs)
        self.bars.append(bar)
        return bar

    @property
    def positions(self) -> list[int]:
        return [n for n, _, _ in self.history]

    def statuses(self) -> set[str]:
        return {status for _, status, _ in self.history}


@pytest.fixture
def provider(emulator: Emulator) -> OpenAIProvider:
    return OpenAIProvider(base_url=emulator.openai_base_url, api_key="sk-test", max_retries=0)


def test_bar_moves_from_zero_to_total_and_finishes_only_with_the_results(
    emulator: Emulator, provider: OpenAIProvider
) -> None:
    emulator.knobs.validating_delay = 0.15
    emulator.knobs.processing_delay = 0.8
    emulator.knobs.finalizing_delay = 0.4
    futures: list[RequestFuture] = []
    recorder = Recorder(futures)
    with Scheduler(poll_interval=0.02, poll_max=0.05, journal="off") as scheduler:
        futures += scheduler.submit_many(
            provider, CHAT, [chat(i, "gpt-4o-mini") for i in range(2000)]
        )
        results = batch_llm.wait(futures, progress=recorder, timeout=60)
    assert len(results) == 2000
    (bar,) = recorder.bars
    assert bar.total == 2000
    positions = recorder.positions
    assert positions[0] == 0
    assert positions == sorted(positions)  # monotonic
    assert any(0 < n < 2000 for n in positions)  # it moved while the batch ran
    assert positions[-1] == 2000
    # 2,000 is reached only with every answer in, and never shown (even rounded) before.
    assert all(done for n, _, done in recorder.history if n == 2000)
    assert all(n / 2000 < 0.995 for n, _, done in recorder.history if not done)
    finalizing = [n for n, status, _ in recorder.history if status == "finalizing"]
    assert finalizing and max(finalizing) < 2000
    assert {"validating", "in_progress", "finalizing", "done"} <= recorder.statuses()
    assert recorder.history[-1][1] == "done"


def test_several_batches_are_summed_and_described(
    emulator: Emulator, provider: OpenAIProvider
) -> None:
    emulator.knobs.processing_delay = 0.3
    recorder = Recorder()
    bodies = [chat(i, "gpt-4o-mini") for i in range(30)] + [chat(i, "gpt-4o") for i in range(30)]
    with Scheduler(poll_interval=0.02, poll_max=0.05, journal="off") as scheduler:
        futures = scheduler.submit_many(provider, CHAT, bodies)
        recorder.futures = futures
        batch_llm.wait(futures, progress=recorder, timeout=60)
        assert len(scheduler.batches) == 2
    assert recorder.bars[0].total == 60
    assert recorder.positions[-1] == 60
    assert any("2 in_progress" in status for status in recorder.statuses())


async def test_gather_shows_progress_too(emulator: Emulator, provider: OpenAIProvider) -> None:
    recorder = Recorder()
    with Scheduler(poll_interval=0.02, journal="off") as scheduler:
        futures = scheduler.submit_many(provider, CHAT, [chat(i, "gpt-4o-mini") for i in range(20)])
        recorder.futures = futures
        results = await batch_llm.gather(futures, progress=recorder)
    assert len(results) == 20
    assert recorder.positions[-1] == 20 and recorder.history[-1][1] == "done"


def test_scheduler_progress_setting_draws_for_its_fan_outs(
    emulator: Emulator, provider: OpenAIProvider
) -> None:
    recorder = Recorder()
    with Scheduler(window=0.05, poll_interval=0.02, journal="off", progress=recorder) as scheduler:
        batch_llm.wait(
            scheduler.submit_many(provider, CHAT, [chat(i, "gpt-4o-mini") for i in range(5)])
        )
        # A single call sent at once draws nothing; one the window collects draws its batch.
        batch_llm.wait([scheduler.submit(provider, CHAT, chat(99, "gpt-4o-mini"), flush=True)])
        scheduler.submit(provider, CHAT, chat(98, "gpt-4o-mini")).result(30)
    assert [bar.total for bar in recorder.bars] == [5, 1]


# -- when a bar is drawn -----------------------------------------------------------------------


@pytest.fixture
def fan_out() -> Any:
    """A pending fan-out's futures on an idle scheduler (its loop never starts)."""
    scheduler = Scheduler(journal="off")
    futures = RequestFuture.group(
        3, "openai", events=scheduler.events, progress=scheduler.progress, fan_out=True
    )
    yield futures
    for future in futures:
        if not future.done():
            future.set_result({})
    scheduler.close()


def _draws(futures: Sequence[RequestFuture], progress: Any = None) -> bool:
    display = progress_module.display_for(futures, progress)
    if display is None:
        return False
    display.close()
    return True


@pytest.fixture
def quiet_default_bar(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """The default tqdm factory, recorded instead of drawn."""
    recorder = Recorder()
    monkeypatch.setattr(progress_module, "_tqdm", recorder)
    return recorder


def test_off_by_default_when_output_is_neither_terminal_nor_notebook(
    fan_out: list[RequestFuture], monkeypatch: pytest.MonkeyPatch, quiet_default_bar: Recorder
) -> None:
    monkeypatch.delenv("BATCH_LLM_PROGRESS", raising=False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not progress_module.in_notebook()
    assert not _draws(fan_out)


def test_on_by_default_in_a_terminal_or_a_notebook(
    fan_out: list[RequestFuture], monkeypatch: pytest.MonkeyPatch, quiet_default_bar: Recorder
) -> None:
    monkeypatch.delenv("BATCH_LLM_PROGRESS", raising=False)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    assert _draws(fan_out)

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    kernel = types.SimpleNamespace(kernel=object())
    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: kernel  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    assert progress_module.in_notebook()
    assert _draws(fan_out)
    assert len(quiet_default_bar.bars) == 2


def test_environment_variable_forces_it_and_arguments_win(
    fan_out: list[RequestFuture], monkeypatch: pytest.MonkeyPatch, quiet_default_bar: Recorder
) -> None:
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    monkeypatch.setenv("BATCH_LLM_PROGRESS", "1")
    assert _draws(fan_out)
    assert not _draws(fan_out, progress=False)
    monkeypatch.setenv("BATCH_LLM_PROGRESS", "0")
    assert not _draws(fan_out)
    assert _draws(fan_out, progress=True)


def test_single_calls_and_dry_runs_draw_nothing_by_default(
    monkeypatch: pytest.MonkeyPatch, quiet_default_bar: Recorder
) -> None:
    monkeypatch.setenv("BATCH_LLM_PROGRESS", "1")
    with Scheduler(journal="off") as scheduler:
        single = RequestFuture.group(
            1, "openai", events=scheduler.events, progress=scheduler.progress, fan_out=False
        )
        assert not _draws(single)
        assert _draws(single, progress=True)
        single[0].set_result({})
    with Scheduler(dry_run=True) as planner:
        planned = RequestFuture.group(
            2, "openai", events=planner.events, progress=planner.progress, fan_out=True
        )
        assert not _draws(planned)
        for future in planned:
            future.set_result({})
    assert not _draws([RequestFuture()])  # hand-made futures are not a fan-out


def test_a_broken_bar_never_breaks_the_wait(emulator: Emulator, provider: OpenAIProvider) -> None:
    def broken(**_: Any) -> Any:
        raise RuntimeError("no display here")

    with Scheduler(poll_interval=0.02, journal="off") as scheduler:
        futures = scheduler.submit_many(provider, CHAT, [chat(i, "gpt-4o-mini") for i in range(3)])
        assert len(batch_llm.wait(futures, progress=broken, timeout=30)) == 3


def test_track_progress_serves_callers_that_wait_their_own_way(
    emulator: Emulator, provider: OpenAIProvider
) -> None:
    recorder = Recorder()
    with Scheduler(poll_interval=0.02, journal="off") as scheduler:
        futures = scheduler.submit_many(provider, CHAT, [chat(i, "gpt-4o-mini") for i in range(4)])
        with batch_llm.track_progress(futures, progress=recorder, desc="mine"):
            for future in futures:
                future.result(30)
    assert recorder.bars[0].desc == "mine"
    assert recorder.positions[-1] == 4


def test_env_value_that_is_not_a_flag_is_ignored(
    fan_out: list[RequestFuture], monkeypatch: pytest.MonkeyPatch, quiet_default_bar: Recorder
) -> None:
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    monkeypatch.setenv("BATCH_LLM_PROGRESS", "sometimes")
    assert not _draws(fan_out)


def test_single_calls_the_window_collects_get_a_bar_of_their_own(
    emulator: Emulator, provider: OpenAIProvider
) -> None:
    """Nobody waits on a window's single calls as a group, so the scheduler draws their
    batch: from when the window closes until the last answer, then closed at the total."""
    emulator.knobs.processing_delay = 0.3
    futures: list[RequestFuture] = []
    recorder = Recorder(futures)
    with Scheduler(
        window=0.1, poll_interval=0.02, poll_max=0.05, journal="off", progress=recorder
    ) as scheduler:
        futures += [scheduler.submit(provider, CHAT, chat(i)) for i in range(12)]
        batch_llm.wait(futures, progress=False)
        deadline = time.monotonic() + 5
        while not (recorder.bars and recorder.bars[0].disable) and time.monotonic() < deadline:
            time.sleep(0.02)
    (bar,) = recorder.bars
    assert bar.total == 12 and "12 single calls" in bar.desc
    assert recorder.positions[-1] == 12
    assert bar.disable  # closed once every call was answered
