// The bounded ingest queue between the OTLP servers and the onSpans consumer,
// and the receiver's counters.
//
// Accepted batches are delivered to onSpans one at a time, in arrival order; an
// async onSpans holds its batch "pending" until its promise settles. A request
// whose spans would push the pending count above maxPendingSpans is refused as a
// whole (HTTP 503 + Retry-After / gRPC UNAVAILABLE: retryable, nothing of it
// accepted), except when nothing is pending, so one request larger than the bound
// cannot be refused forever. Accepted spans are never dropped by a later request,
// good or bad; only close() with a drain timeout can drop them, and counts it.

import type { AppSpan } from './spans.js';

export type OnSpans = (spans: AppSpan[]) => void | Promise<void>;

/** A snapshot of the receiver's counters (monotonic except pendingSpans). */
export interface ReceiverCounters {
  /** Export requests received, both transports (every HTTP request; every gRPC Export call that reached the handler). */
  requests: number;
  requestsGrpc: number;
  requestsHttp: number;
  /** Spans accepted into the ingest queue. */
  spansAccepted: number;
  /** Spans rejected by validation (zero / wrong-length ids), reported as partial success. */
  spansRejected: number;
  /** Requests refused because the ingest queue was full (503 / UNAVAILABLE). */
  requestsRefused: number;
  /** Valid spans in requests refused for overload (the sender is expected to retry them). */
  spansRefused: number;
  /** Requests answered with a client error: 400 / INVALID_ARGUMENT, 404, 405, 413, 415. */
  badRequests: number;
  /** Of badRequests, those over maxMessageBytes (after decompression): HTTP 413. gRPC oversize is refused inside grpc-js and not counted. */
  tooLarge: number;
  /** Spans handed to onSpans whose call returned or resolved. */
  spansDelivered: number;
  /** onSpans calls that threw or rejected (their spans count as delivered: they are not retried). */
  deliveryErrors: number;
  /** Spans accepted but not yet delivered (queued or inside an unresolved onSpans). */
  pendingSpans: number;
  /** Spans still pending when close() gave up waiting (drain timeout). */
  spansDropped: number;
}

export class IngestQueue {
  readonly #onSpans: OnSpans;
  readonly #onError: (err: unknown) => void;
  readonly #maxPending: number;
  readonly #batches: AppSpan[][] = [];
  #draining = false;
  #idleWaiters: (() => void)[] = [];
  readonly counters: ReceiverCounters = {
    requests: 0,
    requestsGrpc: 0,
    requestsHttp: 0,
    spansAccepted: 0,
    spansRejected: 0,
    requestsRefused: 0,
    spansRefused: 0,
    badRequests: 0,
    tooLarge: 0,
    spansDelivered: 0,
    deliveryErrors: 0,
    pendingSpans: 0,
    spansDropped: 0,
  };

  constructor(onSpans: OnSpans, maxPendingSpans: number, onError: (err: unknown) => void) {
    this.#onSpans = onSpans;
    this.#maxPending = maxPendingSpans;
    this.#onError = onError;
  }

  /** Whether a request with this many valid spans would be accepted now. */
  hasRoomFor(n: number): boolean {
    return n === 0 || this.counters.pendingSpans === 0 || this.counters.pendingSpans + n <= this.#maxPending;
  }

  /** Accepts a batch (the caller checked hasRoomFor) and starts delivery. */
  accept(spans: AppSpan[]): void {
    if (spans.length === 0) return;
    this.counters.spansAccepted += spans.length;
    this.counters.pendingSpans += spans.length;
    this.#batches.push(spans);
    if (!this.#draining) void this.#drain();
  }

  async #drain(): Promise<void> {
    this.#draining = true;
    try {
      for (let batch = this.#batches.shift(); batch; batch = this.#batches.shift()) {
        try {
          const r = this.#onSpans(batch);
          if (r instanceof Promise) await r;
        } catch (e) {
          this.counters.deliveryErrors++;
          this.#onError(e);
        } finally {
          this.counters.pendingSpans -= batch.length;
          this.counters.spansDelivered += batch.length;
        }
      }
    } finally {
      this.#draining = false;
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** Resolves true once everything accepted has been delivered, false after timeoutMs. */
  whenIdle(timeoutMs: number): Promise<boolean> {
    if (this.counters.pendingSpans === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#idleWaiters = this.#idleWaiters.filter((w) => w !== done);
        resolve(false);
      }, timeoutMs);
      timer.unref();
      const done = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      this.#idleWaiters.push(done);
    });
  }

  /** Forgets undelivered queued batches (counted in spansDropped); an onSpans call in progress is left to finish. */
  dropQueued(): void {
    for (let batch = this.#batches.shift(); batch; batch = this.#batches.shift()) {
      this.counters.spansDropped += batch.length;
      this.counters.pendingSpans -= batch.length;
    }
  }

  snapshot(): ReceiverCounters {
    return { ...this.counters };
  }
}
