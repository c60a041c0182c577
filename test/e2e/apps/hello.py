"""The smallest traced app: one span, exported over OTLP gRPC, its trace id printed on stdout.

The collector endpoint comes from the SDK's own OTEL_EXPORTER_OTLP_ENDPOINT (default
127.0.0.1:4317), so tests point it at whatever port they started the collector on.
"""
import os

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

provider = TracerProvider(
    resource=Resource.create({"service.name": "hello", "process.pid": os.getpid()})
)
# The endpoint is plain-text loopback; the exporter would otherwise try TLS.
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(insecure=True)))

with provider.get_tracer("causeway.e2e.hello").start_as_current_span("hello") as span:
    span.set_attribute("hello.greeting", "world")
    print(format(span.get_span_context().trace_id, "032x"), flush=True)

# Flushes the batch before exit; without it the span may never leave the process.
provider.shutdown()
