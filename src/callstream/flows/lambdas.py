"""Lambdas of a placed call: handlers bound by name and invoked within a block's time limit.

A flow names a Lambda by ARN, function name, block Identifier or designer name
(:meth:`~callstream.flows.effects.LambdaRef.lookup`); a call binds each to a
:data:`LambdaSpec`:

* ``module:function`` or ``path/to/file.py:function`` (:func:`load_handler`), or a callable:
  called as ``handler(event, context)`` on a daemon thread with a :class:`LambdaContext`
  (an ``async def`` handler's coroutine is awaited);
* an ``http(s)://`` URL that receives the event as a JSON POST and answers with JSON.

Either way the invocation has the block's time limit in real time (not media time); a
handler that overruns it is abandoned and the block takes its Error branch. The response
goes through JSON, as Lambda's would. :class:`LambdaInvoker` does this for one call and
records every invocation (:class:`LambdaCall`).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import inspect
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp

from callstream.flows.effects import Failed, InvokeLambda, LambdaResult, Result

__all__ = [
    "LambdaCall",
    "LambdaContext",
    "LambdaHandler",
    "LambdaInvoker",
    "LambdaSpec",
    "is_url",
    "load_handler",
]

LambdaHandler = Callable[[dict[str, Any], Any], Any]
LambdaSpec = str | LambdaHandler
"""A Lambda binding: ``module:function``, ``path/to/file.py:function``, an ``http(s)://``
URL, or a callable ``handler(event, context)``."""


class LambdaCall(NamedTuple):
    """One Lambda invocation: the binding name, the event sent, and the decoded response
    (a :class:`~callstream.flows.effects.Failed` when it failed or timed out)."""

    name: str
    payload: dict[str, Any]
    response: Any


@dataclass(slots=True)
class LambdaContext:
    """The ``context`` a local handler receives (the attributes Lambda's Python runtime
    provides)."""

    function_name: str
    invoked_function_arn: str
    deadline: float
    """``time.monotonic()`` value at which the invocation times out."""
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 128
    log_group_name: str = ""
    log_stream_name: str = "callstream"

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the block's time limit."""
        return max(0, int((self.deadline - time.monotonic()) * 1000))


def load_handler(spec: str) -> LambdaHandler:
    """Import ``module:function`` (or ``path/to/file.py:function``) and return the function.

    Raises :class:`ValueError` for a spec without ``:``, :class:`ImportError` /
    :class:`AttributeError` when the module or function is missing.
    """
    module_name, sep, func_name = spec.rpartition(":")
    if not sep or not module_name or not func_name:
        raise ValueError(f"a Lambda handler is module:function, not {spec!r}")
    if module_name.endswith(".py") or os.sep in module_name or "/" in module_name:
        path = Path(module_name).resolve()
        unique = f"callstream_lambda_{abs(hash(str(path)))}"
        module = sys.modules.get(unique)
        if module is None:
            loader_spec = importlib.util.spec_from_file_location(unique, path)
            if loader_spec is None or loader_spec.loader is None:
                raise ImportError(f"cannot load {path}")
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[unique] = module
            try:
                loader_spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(unique, None)
                raise
    else:
        # As `python -m` would: handlers next to where the user runs the command import.
        if os.getcwd() not in sys.path and "" not in sys.path:
            sys.path.insert(0, os.getcwd())
        module = importlib.import_module(module_name)
    handler = getattr(module, func_name)
    if not callable(handler):
        raise AttributeError(f"{spec} is not callable")
    return handler  # type: ignore[no-any-return]


def is_url(spec: str) -> bool:
    """Is this binding an ``http(s)://`` URL?"""
    return spec.startswith(("http://", "https://"))


