// startOtlpReceiver: the OTLP trace receiver (gRPC + HTTP, served from a thread of its own: worker.ts)
// in front of the ingest queue, whose onSpans runs on the caller's thread.

import type { Meter } from '@opentelemetry/api';
import { counter, observe } from '../export/metrics.js';
import { DeliveryQueue, SharedCounters, type OnSpans, type ReceiverCounters } from './ingest.js';
import { startServerThread } from './worker.js';

export const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
export const DEFAULT_MAX_PENDING_SPANS = 100_000;
export const DEFAULT_DRAIN_TIMEOUT_MS = 5_000;

export interface Endpoint {
  host: string;
  /** 0 picks a free port (reported back in grpcPort / httpPort). */
  port: number;
}

export interface OtlpReceiverOptions {
  /** gRPC endpoint; false disables gRPC. */
  grpc: Endpoint | false;
  /** HTTP endpoint, /v1/traces; false disables HTTP. */
  http: Endpoint | false;
  /** Largest request accepted, after decompression (gRPC and HTTP); default 4 MiB. */
  maxMessageBytes?: number;
  /** Bound on accepted-but-undelivered spans; past it requests get 503 / UNAVAILABLE; default 100000. */
  maxPendingSpans?: number;
  /** How long close() waits for pending spans to be delivered; default 5000 ms. */
  drainTimeoutMs?: number;
  /** Receives each accepted request's valid spans, one call at a time, in arrival order. */
  onSpans: OnSpans;
  /** Errors thrown by onSpans, unexpected server errors, and a failure of the servers' thread; default: ignored (they are counted). */
  onError?: (err: unknown) => void;
  /** The counters are read from here at each collection. */
  meter?: Meter;
}

export interface OtlpReceiver {
  /** Bound gRPC port, or undefined when gRPC is disabled. */
  readonly grpcPort: number | undefined;
  /** Bound HTTP port, or undefined when HTTP is disabled. */
  readonly httpPort: number | undefined;
  /** A snapshot of the counters. */
  counters(): ReceiverCounters;
  /**
   * Stops both servers (in-flight requests finish), then waits up to drainTimeoutMs for
   * pending spans to reach onSpans; queued spans still undelivered are counted in
   * spansDropped. Idempotent.
   */
  close(): Promise<void>;
}

export async function startOtlpReceiver(options: OtlpReceiverOptions): Promise<OtlpReceiver> {
  const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const maxPendingSpans = options.maxPendingSpans ?? DEFAULT_MAX_PENDING_SPANS;
  const drainTimeoutMs = options.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS;
  if (!Number.isInteger(maxMessageBytes) || maxMessageBytes <= 0)
    throw new RangeError('maxMessageBytes must be a positive integer');
  if (!Number.isInteger(maxPendingSpans) || maxPendingSpans <= 0)
    throw new RangeError('maxPendingSpans must be a positive integer');
  const onError = options.onError ?? ((): void => undefined);
  const counters = new SharedCounters();
  const queue = new DeliveryQueue(options.onSpans, counters, onError);
  const servers = await startServerThread(
    {
      grpc: options.grpc === false ? false : { host: options.grpc.host, port: options.grpc.port },
      http: options.http === false ? false : { host: options.http.host, port: options.http.port },
      maxMessageBytes,
      maxPendingSpans,
      drainTimeoutMs,
      counters: counters.buffer,
    },
    {
      onSpans: (spans) => {
        queue.push(spans);
      },
      onError,
      onFailure: (err) => {
        counters.add('workerFailures');
        onError(err);
      },
    },
  );
  if (options.meter !== undefined) instrument(options.meter, counters);

  let closing: Promise<void> | undefined;
  return {
    grpcPort: servers.grpcPort,
    httpPort: servers.httpPort,
    counters: () => counters.snapshot(),
    close: () => {
      closing ??= (async () => {
        await servers.stop();
        if (!(await queue.whenIdle(drainTimeoutMs))) queue.dropQueued();
      })();
      return closing;
    },
  };
}

function instrument(meter: Meter, counters: SharedCounters): void {
  observe(
    meter,
    {
      spansAccepted: counter('causeway_receiver_spans_accepted', 'App spans accepted over OTLP.'),
      spansRejected: counter('causeway_receiver_spans_rejected', 'App spans rejected as invalid.'),
      requestsRefused: counter('causeway_receiver_requests_refused', 'OTLP requests refused for overload (retryable).'),
      badRequests: counter('causeway_receiver_bad_requests', 'OTLP requests answered with a client error.'),
      workerFailures: counter('causeway_receiver_worker_failures', "Times the OTLP servers' thread failed."),
    },
    () => counters.snapshot(),
  );
}
