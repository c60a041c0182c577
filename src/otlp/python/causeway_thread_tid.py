"""For Python apps on the OpenTelemetry SDK: a span processor that records the OS thread id.

Causeway attaches kernel events to the span that was running on their thread, so spans need
the kernel's thread id (`causeway.thread.tid`); OpenTelemetry's `thread.id` is Python's own
`threading.get_ident()`, not the kernel's. Copy this file next to your app, or import it:

    from causeway_thread_tid import ThreadTidSpanProcessor
    provider = TracerProvider()
    provider.add_span_processor(ThreadTidSpanProcessor())
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
"""
import threading

from opentelemetry.sdk.trace import SpanProcessor


class ThreadTidSpanProcessor(SpanProcessor):
    """Sets causeway.thread.tid on every span, from the thread that starts it."""

    def on_start(self, span, parent_context=None):
        span.set_attribute("causeway.thread.tid", threading.get_native_id())
