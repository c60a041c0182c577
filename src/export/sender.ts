// Sends kernel spans through a SpanExporter (the sidecar's is OTLP/gRPC to the collector). A
// bounded queue: when the collector is slow or down, the oldest spans are dropped and counted,
// never held without bound; the exporter retries retryable errors itself; Causeway keeps
// running and says when the collector goes away and comes back.
import type { Meter } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import { counter, gauge, observe } from './metrics.js';

export interface SenderOptions {
  /** Shut down by close(). */
  exporter: SpanExporter;
  /** Spans queued at most; beyond it the oldest are dropped. */
  maxQueue?: number;
  /** Spans per export call at most. */
  batchSize?: number;
  onStatus: (up: boolean, detail: string) => void;
  /** The counters are read from here at each collection. */
  meter?: Meter;
}

export interface SenderCounters {
  spansSent: number;
  spansDropped: number;
  exportFailures: number;
  queued: number;
  collectorUp: boolean;
}

export class SpanSender {
  private queue: ReadableSpan[] = [];
  private sending: Promise<void> | null = null;
  /** Spans handed to the exporter that it has not answered for yet. */
  private inFlight = 0;
  private closed = false;
  private up = true;
  private readonly count = { spansSent: 0, spansDropped: 0, exportFailures: 0 };
  private readonly maxQueue: number;
  private readonly batchSize: number;

  constructor(private readonly options: SenderOptions) {
    this.maxQueue = options.maxQueue ?? 20_000;
    this.batchSize = options.batchSize ?? 512;
    if (options.meter !== undefined) this.instrument(options.meter);
  }

  send(spans: ReadableSpan[]): void {
    if (this.closed) {
      this.count.spansDropped += spans.length;
      return;
    }
    this.queue.push(...spans);
    const over = this.queue.length - this.maxQueue;
    if (over > 0) {
      this.queue.splice(0, over);
      this.count.spansDropped += over;
    }
    this.sending ??= this.drain().finally(() => {
      this.sending = null;
    });
  }

  counters(): SenderCounters {
    return { ...this.count, queued: this.queue.length, collectorUp: this.up };
  }

  /**
   * Sends what is queued, waiting at most timeoutMs, then shuts the exporter down. What is
   * still queued or unanswered then is dropped and counted; later sends are dropped too.
   */
  async close(timeoutMs = 5000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.sending ?? Promise.resolve(),
      new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs))),
    ]);
    clearTimeout(timer);
    this.closed = true;
    this.count.spansDropped += this.queue.length + this.inFlight;
    this.queue = [];
    this.inFlight = 0;
    await this.options.exporter.shutdown();
  }

  private instrument(meter: Meter): void {
    observe(
      meter,
      {
        spansSent: counter('causeway_export_spans_sent', 'Kernel spans exported.'),
        spansDropped: counter('causeway_export_spans_dropped', 'Kernel spans dropped (queue full or export failed).'),
        queued: gauge('causeway_export_spans_queued', 'Kernel spans waiting to be exported.'),
        collectorUp: gauge('causeway_export_collector_up', '1 when the last export succeeded.'),
      },
      () => {
        const c = this.counters();
        return { ...c, collectorUp: c.collectorUp ? 1 : 0 };
      },
    );
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.batchSize);
      this.inFlight = batch.length;
      const result = await new Promise<ExportResult>((resolve) => {
        this.options.exporter.export(batch, resolve);
      });
      if (this.closed) return; // counted as dropped by close()
      this.inFlight = 0;
      if (result.code === ExportResultCode.SUCCESS) {
        this.count.spansSent += batch.length;
        this.status(true, 'collector reachable again');
      } else {
        this.count.exportFailures++;
        this.count.spansDropped += batch.length;
        this.status(false, result.error?.message ?? 'export failed');
      }
    }
  }

  private status(up: boolean, detail: string): void {
    if (up === this.up) return;
    this.up = up;
    this.options.onStatus(up, detail);
  }
}
