// startOtlpReceiver: the OTLP trace receiver (gRPC + HTTP, served from a thread of its own: worker.ts)
// in front of the ingest queue, whose onSpans runs on the caller's thread. A thread that fails is
// replaced on the same ports, as the store replaces its worker: a sidecar without its servers
// would take no span until someone restarted it.

import type { Meter } from '@opentelemetry/api';
import { counter, gauge, observe } from '../export/metrics.js';
import { DeliveryQueue, SharedCounters, type OnSpans, type ReceiverCounters } from './ingest.js';
import {
  startServerThread,
  type ServerHeap,
  type ServerSettings,
  type ServerThread,
  type ServerThreadEvents,
} from './worker.js';

export const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
export const DEFAULT_MAX_PENDING_SPANS = 100_000;
export const DEFAULT_DRAIN_TIMEOUT_MS = 5_000;
/** Restarts of the servers' thread in a row, with no span accepted in between; a failure after them leaves the receiver down. */
const MAX_RESTARTS_IN_A_ROW = 3;

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
   * The servers' thread's JavaScript heap, which the process's own heap figures leave out; after
   * a full collection when `collect` and the process runs with --expose-gc. Undefined while no
   * thread serves.
   */
  heap(collect?: boolean): Promise<ServerHeap | undefined>;
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
  const settings: ServerSettings = {
    grpc: options.grpc === false ? false : { host: options.grpc.host, port: options.grpc.port },
    http: options.http === false ? false : { host: options.http.host, port: options.http.port },
    maxMessageBytes,
    maxPendingSpans,
    drainTimeoutMs,
    counters: counters.buffer,
  };
  const receiver = new Receiver(counters, queue, onError, drainTimeoutMs);
  await receiver.start(settings);
  if (options.meter !== undefined) instrument(options.meter, receiver);
  return receiver;
}

class Receiver implements OtlpReceiver {
  grpcPort: number | undefined;
  httpPort: number | undefined;
  /** The thread serving now. TypeScript's private, not #: a test makes it fail, as the store's worker tests do theirs. */
  private servers: ServerThread | undefined;
  readonly #counters: SharedCounters;
  readonly #queue: DeliveryQueue;
  readonly #onError: (err: unknown) => void;
  readonly #drainTimeoutMs: number;
  readonly #events: ServerThreadEvents;
  #settings: ServerSettings | undefined;
  #closing: Promise<void> | undefined;
  #replacing: Promise<void> | undefined;
  #failuresInARow = 0;
  #acceptedAtFailure = 0;

  constructor(counters: SharedCounters, queue: DeliveryQueue, onError: (err: unknown) => void, drainTimeoutMs: number) {
    this.#counters = counters;
    this.#queue = queue;
    this.#onError = onError;
    this.#drainTimeoutMs = drainTimeoutMs;
    this.#events = {
      onSpans: (spans) => {
        queue.push(spans);
      },
      onError,
      onFailure: (err) => {
        counters.add('workerFailures');
        this.#replacing = this.#replace(err);
      },
    };
  }

  async start(settings: ServerSettings): Promise<void> {
    this.servers = await startServerThread(settings, this.#events);
    this.grpcPort = this.servers.grpcPort;
    this.httpPort = this.servers.httpPort;
    // A thread started again serves the ports first bound: the senders are configured with them.
    this.#settings = {
      ...settings,
      grpc: settings.grpc === false ? false : { ...settings.grpc, port: this.grpcPort ?? 0 },
      http: settings.http === false ? false : { ...settings.http, port: this.httpPort ?? 0 },
    };
  }

  counters(): ReceiverCounters {
    return this.#counters.snapshot();
  }

  async heap(collect = false): Promise<ServerHeap | undefined> {
    return this.servers?.heap(collect);
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#replacing;
      await this.servers?.stop();
      if (!(await this.#queue.whenIdle(this.#drainTimeoutMs))) this.#queue.dropQueued();
    })();
    return this.#closing;
  }

  /**
   * A failed thread's servers are gone. Once it has exited (every batch it posted handed over),
   * the spans it accepted and never handed over are dropped and counted, and another thread
   * serves the same ports, unless it keeps failing with no span accepted in between.
   */
  async #replace(err: Error): Promise<void> {
    await this.servers?.stop();
    const counters = this.#counters;
    const lost = counters.get('pendingSpans') - this.#queue.spans;
    counters.add('spansDropped', lost);
    counters.add('pendingSpans', -lost);
    const accepted = counters.get('spansAccepted');
    this.#failuresInARow = accepted > this.#acceptedAtFailure ? 1 : this.#failuresInARow + 1;
    this.#acceptedAtFailure = accepted;
    if (this.#closing !== undefined || this.#settings === undefined) return;
    const what = `${err.message}; ${String(lost)} spans accepted and not handed over are lost`;
    if (this.#failuresInARow > MAX_RESTARTS_IN_A_ROW) {
      const times = String(this.#failuresInARow);
      this.#onError(
        new Error(`${what}; it failed ${times} times with no span accepted in between: the receiver is down`, {
          cause: err,
        }),
      );
      return;
    }
    this.#onError(new Error(`${what}; starting it again`, { cause: err }));
    try {
      this.servers = await startServerThread(this.#settings, this.#events);
      counters.add('workerRestarts');
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      this.#onError(
        new Error(`the OTLP receiver thread cannot start again (${why}): the receiver is down`, { cause: e }),
      );
    }
  }
}

function instrument(meter: Meter, receiver: OtlpReceiver): void {
  observe(
    meter,
    {
      spansAccepted: counter('causeway_receiver_spans_accepted', 'App spans accepted over OTLP.'),
      spansRejected: counter('causeway_receiver_spans_rejected', 'App spans rejected as invalid.'),
      requestsRefused: counter('causeway_receiver_requests_refused', 'OTLP requests refused for overload (retryable).'),
      badRequests: counter('causeway_receiver_bad_requests', 'OTLP requests answered with a client error.'),
      spansDropped: counter(
        'causeway_receiver_spans_dropped',
        "App spans accepted and then lost: still waiting at the drain timeout, or in a failed servers' thread.",
      ),
      deliveryErrors: counter(
        'causeway_receiver_delivery_errors',
        "Accepted requests whose spans the sidecar's intake failed on.",
      ),
      workerFailures: counter('causeway_receiver_worker_failures', "Times the OTLP servers' thread failed."),
      workerRestarts: counter(
        'causeway_receiver_worker_restarts',
        "Times a failed OTLP servers' thread was replaced by a new one on the same ports.",
      ),
      heap: gauge(
        'causeway_receiver_heap_bytes',
        "The OTLP servers' thread's JavaScript heap (its own isolate) as allocated.",
        'By',
      ),
    },
    async () => ({ ...receiver.counters(), heap: (await receiver.heap())?.total }),
  );
}
