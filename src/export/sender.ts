// Sends kernel spans to the collector over OTLP/gRPC. A bounded queue: when the collector is
// slow or down, the oldest spans are dropped and counted, never held without bound; the
// exporter retries retryable errors itself; Causeway keeps running and says when the
// collector goes away and comes back.
import { ExportResultCode } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';

export interface SenderOptions {
  /** OTLP gRPC endpoint; undefined: the standard OTEL_EXPORTER_OTLP_* variables, else 127.0.0.1:4317. */
  url?: string;
  maxQueue?: number;
  batchSize?: number;
  onStatus: (up: boolean, detail: string) => void;
}

export interface SenderCounters {
  spansSent: number;
  spansDropped: number;
  exportFailures: number;
  queued: number;
  collectorUp: boolean;
}

export function exportUrl(env: NodeJS.ProcessEnv = process.env): string {
  return env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? env.OTEL_EXPORTER_OTLP_ENDPOINT ?? 'http://127.0.0.1:4317';
}

export class SpanSender {
  private readonly exporter: OTLPTraceExporter;
  private queue: ReadableSpan[] = [];
  private sending: Promise<void> | null = null;
  private up = true;
  private readonly count = { spansSent: 0, spansDropped: 0, exportFailures: 0 };
  private readonly maxQueue: number;
  private readonly batchSize: number;

  constructor(private readonly options: SenderOptions) {
    this.exporter = new OTLPTraceExporter({ url: options.url ?? exportUrl() });
    this.maxQueue = options.maxQueue ?? 20_000;
    this.batchSize = options.batchSize ?? 512;
  }

  send(spans: ReadableSpan[]): void {
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

  /** Sends what is queued, waiting at most timeoutMs, then shuts the exporter down. */
  async close(timeoutMs = 5000): Promise<void> {
    await Promise.race([
      this.sending ?? Promise.resolve(),
      new Promise((resolve) => setTimeout(resolve, timeoutMs).unref()),
    ]);
    this.count.spansDropped += this.queue.length;
    this.queue = [];
    await this.exporter.shutdown();
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.batchSize);
      const result = await new Promise<{ code: ExportResultCode; error?: Error }>((resolve) => {
        this.exporter.export(batch, resolve);
      });
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
