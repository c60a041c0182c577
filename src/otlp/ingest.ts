// The receiver's counters, shared between the main thread and the receiver's worker, and the
// two halves of the bounded ingest queue between the OTLP servers (in the worker) and the
// onSpans consumer (on the caller's thread).
//
// Accepted batches are delivered to onSpans one at a time, in arrival order; an async onSpans
// holds its batch "pending" until its promise settles. A request whose spans would push the
// pending count above maxPendingSpans is refused as a whole (HTTP 503 + Retry-After / gRPC
// UNAVAILABLE: retryable, nothing of it accepted), except when nothing is pending, so one
// request larger than the bound cannot be refused forever. Accepted spans are never dropped by
// a later request, good or bad; only close() with a drain timeout can drop them, and counts it.
//
// pendingSpans lives in shared memory: the worker adds a batch's spans when it accepts it, the
// main thread subtracts them once onSpans is done with them (or they are dropped). Only the
// worker adds, so its check-then-add cannot overshoot the bound: the count can only fall between.

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
  /** Spans accepted but not yet delivered (on their way from the worker, queued, or inside an unresolved onSpans). */
  pendingSpans: number;
  /** Spans still pending when close() gave up waiting (drain timeout), or accepted by a servers' thread that failed before handing them over. */
  spansDropped: number;
  /** Times the receiver's worker thread failed (its servers are gone; reported through onError). */
  workerFailures: number;
  /** Times a failed worker thread was replaced by a new one, on the same ports. */
  workerRestarts: number;
}

export type CounterName = keyof ReceiverCounters;

const COUNTER_NAMES: readonly CounterName[] = [
  'requests',
  'requestsGrpc',
  'requestsHttp',
  'spansAccepted',
  'spansRejected',
  'requestsRefused',
  'spansRefused',
  'badRequests',
  'tooLarge',
  'spansDelivered',
  'deliveryErrors',
  'pendingSpans',
  'spansDropped',
  'workerFailures',
  'workerRestarts',
];
const CELL = Object.fromEntries(COUNTER_NAMES.map((name, i) => [name, i])) as Record<CounterName, number>;

/** The counters in a SharedArrayBuffer, so either thread reads a current snapshot synchronously. */
export class SharedCounters {
  readonly buffer: SharedArrayBuffer;
  readonly #cells: BigInt64Array;

  constructor(buffer = new SharedArrayBuffer(COUNTER_NAMES.length * BigInt64Array.BYTES_PER_ELEMENT)) {
    this.buffer = buffer;
    this.#cells = new BigInt64Array(buffer);
  }

  add(name: CounterName, n = 1): void {
    Atomics.add(this.#cells, CELL[name], BigInt(n));
  }

  get(name: CounterName): number {
    return Number(Atomics.load(this.#cells, CELL[name]));
  }

  snapshot(): ReceiverCounters {
    return Object.fromEntries(COUNTER_NAMES.map((name) => [name, this.get(name)])) as unknown as ReceiverCounters;
  }
}

/** The servers' side (in the worker): admits a request's spans against the bound and sends them on. */
export class IngestGate {
  readonly counters: SharedCounters;
  readonly #maxPending: number;
  readonly #send: (spans: AppSpan[]) => void;
  #closed = false;

  constructor(counters: SharedCounters, maxPendingSpans: number, send: (spans: AppSpan[]) => void) {
    this.counters = counters;
    this.#maxPending = maxPendingSpans;
    this.#send = send;
  }

  /** Whether a request with this many valid spans would be accepted now. */
  hasRoomFor(n: number): boolean {
    if (this.#closed) return false;
    const pending = this.counters.get('pendingSpans');
    return n === 0 || pending === 0 || pending + n <= this.#maxPending;
  }

  /** Accepts a batch (the caller checked hasRoomFor) and sends it to the consumer's thread. */
  accept(spans: AppSpan[]): void {
    if (spans.length === 0) return;
    this.counters.add('spansAccepted', spans.length);
    this.counters.add('pendingSpans', spans.length);
    this.#send(spans);
  }

  /**
   * Refuses every request from now on: called once the servers have stopped, as the thread ends.
   * A request still running then (its connection cut at the drain timeout, its body
   * still inflating) is refused and counted, not sent to a consumer that no longer listens.
   */
  close(): void {
    this.#closed = true;
  }
}

/** The consumer's side: hands batches to onSpans one at a time, in arrival order. */
export class DeliveryQueue {
  readonly #onSpans: OnSpans;
  readonly #onError: (err: unknown) => void;
  readonly #counters: SharedCounters;
  readonly #batches: AppSpan[][] = [];
  /** Spans pushed and not yet delivered (queued, or in the onSpans call in progress). */
  #spans = 0;
  #draining = false;
  #idleWaiters: (() => void)[] = [];

  constructor(onSpans: OnSpans, counters: SharedCounters, onError: (err: unknown) => void) {
    this.#onSpans = onSpans;
    this.#counters = counters;
    this.#onError = onError;
  }

  /** Queues a batch the gate accepted and starts delivery. */
  push(spans: AppSpan[]): void {
    this.#batches.push(spans);
    this.#spans += spans.length;
    if (!this.#draining) void this.#drain();
  }

  /** Spans pushed and not yet delivered. */
  get spans(): number {
    return this.#spans;
  }

  async #drain(): Promise<void> {
    this.#draining = true;
    try {
      for (let batch = this.#batches.shift(); batch; batch = this.#batches.shift()) {
        try {
          const r = this.#onSpans(batch);
          if (r instanceof Promise) await r;
        } catch (e) {
          this.#counters.add('deliveryErrors');
          this.#onError(e);
        } finally {
          this.#spans -= batch.length;
          this.#counters.add('spansDelivered', batch.length);
          this.#counters.add('pendingSpans', -batch.length);
        }
      }
    } finally {
      this.#draining = false;
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** Resolves true once every batch pushed has been delivered, false after timeoutMs. */
  whenIdle(timeoutMs: number): Promise<boolean> {
    if (!this.#draining) return Promise.resolve(true);
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
      this.#spans -= batch.length;
      this.#counters.add('spansDropped', batch.length);
      this.#counters.add('pendingSpans', -batch.length);
    }
  }
}
