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
import asyncio.base_events
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
# A span's record as published: [address, buffer]; the buffer is immutable once built, and stays
# alive while a slot holds the list. The address becomes 0 (NULL) when the span ends.
_NO_RECORD = (0, None)
# Where an OpenTelemetry context keeps the record of its span, found on the hot path with one
# attribute read (contexts are immutable, so their span never changes).
_CACHED = "_causeway_thread_ctx_record"


def _record(span):
    context = span.get_span_context()
    raw = context.trace_id.to_bytes(16, "big") + context.span_id.to_bytes(8, "big") + _RECORD_TAIL
    buffer = ctypes.create_string_buffer(raw, len(raw))
    return [ctypes.addressof(buffer), buffer]


class _ThreadSlot:
    """One thread's slot (its otel_thread_ctx_v1) and what it holds; written by that thread only."""

    __slots__ = ("ident", "view", "context", "record", "records")

    def __init__(self, address, records):
        self.ident = threading.get_ident()
        self.view = memoryview((ctypes.c_char * 8).from_address(address)).cast("B").cast("Q")
        self.context = None
        self.record = _NO_RECORD
        self.records = records

    def publish(self, context):
        """Make the record hold the span of the OpenTelemetry context `context`."""
        self.context = context
        try:
            record = getattr(context, _CACHED)
        except AttributeError:
            record = self._record_of(context.get(_SPAN_KEY))
            try:
                setattr(context, _CACHED, record)
            except AttributeError:
                pass  # a context that takes no attributes: its record is looked up each time
        # One aligned 8-byte store: a reader sees the old record or the new one, both whole and
        # alive (the slot holds the one it points to).
        self.record = record
        self.view[0] = record[0]

    def _record_of(self, span):
        if span is None:
            return _NO_RECORD
        context = span.get_span_context()
        record = self.records.get(context.span_id)
        if record is not None:
            return record
        # A span of another provider, or ended: a record of its own while it records.
        return _record(span) if span.is_recording() and context.is_valid else _NO_RECORD


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
        # The records of started spans by span id, built at start; the SDK ends a span with a
        # ReadableSpan copy, and its span id finds the record to unpublish.
        self.records = {}
        local = threading.local()
        slot_address = lib.causeway_thread_ctx_slot

        def thread_slot():
            try:
                return local.slot
            except AttributeError:
                local.slot = _ThreadSlot(slot_address(), self.records)
                return local.slot

        self._hook(runtime, current, thread_slot)

    def started(self, span):
        self.records[span.get_span_context().span_id] = _record(span)

    def ended(self, span):
        record = self.records.pop(span.get_span_context().span_id, None)
        if record is not None:
            # Contexts that still hold the span publish NULL from now on; a slot publishing it
            # keeps the buffer.
            record[0] = 0

    @staticmethod
    def _hook(runtime, current, thread_slot):
        attach, detach = runtime.attach, runtime.detach

        def attach_published(context):
            token = attach(context)
            thread_slot().publish(context)
            return token

        def detach_published(token):
            detach(token)
            thread_slot().publish(current.get())

        runtime.attach, runtime.detach = attach_published, detach_published

        # Each turn of a loop, before it waits for I/O: the loop's own context (usually no span),
        # and the loop remembers its thread's slot for the handles of the turn (a loop may run
        # on another thread later: run_forever sets _thread_id). The turn's ready handles then
        # each publish their context: the C Task runs a step as loop.call_soon(step,
        # context=task_context), so a step's handle holds its task's context. These are the hot
        # path: no thread-local lookup, and a store only when the context changed.
        run_once = asyncio.base_events.BaseEventLoop._run_once
        run = asyncio.events.Handle._run
        root = contextvars.Context().run(current.get)

        def run_once_published(loop):
            slot = getattr(loop, "_causeway_thread_slot", None)
            if slot is None or slot.ident != loop._thread_id:
                slot = loop._causeway_thread_slot = thread_slot()
            context = current.get()
            if context is not slot.context:
                slot.publish(context)
            run_once(loop)

        def run_published(handle):
            try:
                slot = handle._loop._causeway_thread_slot
            except AttributeError:
                # A handle run outside a loop's turn.
                slot = thread_slot()
            context = handle._context.get(current, root)
            if context is not slot.context:
                slot.publish(context)
            run(handle)

        asyncio.base_events.BaseEventLoop._run_once = run_once_published
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
