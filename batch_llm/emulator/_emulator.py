"""The :class:`Emulator`: the store, the provider APIs and the HTTP server, wired together."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Self

from ._anthropic import AnthropicApi
from ._gemini import GeminiApi
from ._knobs import Knobs
from ._openai import OpenAIApi
from ._server import App, EmulatorHTTPServer, Router, add_control_routes
from ._stats import EmulatorStats, StatsRecorder
from ._store import Store

__all__ = ["Emulator"]


class Emulator:
    """A local HTTP server that speaks the providers' batch and realtime APIs.

    Example::

        with Emulator() as emu:
            client = openai.OpenAI(base_url=emu.openai_base_url, api_key="test")
            claude = anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="test")
            gemini = genai.Client(api_key="test", http_options={"base_url": emu.gemini_base_url})
            emu.knobs.line_error_every = 10   # takes effect on the next batch

    Args:
        host: interface to listen on; keep the default unless other machines must reach it.
        port: TCP port; 0 picks a free one (read it back from :attr:`url`).
        verbose: log every request to stderr.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, verbose: bool = False) -> None:
        self._host = host
        self._verbose = verbose
        self._knobs = Knobs()
        self._stats = StatsRecorder()
        self._store = Store(self._stats)
        self._router = Router()
        anthropic_api = AnthropicApi(self._store, self._get_knobs, self._stats)
        anthropic_api.register(self._router)
        # Before OpenAI: under /v1 both serve batches/ and files/ paths.
        self._gemini = GeminiApi(self._store, self._get_knobs, self._stats)
        self._gemini.register(self._router)
        openai_api = OpenAIApi(self._store, self._get_knobs, self._stats)
        openai_api.register(self._router)
        add_control_routes(
            self._router, knobs=self._get_knobs, stats=lambda: self.stats, reset=self.reset
        )
        self._app = App(
            self._router,
            self._get_knobs,
            self._stats,
            fallback=openai_api,
            fallbacks=[
                (anthropic_api.accepts, anthropic_api),
                (self._gemini.accepts, self._gemini),
            ],
        )
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._serving = False
        # Bound now, so that :attr:`url` (and a port picked by the OS) is known before serving:
        # a CLI can print where it listens, then block in serve_forever().
        self._server: EmulatorHTTPServer | None = self._new_server(port)
        self._port = int(self._server.server_address[1])

    def _new_server(self, port: int) -> EmulatorHTTPServer:
        return EmulatorHTTPServer((self._host, port), self._app, verbose=self._verbose)

    # ------------------------------------------------------------------ state

    def _get_knobs(self) -> Knobs:
        return self._knobs

    @property
    def knobs(self) -> Knobs:
        """The live knobs; change fields to make the next call or batch misbehave."""
        return self._knobs

    @knobs.setter
    def knobs(self, value: Knobs) -> None:
        # Copied in place so that code holding the old object keeps seeing the live knobs.
        self._knobs.update(value.to_json())

    @property
    def stats(self) -> EmulatorStats:
        """A snapshot of what clients have done since start or the last :meth:`reset`."""
        return self._stats.snapshot(self._store.batch_summaries)

    def reset(self) -> None:
        """Forget every file and batch, zero the stats, and put the knobs back to defaults."""
        self._store.reset()
        self._gemini.reset()
        self._stats.reset()
        self._knobs.reset()

    # ------------------------------------------------------------------ addresses

    @property
    def url(self) -> str:
        """The server's root URL, such as ``http://127.0.0.1:53123``.

        Raises:
            RuntimeError: the emulator was stopped (and not started again).
        """
        server = self._server
        if server is None:
            raise RuntimeError("The emulator is stopped; call start() to listen again.")
        host, port = server.server_address[:2]
        host = str(host)
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}"

    @property
    def openai_base_url(self) -> str:
        """The ``base_url`` to give an OpenAI client (the root URL plus ``/v1``)."""
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """The ``base_url`` to give an Anthropic client (the root URL: its paths carry ``/v1``)."""
        return self.url

    @property
    def gemini_base_url(self) -> str:
        """The ``base_url`` to give a google-genai client (``http_options={"base_url": ...}``);
        the SDK adds the API version (``/v1beta`` or ``/v1``) itself."""
        return self.url

    # ------------------------------------------------------------------ lifecycle

    def _claim(self) -> EmulatorHTTPServer:
        with self._lock:
            if self._serving:
                raise RuntimeError("The emulator is already running.")
            if self._server is None:
                # Started again after stop(): same port, so URLs handed out stay valid.
                self._server = self._new_server(self._port)
            self._serving = True
            return self._server

    def start(self) -> Self:
        """Serve in a background daemon thread; returns ``self``."""
        server = self._claim()
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="batch-llm-emulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until :meth:`stop` (from another thread) or Ctrl-C."""
        server = self._claim()
        try:
            server.serve_forever(poll_interval=0.05)
        except KeyboardInterrupt:
            pass
        finally:
            self._close()

    def stop(self) -> None:
        """Stop serving, close open connections and stop running batches. Idempotent."""
        with self._lock:
            server, serving, thread = self._server, self._serving, self._thread
        if server is None:
            return
        if serving:
            server.shutdown()  # returns once the serve_forever loop has exited
        if thread is not None:
            thread.join()
            self._thread = None
        # serve_forever() in another thread closes up itself when its loop returns.
        if thread is not None or not serving:
            self._close()

    def _close(self) -> None:
        with self._lock:
            server, self._server = self._server, None
            self._serving = False
        if server is None:
            return
        server.close_all()
        server.server_close()
        self._store.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "stopped"
        return f"<Emulator {where}>"
