// Sends kernel spans through a SpanExporter (the sidecar's is OTLP/gRPC to the collector). While
// the collector is unreachable, spans wait in a queue bounded in spans and in bytes; a batch
// that failed for a reason that may pass (retry.ts) goes back to the head of the queue and is
// sent again with backoff, so what queued up is delivered when the collector returns. Past
// either bound the oldest spans are dropped, and a batch the collector refuses for good is
// dropped; both are counted, as is what close() leaves at its deadline. Causeway keeps running
// and says when the collector goes away and comes back.
import type { Meter } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import { counter, gauge, observe } from './metrics.js';
import { exportVerdict } from './retry.js';

export interface SenderOptions {
  /**
   * Makes the exporter. After a retryable failure the exporter is replaced by a new one: a gRPC
   * channel that lost its server waits out its own reconnect backoff (growing to 120 s) before it
   * looks again, and a new channel connects at once, so the sender's backoff alone decides how
   * soon a returning collector is found. Exporters are shut down when replaced and by close().
   */
  exporter: () => SpanExporter;
  /** Spans waiting at most (in flight included); past it the oldest are dropped. */
  maxQueueSpans: number;
  /** Their approximate OTLP-encoded size at most; past it the oldest are dropped. */
  maxQueueBytes: number;
  /** Spans per export call at most. */
  batchSize?: number;
  /** Delay before the first retry and the longest one; it doubles in between, with ±20% jitter. */
  retry?: { initialMs: number; maxMs: number };
  onStatus: (up: boolean, detail: string) => void;
  /** The counters are read from here at each collection. */
  meter?: Meter;
}

export interface SenderCounters {
  spansSent: number;
  /** All spans dropped, whatever the reason (the sum of `dropped`). */
  spansDropped: number;
  dropped: {
    /** The oldest, past the queue's bounds. */
    queueFull: number;
    /** Refused by the collector with an error that is not retryable. */
    rejected: number;
    /** Still queued or unanswered at close()'s deadline, or sent after it. */
    shutdown: number;
  };
  exportFailures: number;
  /** Spans waiting to be sent or unanswered, and their approximate encoded size. */
  queued: number;
  queuedBytes: number;
  collectorUp: boolean;
}

const RETRY = { initialMs: 1000, maxMs: 5000 };
const JITTER = 0.2;
/** A server's RetryInfo delay is honoured up to this. */
const MAX_SERVER_DELAY_MS = 60_000;

interface Queued {
  span: ReadableSpan;
  bytes: number;
}

/** Roughly the bytes the span takes in an OTLP request: ids, times, name, attributes, events. */
export function encodedSize(span: ReadableSpan): number {
  let bytes = 64 + span.name.length + attributesSize(span.attributes);
  for (const event of span.events) bytes += 16 + event.name.length + attributesSize(event.attributes ?? {});
  return bytes;
}

function attributesSize(attributes: ReadableSpan['attributes']): number {
  let bytes = 0;
  // for...in rather than Object.entries: no array per attribute, for every span queued.
  for (const key in attributes) bytes += 8 + key.length + valueSize(attributes[key]);
  return bytes;
}

function valueSize(value: unknown): number {
  if (typeof value === 'string') return value.length;
  if (Array.isArray(value)) return value.reduce((sum: number, v) => sum + 2 + valueSize(v), 0);
  return 9;
}

export class SpanSender {
  private queue: Queued[] = [];
  private inFlight: Queued[] = [];
  private bytes = 0;
  private exporter: SpanExporter;
  private sending: Promise<void> | null = null;
  private attempt = 0;
  private pause: { timer: NodeJS.Timeout; resume: () => void } | null = null;
  private closed = false;
  private up = true;
  private readonly count = { spansSent: 0, exportFailures: 0 };
  private readonly dropped = { queueFull: 0, rejected: 0, shutdown: 0 };
  private readonly batchSize: number;
  private readonly retry: { initialMs: number; maxMs: number };

  constructor(private readonly options: SenderOptions) {
    this.exporter = options.exporter();
    this.batchSize = options.batchSize ?? 512;
    this.retry = options.retry ?? RETRY;
    if (options.meter !== undefined) this.instrument(options.meter);
  }

  send(spans: ReadableSpan[]): void {
    if (this.closed) {
      this.dropped.shutdown += spans.length;
      return;
    }
    for (const span of spans) {
      const bytes = encodedSize(span);
      this.queue.push({ span, bytes });
      this.bytes += bytes;
    }
    this.trim();
    this.sending ??= this.drain().finally(() => {
      this.sending = null;
    });
  }

  counters(): SenderCounters {
    const dropped = { ...this.dropped };
    return {
      ...this.count,
      spansDropped: dropped.queueFull + dropped.rejected + dropped.shutdown,
      dropped,
      queued: this.queue.length + this.inFlight.length,
      queuedBytes: this.bytes,
      collectorUp: this.up,
    };
  }

