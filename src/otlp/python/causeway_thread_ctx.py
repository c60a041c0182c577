"""For Python apps on the OpenTelemetry SDK: publish each thread's active span where Causeway's
probes read it at event time (the OpenTelemetry thread context, OTEP 4947).

Causeway attaches a kernel event (a GPU sync, a futex wait, an fsync) to the span active on its
thread when it began. On an asyncio loop many request spans are open on one thread; without this,
a wait of request A can land in request B, started later. With it, the thread's
`otel_thread_ctx_v1` record holds the span of the task that runs: it is updated when a span is
made current or left (context attach/detach) and when the loop runs a step of another task
(asyncio's Handle._run; uvloop's handles are not Python and are not followed).

Build the library next to this file, once (a C compiler, no Python headers):

    cc -O2 -shared -fPIC -o libcauseway_thread_ctx.so causeway_thread_ctx.c

then add one line next to ThreadTidSpanProcessor:

    provider.add_span_processor(ThreadTidSpanProcessor())
    provider.add_span_processor(ThreadContextSpanProcessor())

If the library cannot be loaded (or CAUSEWAY_THREAD_CTX_LIB names another path that cannot),
it warns once and the app runs on without thread contexts.
"""
import asyncio.events
import contextvars
import ctypes
import os
import threading
import warnings

from opentelemetry import context as context_api
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.trace.propagation import _SPAN_KEY

LIBRARY = os.environ.get(
    "CAUSEWAY_THREAD_CTX_LIB", os.path.join(os.path.dirname(os.path.abspath(__file__)), "libcauseway_thread_ctx.so")
)

# The record: trace_id[16], span_id[8], valid = 1, reserved, attrs_data_size = 0 (no attributes).
_RECORD_TAIL = b"\x01\x00\x00\x00"


def _record(span):
    """A published span's record, immutable once built: (address, buffer keeping it alive)."""
    context = span.get_span_context()
    raw = context.trace_id.to_bytes(16, "big") + context.span_id.to_bytes(8, "big") + _RECORD_TAIL
    buffer = ctypes.create_string_buffer(raw, len(raw))
    return ctypes.addressof(buffer), buffer


class _Writer:
    """The process's one writer: the library, the hooks, and the records of the spans it knows."""

    def __init__(self, library):
        lib = ctypes.CDLL(library)
        lib.causeway_thread_ctx_slot.restype = ctypes.c_void_p
        lib.causeway_thread_ctx_slot.argtypes = []
        runtime = context_api._RUNTIME_CONTEXT
        current = getattr(runtime, "_current_context", None)
        if current is None:
            raise RuntimeError(f"the OpenTelemetry runtime context is {type(runtime).__name__}, not contextvars")
        self.current = current
        # What a context that never attached anything holds: the variable's default.
        self.root = contextvars.Context().run(current.get)
        # Records of started spans, built once at start and dropped at end; spans that ended or
        # belong to another provider get a record built when published, kept while published.
        self.records = {}
        # The SDK ends a span with a ReadableSpan copy: its span id finds the span started.
        self.spans = {}
        slot_of = lib.causeway_thread_ctx_slot

        class _ThreadSlot(threading.local):
            # Each thread's own slot (its TLS variable), and what it holds.
            def __init__(self):
                slot = (ctypes.c_char * 8).from_address(slot_of())
                self.view = memoryview(slot).cast("B").cast("Q")
                self.context = None
                self.span = None
                self.record = None

        self.slot = _ThreadSlot()
        self._hook(runtime)

    def publish(self, context):
        """Make the calling thread's record hold the span of the OpenTelemetry context `context`."""
        slot = self.slot
        if context is slot.context:
            return
        slot.context = context
        span = context.get(_SPAN_KEY)
        if span is slot.span:
            return
        slot.span = span
        record = self.records.get(span)
        if record is None and span is not None and span.is_recording() and span.get_span_context().is_valid:
            record = _record(span)
        # One aligned 8-byte store: the reader sees the old record or the new one, both whole.
        slot.record = record
        slot.view[0] = record[0] if record is not None else 0

    def started(self, span):
        self.records[span] = _record(span)
        self.spans[span.get_span_context().span_id] = span

    def ended(self, span):
        self.records.pop(self.spans.pop(span.get_span_context().span_id, None), None)

    def _hook(self, runtime):
        publish, current, root = self.publish, self.current, self.root
        attach, detach = runtime.attach, runtime.detach

        def attach_published(context):
            token = attach(context)
            publish(context)
            return token

        def detach_published(token):
            detach(token)
            publish(current.get())

        runtime.attach, runtime.detach = attach_published, detach_published

        # The C Task runs each step as loop.call_soon(step, context=task_context): the handle's
        # context is the task's, and after the step the thread's is the loop's own again.
        run = asyncio.events.Handle._run

        def run_published(handle):
            publish(handle._context.get(current, root))
            try:
                run(handle)
            finally:
                publish(current.get())

        asyncio.events.Handle._run = run_published


_writer = None
_writer_lock = threading.Lock()


def _install():
    global _writer
    with _writer_lock:
        if _writer is None:
            try:
                _writer = _Writer(LIBRARY)
            except (OSError, AttributeError, RuntimeError) as error:
                warnings.warn(
                    f"causeway_thread_ctx: no thread contexts are published ({error}); Causeway attaches kernel events"
                    " to the span latest started on their thread. Build the library with: cc -O2 -shared -fPIC -o"
                    " libcauseway_thread_ctx.so causeway_thread_ctx.c",
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
