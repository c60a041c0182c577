// For Node apps on @opentelemetry/sdk-node: publish each thread's active span where Causeway's
// probes read it at event time (the OpenTelemetry thread context, OTEP 4947). On an event loop
// many request spans are open on one thread; without this, a wait of request A (a GPU sync, a
// lock, an fsync that blocks the loop) can land in request B, started later.
//
//   import { ThreadContextManager } from 'causeway/thread-ctx';
//   new NodeSDK({ contextManager: new ThreadContextManager(), spanProcessors: [...] }).start();
//
// The thread's `otel_thread_ctx_v1` (defined by the addon causeway_thread_ctx.node) points to a
// record of the span of the context made active by context.with() (every instrumentation's way in),
// and back to the previous one when it returns. With `{ continuations: true }` it is also set
// when an async continuation runs (an async_hooks before hook: a promise reaction, a timer, an I/O
// callback), to the context that continuation restores; without, a continuation publishes no span
// (the probes then fall back to the thread's spans, marked ambiguous), never a wrong one. Each
// worker thread has its own record: set the context manager up in each worker that traces.
//
// If the addon cannot be loaded (or CAUSEWAY_THREAD_CTX_ADDON names one that cannot), it warns
// once and the app runs on without thread contexts.
import { createHook, type AsyncHook } from 'node:async_hooks';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { ROOT_CONTEXT, trace, type Context, type Span } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';

export const ADDON =
  process.env.CAUSEWAY_THREAD_CTX_ADDON ??
  fileURLToPath(new URL('../../../../src/otlp/node/causeway_thread_ctx.node', import.meta.url));

interface Addon {
  slot(): ArrayBuffer;
  address(record: Buffer): bigint;
}

/** A span's record as published: its address, and the bytes kept alive while a slot points there. */
interface PublishedRecord {
  address: bigint;
  bytes: Buffer | undefined;
}

const NO_RECORD: PublishedRecord = { address: 0n, bytes: undefined };
const RECORD_BYTES = 28;

/** This thread's slot (its otel_thread_ctx_v1) and what it holds: each thread loads its own copy of this module. */
class ThreadSlot {
  private readonly view: BigUint64Array;
  /** The records of spans seen, built when a span is first published; they go with their span. */
  private readonly records = new WeakMap<Span, PublishedRecord>();
  record = NO_RECORD;

  constructor(private readonly addon: Addon) {
    this.view = new BigUint64Array(addon.slot());
  }

  /** Make the slot hold the record of `context`'s span: none when it has none, or it ended. */
  publish(context: Context): void {
    this.set(this.recordOf(trace.getSpan(context)));
  }

  /** One aligned 8-byte store: a reader sees the old record or the new one, both whole and alive. */
  set(record: PublishedRecord): void {
    this.record = record;
    this.view[0] = record.address;
  }

  private recordOf(span: Span | undefined): PublishedRecord {
    if (span === undefined || !span.isRecording()) return NO_RECORD;
    let record = this.records.get(span);
    if (record === undefined) {
      const { traceId, spanId } = span.spanContext();
      // An ArrayBuffer of its own: its bytes are outside the JS heap and never move.
      const bytes = Buffer.from(new ArrayBuffer(RECORD_BYTES));
      bytes.write(traceId, 0, 16, 'hex');
      bytes.write(spanId, 16, 8, 'hex');
      bytes[24] = 1; // valid; reserved and attrs_data_size (no attributes) stay 0
      record = { address: this.addon.address(bytes), bytes };
      this.records.set(span, record);
    }
    return record;
  }
}

let slot: ThreadSlot | null | undefined;

/** This thread's slot, or null (warned once) when the addon cannot be loaded. */
function threadSlot(): ThreadSlot | null {
  if (slot === undefined) {
    try {
      slot = new ThreadSlot(createRequire(import.meta.url)(ADDON) as Addon);
    } catch (error) {
      process.emitWarning(
        `causeway thread-ctx: no thread contexts are published (${error instanceof Error ? error.message : String(error)}); Causeway attaches kernel events to the span latest started on their thread. Build the addon with: make -C src/otlp/node`,
        'CausewayThreadContextWarning',
      );
      slot = null;
    }
  }
  return slot;
}

export interface ThreadContextOptions {
  /**
   * Also publish the context of each async continuation as it runs (exact after an await or in
   * a timer), at the cost of an async_hooks before/after hook on every callback and promise
   * reaction: see the README for what it costs.
   */
  continuations?: boolean;
}

/** The SDK's context manager for Node, publishing the active span of this thread for Causeway's probes. */
export class ThreadContextManager extends AsyncLocalStorageContextManager {
  private readonly slot = threadSlot();
  private readonly continuations: AsyncHook | undefined;

  constructor(options: ThreadContextOptions = {}) {
    super();
    const slot = this.slot;
    if (slot !== null && options.continuations === true) {
      // A continuation runs with the context its resource captured (ALS restores it before the
      // before hook runs); after it, no context until the next one: the loop then waits in epoll
      // or runs native work of no request.
      this.continuations = createHook({
        before: () => {
          slot.publish(this.active());
        },
        after: () => {
          slot.set(NO_RECORD);
        },
      });
    }
  }

  override with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(
    context: Context,
    fn: F,
    thisArg?: ThisParameterType<F>,
    ...args: A
  ): ReturnType<F> {
    const slot = this.slot;
    if (slot === null) return super.with(context, fn, thisArg, ...args);
    const previous = slot.record;
    slot.publish(context);
    try {
      return super.with(context, fn, thisArg, ...args);
    } finally {
      slot.set(previous);
    }
  }

  override enable(): this {
    super.enable();
    this.continuations?.enable();
    return this;
  }

  override disable(): this {
    this.continuations?.disable();
    this.slot?.publish(ROOT_CONTEXT);
    return super.disable();
  }
}