  /**
   * Sends what is queued, retrying as usual, for at most timeoutMs; then shuts the exporter
   * down. What is still queued or unanswered at the deadline is dropped and counted (the
   * exporter is then not waited for), and so is what is sent after. Resolves with the counters.
   */
  async close(timeoutMs = 5000): Promise<SenderCounters> {
    let timer: NodeJS.Timeout | undefined;
    const drained = await Promise.race([
      (this.sending ?? Promise.resolve()).then(() => true),
      new Promise<false>((resolve) => (timer = setTimeout(resolve, timeoutMs, false))),
    ]);
    clearTimeout(timer);
    this.closed = true;
    this.dropped.shutdown += this.queue.length + this.inFlight.length;
    this.queue = [];
    this.inFlight = [];
    this.bytes = 0;
    this.wake();
    const shutdown = this.exporter.shutdown().catch(() => undefined);
    // An export still unanswered holds the exporter's shutdown until the export's own timeout.
    if (drained) await shutdown;
    return this.counters();
  }

  private instrument(meter: Meter): void {
    observe(
      meter,
      {
        spansSent: counter('causeway_export_spans_sent', 'Kernel spans exported.'),
        dropped: counter(
          'causeway_export_spans_dropped',
          'Kernel spans dropped: the oldest past the queue bounds (queue_full), refused by the collector for good (rejected), left at the shutdown deadline (shutdown).',
        ),
        exportFailures: counter(
          'causeway_export_failures',
          'Export calls that failed (retryable ones are sent again).',
        ),
        queued: gauge('causeway_export_queue_spans', 'Kernel spans waiting for the collector.'),
        queuedBytes: gauge('causeway_export_queue_bytes', 'Their approximate OTLP-encoded size.', 'By'),
        collectorUp: gauge('causeway_export_collector_up', '1 when the last export succeeded.'),
      },
      () => {
        const c = this.counters();
        return {
          spansSent: c.spansSent,
          dropped: [
            [c.dropped.queueFull, { reason: 'queue_full' }],
            [c.dropped.rejected, { reason: 'rejected' }],
            [c.dropped.shutdown, { reason: 'shutdown' }],
          ],
          exportFailures: c.exportFailures,
          queued: c.queued,
          queuedBytes: c.queuedBytes,
          collectorUp: c.collectorUp ? 1 : 0,
        };
      },
    );
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0 && !this.closed) {
      const batch = this.queue.splice(0, this.batchSize);
      this.inFlight = batch;
      const exporter = this.exporter;
      const result = await new Promise<ExportResult>((resolve) => {
        exporter.export(
          batch.map((q) => q.span),
          resolve,
        );
      });
      if (this.inFlight !== batch) return; // close() took it, and counted it
      this.inFlight = [];
      if (result.code === ExportResultCode.SUCCESS) {
        this.forget(batch);
        this.count.spansSent += batch.length;
        this.attempt = 0;
        this.status(true, 'collector reachable again');
        continue;
      }
      this.count.exportFailures++;
      const verdict = exportVerdict(result.error);
      if (!verdict.retry) {
        this.forget(batch);
        this.dropped.rejected += batch.length;
        this.status(false, `${verdict.reason} (not retryable: ${String(batch.length)} kernel spans dropped)`);
        continue;
      }
      // Back at the head: the oldest, so the first to go if the bounds are passed meanwhile.
      this.queue.unshift(...batch);
      this.trim();
      this.status(false, `${verdict.reason} (kernel spans wait in the queue and are sent again)`);
      this.exporter = this.options.exporter();
      void exporter.shutdown().catch(() => undefined);
      await this.wait(Math.min(verdict.delayMs ?? this.backoff(), MAX_SERVER_DELAY_MS));
    }
  }

  /** Drops the oldest queued spans while over either bound. */
  private trim(): void {
    let over = 0;
    let held = this.queue.length + this.inFlight.length;
    let bytes = this.bytes;
    while (over < this.queue.length && (held > this.options.maxQueueSpans || bytes > this.options.maxQueueBytes)) {
      bytes -= this.queue[over]?.bytes ?? 0;
      held--;
      over++;
    }
    if (over === 0) return;
    this.queue.splice(0, over);
    this.bytes = bytes;
    this.dropped.queueFull += over;
  }

  private forget(batch: Queued[]): void {
    for (const q of batch) this.bytes -= q.bytes;
  }

  private backoff(): number {
    const delay = Math.min(this.retry.initialMs * 2 ** this.attempt++, this.retry.maxMs);
    return delay * (1 + JITTER * (2 * Math.random() - 1));
  }

  /** Sleeps before a retry; close() wakes it. */
  private wait(ms: number): Promise<void> {
    return new Promise<void>((resume) => {
      this.pause = {
        timer: setTimeout(resume, ms),
        resume: () => {
          resume();
        },
      };
    }).finally(() => {
      this.pause = null;
    });
  }

  private wake(): void {
    if (this.pause === null) return;
    clearTimeout(this.pause.timer);
    this.pause.resume();
  }

  private status(up: boolean, detail: string): void {
    if (up === this.up) return;
    this.up = up;
    this.options.onStatus(up, detail);
  }
}
