"""What the LlamaIndex LLM and embedding wrappers, and the codecs behind them, share.

Public because two packages use it: ``llama_index.embeddings.batch_llm`` (as LlamaIndex's own
embedding integrations import their LLM sibling's helpers) and the codecs an application
registers for a provider of its own. It stays here rather than in ``batch_llm`` because it
speaks in LlamaIndex and provider-SDK terms, which the core must not depend on: how a wrapper
sorts its constructor arguments and pickles itself, which registered codec serves a model,
and how the openai and google-genai SDKs name a request and a server.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import json
import os
import pickle
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import batch_llm
from batch_llm import BatchRequest, CodecEntry

if TYPE_CHECKING:
    import openai

__all__ = [
    "capture_openai_request",
    "gemini_base_url",
    "gemini_provider",
    "openai_batch_base_url",
    "openai_inner_base_url",
    "openai_provider",
    "pickle_state",
    "refuse_azure_openai",
    "refuse_vertex_ai",
    "require_codec",
    "resolve_settings",
    "run_sync",
    "split_model_spec",
]

T = TypeVar("T")

# What llama-index-llms-openai and llama-index-embeddings-openai fall back to when nothing is
# configured: their ``api_base`` is then this string, never None.
_LLAMA_INDEX_DEFAULT_OPENAI_BASE = "https://api.openai.com/v1"
# Where google-genai sends requests unless told otherwise.
_GOOGLE_BASE_URL = "https://generativelanguage.googleapis.com"


def split_model_spec(spec: str) -> tuple[str, str]:
    """``"openai:gpt-4o-mini"`` -> ``("openai", "gpt-4o-mini")``."""
    provider, sep, model = spec.partition(":")
    if not sep or not provider or not model:
        raise ValueError(
            f"model must look like 'provider:model', such as 'openai:gpt-4o-mini'; got {spec!r}"
        )
    return provider.strip().lower(), model.strip()


def require_codec(
    kind: str, model: object = None, *, provider: str | None = None, wrapper: str
) -> CodecEntry:
    """``batch_llm.find_codec`` for a wrapper's constructor: the codec registered under
    ``kind`` for ``model`` (an instance to wrap) or for ``provider`` (the name before the colon
    in ``"provider:model"``), else the error that lists what is registered. ``wrapper`` names
    the wrapper in that error."""
    entry = batch_llm.find_codec(kind, model, provider=provider)
    if entry is not None:
        return entry
    registered = list(reversed(batch_llm.codec_entries(kind)))  # the order they were added
    if model is not None:
        classes = ", ".join(dict.fromkeys(e.target.replace(":", ".") for e in registered))
        raise TypeError(f"{wrapper} cannot wrap {type(model).__name__}; it wraps {classes}")
    names = dict.fromkeys(
        e.provider + (f" (or {', '.join(e.aliases)})" if e.aliases else "") for e in registered
    )
    raise ValueError(
        f"unknown provider {provider!r} in {wrapper} model; supported: {', '.join(names)}"
    )


def openai_inner_base_url(api_base: str | None) -> str | None:
    """The ``api_base`` to build a LlamaIndex OpenAI class with, from our own argument.

    LlamaIndex reads ``OPENAI_API_BASE`` and otherwise pins api.openai.com, ignoring the
    ``OPENAI_BASE_URL`` that the openai SDK and batch-llm honour; honour it here too, so the
    wrapped class (used for realtime query embeddings) and the batches agree on the server.
    """
    if api_base:
        return api_base
    if os.environ.get("OPENAI_API_BASE"):
        return None  # LlamaIndex resolves it
    return os.environ.get("OPENAI_BASE_URL") or None


def openai_batch_base_url(api_base: str | None) -> str | None:
    """The ``base_url`` for the batch adapter, from a LlamaIndex OpenAI class's ``api_base``.

    LlamaIndex's default means nothing was configured: leave it to the adapter, which honours
    ``OPENAI_BASE_URL`` like the openai SDK does.
    """
    if not api_base or api_base.rstrip("/") == _LLAMA_INDEX_DEFAULT_OPENAI_BASE:
        return None
    return api_base


def gemini_base_url(client: Any) -> str | None:
    """The server a google-genai client talks to; None for Google's own (then the adapter,
    like the SDK, honours ``GOOGLE_GEMINI_BASE_URL``)."""
    base_url = str(client._api_client._http_options.base_url or "").rstrip("/")
    return None if not base_url or base_url == _GOOGLE_BASE_URL else base_url


def openai_provider(wrapped: Any) -> batch_llm.Provider:
    """The batch adapter for a LlamaIndex OpenAI class, LLM or embedding: its key, its default
    headers and its server."""
    return batch_llm.resolve_provider(
        "openai",
        api_key=wrapped.api_key or None,
        base_url=openai_batch_base_url(wrapped.api_base),
        default_headers=wrapped.default_headers,
    )


def gemini_provider(client: Any) -> batch_llm.Provider:
    """The batch adapter for the google-genai client of a LlamaIndex Gemini class, LLM or
    embedding: its key, its server and its API version."""
    api_client = client._api_client
    return batch_llm.resolve_provider(
        "gemini",
        api_key=api_client.api_key or None,
        base_url=gemini_base_url(client),
        api_version=api_client._http_options.api_version,
    )


def refuse_azure_openai(wrapped: object, *, wrapper: str, instead: str) -> None:
    """Raise ``ValueError`` if ``wrapped`` is an Azure OpenAI class: Azure's batches use
    deployments and an endpoint of their own, which the OpenAI adapter does not speak yet.
    ``wrapper`` names the wrapper, ``instead`` the class to wrap."""
    if "azure" in type(wrapped).__module__:
        raise ValueError(
            f"{wrapper} cannot batch {type(wrapped).__name__} yet: Azure OpenAI batches use "
            f"deployments and a different endpoint; wrap {instead}"
        )


def refuse_vertex_ai(client: Any, *, wrapper: str, wrapped: str) -> None:
    """Raise ``ValueError`` if a google-genai ``client`` is on Vertex AI, whose batch prediction
    reads its input from Cloud Storage or BigQuery, never inline or from an upload.
    ``wrapper`` names the wrapper, ``wrapped`` the class it was given."""
    if client.vertexai:
        raise ValueError(
            f"{wrapper} cannot batch {wrapped} on Vertex AI: its batch prediction reads from "
            "Cloud Storage or BigQuery; use the Gemini Developer API (api_key)"
        )


@functools.cache
def _capture_client() -> openai.OpenAI:
    """An openai SDK client whose transport records each request instead of sending it."""
    import httpx
    import openai

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={})

    return openai.OpenAI(
        api_key="batch-llm-capture",
        base_url="http://batch-llm.invalid/v1",
        max_retries=0,
        # No environment: proxies would make httpx build real transports (and TLS contexts).
        http_client=httpx.Client(transport=httpx.MockTransport(answer), trust_env=False),
    )


def capture_openai_request(call: Callable[[openai.OpenAI], Any]) -> BatchRequest:
    """The request the openai SDK sends for ``call(client)``, as path and JSON body.

    ``call`` must use ``with_raw_response`` so that nothing is parsed. Going through the SDK's
    public method, rather than rebuilding its body, gives exactly what the realtime call sends:
    its defaults (``encoding_format="base64"`` for embeddings), its transforms (SDK objects in
    messages become JSON, ``extra_body`` is merged), and its errors for bad arguments.
    """
    raw = call(_capture_client())
    request = raw.http_request
    return BatchRequest(request.url.path, json.loads(request.content))


def pickle_state(state: dict[str, Any]) -> dict[str, Any]:
    """A wrapper's pickled state: its fields without the scheduler or anything unpicklable.

    ``BaseComponent.__getstate__`` drops unpicklable values by deleting them from the live
    object's own ``__dict__``, which would leave the wrapper without its scheduler and codec
    after being pickled; this works on a copy. Unpickling calls ``__init__`` with the fields,
    which builds the codec again.
    """
    fields = {}
    for key, value in state["__dict__"].items():
        if key == "scheduler":
            continue
        try:
            pickle.dumps(value)
        except Exception:  # as BaseComponent does: what cannot travel is left behind
            continue
        fields[key] = value
    return {**state, "__dict__": fields, "__pydantic_private__": None}


@functools.cache
def _sync_runner() -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(
        max_workers=4, thread_name_prefix="batch-llm-llama-sync"
    )


def run_sync(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run the coroutine ``make()`` to completion from synchronous code.

    Some integrations build their requests with coroutines and run them with ``asyncio.run``,
    which fails where the calling thread already runs a loop (a Jupyter cell calling ``chat``).
    There the coroutine runs on a loop of its own in a helper thread instead; the caller waits,
    as it waits for any synchronous call.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    return _sync_runner().submit(lambda: asyncio.run(make())).result()


def resolve_settings(
    kind: str,
    wrapped: Any,
    model: str | None,
    kwargs: dict[str, Any],
    *,
    model_params: Sequence[str],
    inherited: Sequence[str],
    example: str,
    what: str,
) -> tuple[str, str, dict[str, Any]] | None:
    """Sort a wrapper's constructor arguments (``kwargs`` is edited in place).

    ``base_url`` becomes ``api_base`` (Anthropic's and Gemini's name for it). With a
    ``wrapped`` LlamaIndex object, passing ``model`` or any of ``model_params`` too is an
    error, and the ``inherited`` fields it sets are copied over: returns None. Otherwise
    ``model`` must be ``provider:model``: returns the provider, the model name and the
    ``model_params`` taken out of ``kwargs``. ``kind`` names the wrapper in errors, ``example``
    a model it takes and ``what`` the objects it wraps.
    """
    base_url = kwargs.pop("base_url", None)
    if base_url is not None:
        if kwargs.get("api_base") not in (None, base_url):
            raise TypeError(f"{kind} got both api_base and base_url; pass one")
        kwargs["api_base"] = base_url
    if wrapped is None:
        if model is None:
            raise TypeError(
                f"{kind} needs model='provider:model' (such as {example!r}) or {what} to wrap"
            )
        provider, name = split_model_spec(model)
        return provider, name, {k: kwargs.pop(k, None) for k in model_params}
    given = [k for k in model_params if kwargs.get(k) is not None]
    if model is not None or given:
        raise TypeError(
            f"{kind} wraps {type(wrapped).__name__} with its own settings; configure "
            f"{', '.join(given) or 'model'} on it instead"
        )
    for name in inherited:
        if kwargs.get(name) is None and getattr(wrapped, name, None) is not None:
            kwargs[name] = getattr(wrapped, name)
    for name in model_params:
        kwargs.pop(name, None)
    return None
