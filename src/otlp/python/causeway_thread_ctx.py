"""For Python apps on the OpenTelemetry SDK: publish each thread's active span where Causeway's
probes read it at event time (the OpenTelemetry thread context, OTEP 4947).

Causeway attaches a kernel event (a GPU sync, a futex wait, an fsync) to the span active on its
thread when it began. On an asyncio loop many request spans are open on one thread; without this,
a wait of request A can land in request B, started later. With it, the thread's
`otel_thread_ctx_v1` record holds the span of the task that runs: it is updated when a span is
made current or left (context attach/detach) and when the loop runs a step of another task
(asyncio's Handle._run; uvloop's handles are not Python and are not followed).

Build the library (a CPython extension module) next to this file, once, with the headers of the
Python that runs the app (python3-dev on Debian):

    cc -O2 -shared -fPIC $(python3-config --includes) -o libcauseway_thread_ctx.so causeway_thread_ctx.c

then add one line next to ThreadTidSpanProcessor:

    provider.add_span_processor(ThreadTidSpanProcessor())
    provider.add_span_processor(ThreadContextSpanProcessor())

If the library cannot be loaded (or CAUSEWAY_THREAD_CTX_LIB names another path that cannot),
it warns once and the app runs on without thread contexts.
"""
import asyncio.base_events
import asyncio.events
import contextvars
import importlib.machinery
import importlib.util
import os
import threading
import warnings

from opentelemetry import context as context_api
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.trace.propagation import _SPAN_KEY

LIBRARY = os.environ.get(
    "CAUSEWAY_THREAD_CTX_LIB", os.path.join(os.path.dirname(os.path.abspath(__file__)), "libcauseway_thread_ctx.so")
)
_MODULE = "_causeway_thread_ctx"


def _load(path):
    """The extension module at `path` (whatever the file's name: it keeps the one the probes see)."""
    loader = importlib.machinery.ExtensionFileLoader(_MODULE, path)
    module = importlib.util.module_from_spec(importlib.util.spec_from_file_location(_MODULE, path, loader=loader))
    loader.exec_module(module)
    return module


class _Raising:
    """Stands in for a handle's context while asyncio's own Handle._run handles what the callback
    raised (run in C): it puts the context back, then raises the exception where asyncio's
    `self._context.run(...)` would have."""

    __slots__ = ("handle", "context", "error")

    def __init__(self, handle, error):
        self.handle, self.context, self.error = handle, handle._context, error

    def run(self, callback, *args):
        self.handle._context, error = self.context, self.error
        try:
            raise error
        finally:
            del error, self  # no cycle through the traceback's frame


def _callback_failed(run, handle, error):
    """The exception `error` a handle's callback raised, handled as asyncio's `run` (Handle._run)
    handles it: SystemExit and KeyboardInterrupt go on, others go to the loop's exception handler."""
    handle._context = _Raising(handle, error)
    run(handle)


class _Writer:
    """The process's one writer: the module's hooks, and the records of the spans it knows."""

    def __init__(self, library):
        module = _load(library)
        runtime = context_api._RUNTIME_CONTEXT
        current = getattr(runtime, "_current_context", None)
        if current is None:
            raise RuntimeError(f"the OpenTelemetry runtime context is {type(runtime).__name__}, not contextvars")
        self._new_record = module.Record
        # The records of started spans by span id, built at start; the SDK ends a span with a
        # ReadableSpan copy, and its span id finds the record to unpublish.
        self.records = {}
        module.configure(current, contextvars.Context().run(current.get), self._record_of, _callback_failed)
        self._hook(module, runtime, current)

    def started(self, span):
        self.records[span.get_span_context().span_id] = self._record(span)

    def ended(self, span):
        record = self.records.pop(span.get_span_context().span_id, None)
        if record is not None:
            # Contexts that still hold the span publish NULL from now on; a slot publishing it
            # keeps it.
            record.end()

    def _record(self, span):
        context = span.get_span_context()
        return self._new_record(context.trace_id.to_bytes(16, "big") + context.span_id.to_bytes(8, "big"))

    def _record_of(self, context):
        """The record of an OpenTelemetry context's span (None: none); the module caches it on the
        context, which is immutable."""
        span = context.get(_SPAN_KEY)
        if span is None:
            return None
        record = self.records.get(span.get_span_context().span_id)
        if record is not None:
            return record
        # A span of another provider, or ended: a record of its own while it records.
        return self._record(span) if span.is_recording() and span.get_span_context().is_valid else None

    @staticmethod
    def _hook(module, runtime, current):
        attach, detach, publish = runtime.attach, runtime.detach, module.publish

        def attach_published(context):
            token = attach(context)
            publish(context)
            return token

        def detach_published(token):
            detach(token)
            publish(current.get())

        runtime.attach, runtime.detach = attach_published, detach_published
        # Each turn of a loop, before it waits for I/O: the loop's own context (usually no span).
        # Then each ready handle, before it runs: the span of its context (the C Task runs a step
        # as loop.call_soon(step, context=task_context), so a step's handle holds its task's
        # context). The hot path, in C: a store only when the context changed.
        loop = asyncio.base_events.BaseEventLoop
        loop._run_once = module.hook_turn(loop._run_once)
        asyncio.events.Handle._run = module.hook_handle(asyncio.events.Handle._run)


_writer = None
_writer_lock = threading.Lock()


def _install():
    global _writer
    with _writer_lock:
        if _writer is None:
            try:
                _writer = _Writer(LIBRARY)
            except (ImportError, OSError, AttributeError, RuntimeError) as error:
                warnings.warn(
                    f"causeway_thread_ctx: no thread contexts are published ({error}); Causeway attaches kernel events"
                    " to the span latest started on their thread. Build the library with: cc -O2 -shared -fPIC"
                    " $(python3-config --includes) -o libcauseway_thread_ctx.so causeway_thread_ctx.c",
                    RuntimeWarning,
                    stacklevel=3,
                )
                _writer = False
        return _writer or None


class ThreadContextSpanProcessor(SpanProcessor):
    """Publishes the active span of each thread and each asyncio task for Causeway's probes."""

    def __init__(self):
        self._writer = _install()

    def on_start(self, span, parent_context=None):
        if self._writer is not None:
            self._writer.started(span)

    def on_end(self, span):
        if self._writer is not None:
            self._writer.ended(span)
