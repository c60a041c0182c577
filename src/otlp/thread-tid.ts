// For Node apps on @opentelemetry/sdk-node: a span processor that records the OS thread id
// (`causeway.thread.tid`), which Causeway needs to attach kernel events to the right span.
// OpenTelemetry's `thread.id` is a runtime's managed id, not the kernel's. Node has no API for
// the tid, but /proc/thread-self names it; it is read once per thread (each worker thread
// has its own copy of this module).
//
//   import { ThreadTidSpanProcessor } from 'causeway/thread-tid';
//   new NodeSDK({ spanProcessors: [new ThreadTidSpanProcessor(), new BatchSpanProcessor(exporter)] }).start();
import { readlinkSync } from 'node:fs';
import type { Span, SpanProcessor } from '@opentelemetry/sdk-trace-base';

let tid: number | undefined;

function threadTid(): number {
  // "/proc/thread-self" links to "<pid>/task/<tid>".
  tid ??= Number(readlinkSync('/proc/thread-self').split('/').pop());
  return tid;
}

export class ThreadTidSpanProcessor implements SpanProcessor {
  onStart(span: Span): void {
    span.setAttribute('causeway.thread.tid', threadTid());
  }

  onEnd(): void {
    // Nothing to do: the attribute is set when the span starts, on the thread that runs it.
  }

  forceFlush(): Promise<void> {
    return Promise.resolve();
  }

  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}