async def _in_daemon_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` on a daemon thread: a handler that overruns its time limit is
    abandoned (the block takes its Error branch) without keeping the process alive, as
    ``asyncio.to_thread``'s pool threads would."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if not future.done():
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    def run() -> None:
        try:
            outcome: tuple[bool, Any] = (True, fn(*args))
        except BaseException as exc:
            outcome = (False, exc)
        with contextlib.suppress(RuntimeError):  # the call may be over, its loop closed
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(target=run, name="callstream-lambda", daemon=True).start()
    return await future


class LambdaInvoker:
    """Invokes one call's Lambdas (``lambdas``: binding name -> :data:`LambdaSpec`) and
    records each invocation in :attr:`calls`; progress lines go to ``emit``. URL handlers
    are POSTed with ``http``."""

    def __init__(
        self,
        lambdas: Mapping[str, LambdaSpec],
        *,
        http: aiohttp.ClientSession,
        emit: Callable[[str], None],
    ) -> None:
        self.lambdas = lambdas
        self.http = http
        self.emit = emit
        self.calls: list[LambdaCall] = []
        self.background: set[asyncio.Task[Any]] = set()
        self._handlers: dict[str, LambdaHandler] = {}

    async def invoke(self, effect: InvokeLambda) -> Result:
        """Invoke the bound handler or URL within the block's time limit."""
        ref = effect.function
        spec = ref.lookup(self.lambdas)
        name = next((k for k in ref.keys if k in self.lambdas), ref.keys[0] if ref.keys else "")
        payload: dict[str, Any] = json.loads(json.dumps(effect.payload))
        if spec is None:
            failed = Failed(f"no Lambda bound for {', '.join(ref.keys) or ref.identifier}")
            self.calls.append(LambdaCall(name, payload, failed))
            self.emit(f"lambda {name}: {failed.message}")
            return failed
        if effect.invocation_type == "ASYNCHRONOUS":
            task = asyncio.create_task(self._call(name, spec, payload, effect.timeout_s, ref.arn))
            self.background.add(task)
            task.add_done_callback(self.background.discard)
            self.emit(f"lambda {name} invoked asynchronously")
            return LambdaResult(None)
        return await self._call(name, spec, payload, effect.timeout_s, ref.arn)

    async def _call(
        self, name: str, spec: LambdaSpec, payload: dict[str, Any], timeout_s: int, arn: str
    ) -> Result:
        started = time.monotonic()
        result: Result
        try:
            if isinstance(spec, str) and is_url(spec):
                response = await asyncio.wait_for(self._post(spec, payload), timeout_s)
            else:
                handler = self._handler(spec)
                context = LambdaContext(
                    function_name=name,
                    invoked_function_arn=arn,
                    deadline=started + timeout_s,
                )
                event = json.loads(json.dumps(payload))  # the handler's own copy
                response = await asyncio.wait_for(
                    _in_daemon_thread(handler, event, context), timeout_s
                )
                if inspect.isawaitable(response):
                    response = await asyncio.wait_for(response, timeout_s)
                response = json.loads(json.dumps(response))
            elapsed = time.monotonic() - started
            result = LambdaResult(response, elapsed_s=elapsed)
            self.calls.append(LambdaCall(name, payload, response))
            self.emit(f"lambda {name} -> {json.dumps(response)[:200]} ({elapsed:.2f} s)")
        except TimeoutError:
            result = Failed(f"timed out after {timeout_s} s", timeout=True)
            self.calls.append(LambdaCall(name, payload, result))
            self.emit(f"lambda {name} timed out after {timeout_s} s")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            result = Failed(f"{type(exc).__name__}: {exc}")
            self.calls.append(LambdaCall(name, payload, result))
            self.emit(f"lambda {name} failed: {result.message}")
        return result

    def _handler(self, spec: LambdaSpec) -> LambdaHandler:
        if not isinstance(spec, str):
            return spec
        handler = self._handlers.get(spec)
        if handler is None:
            handler = self._handlers[spec] = load_handler(spec)
        return handler

    async def _post(self, url: str, payload: dict[str, Any]) -> Any:
        async with self.http.post(url, json=payload) as resp:
            text = await resp.text()
            if resp.status >= 300:
                raise RuntimeError(f"HTTP {resp.status}: {text[:200]}")
            return json.loads(text) if text.strip() else None

    async def wait_background(self, timeout: float = 10.0) -> None:
        """Let asynchronous invocations finish (up to ``timeout`` s)."""
        if self.background:
            await asyncio.wait(set(self.background), timeout=timeout)
