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

const ADDON =
  process.env.CAUSEWAY_THREAD_CTX_ADDON ??
  fileURLToPath(new URL('../../../../src/otlp/node/causeway_thread_ctx.node', import.meta.url));

interface Addon {
  slot(): ArrayBuffer;
  address(record: Buffer): bigint;
}

/** A record in a slab: where it is, and the span it holds while that span records (or is published). */
interface PublishedRecord {
  address: bigint;
  offset: number;
  slab: Buffer | undefined;
  span: Span | undefined;
  /** Bumped each time the record is given to another span: a saved record is stale once it changed. */
  generation: number;
}

/** Where a span keeps its record, given when it is first published (a WeakMap of spans cost the GC more). */
const RECORD = Symbol('causeway thread-context record');
type RecordedSpan = Span & { [RECORD]?: PublishedRecord };

const NO_RECORD: PublishedRecord = { address: 0n, offset: 0, slab: undefined, span: undefined, generation: 0 };
/** The record is 28 bytes; 32 keeps each aligned. */
const RECORD_STRIDE = 32;
const RECORDS_PER_SLAB = 1024;
/** Spans open at once on one thread beyond which a span gets no record (published as none). */
const MAX_SLABS = 64;

/**
 * This thread's slot (its otel_thread_ctx_v1) and what it holds: each thread loads its own copy
 * of this module. Records live in slabs (one ArrayBuffer each: its bytes are outside the JS heap
 * and never move), reused once their span ended and no slot holds them: a record per span as an
 * ArrayBuffer of its own costs microseconds to allocate and to collect.
 */
class ThreadSlot {
  private readonly view: BigUint64Array;
  private readonly free: PublishedRecord[] = [];
  private inUse: PublishedRecord[] = [];
  private slabs = 0;
  record = NO_RECORD;

  constructor(private readonly addon: Addon) {
    this.view = new BigUint64Array(addon.slot());
  }

  /** Make the slot hold the record of `context`'s span: none when it has none, or it ended. */
  publish(context: Context): void {
    this.set(this.recordOf(trace.getSpan(context)));
  }

  /** Put back a record saved before, unless it went to another span since (its span ended: none). */
  restore(record: PublishedRecord, generation: number): void {
    this.set(record.generation === generation ? record : NO_RECORD);
  }

  /** One aligned 8-byte store: a reader sees the old record or the new one, both whole. */
  set(record: PublishedRecord): void {
    this.record = record;
    this.view[0] = record.address;
  }

  private recordOf(span: Span | undefined): PublishedRecord {
    if (span === undefined || !span.isRecording()) return NO_RECORD;
    const known = (span as RecordedSpan)[RECORD];
    if (known !== undefined) return known;
    const record = this.free.pop() ?? this.reclaim();
    if (record.slab === undefined) return NO_RECORD;
    const { traceId, spanId } = span.spanContext();
    record.slab.write(traceId, record.offset, 16, 'hex');
    record.slab.write(spanId, record.offset + 16, 8, 'hex');
    record.slab[record.offset + 24] = 1; // valid; reserved and attrs_data_size (no attributes) stay 0
    record.span = span;
    this.inUse.push(record);
    (span as RecordedSpan)[RECORD] = record;
    return record;
  }

  /** A free record: one of a span that ended (and is not published), else one of a new slab, else none. */
  private reclaim(): PublishedRecord {
    this.inUse = this.inUse.filter((record) => {
      if (record === this.record || record.span?.isRecording() === true) return true;
      record.span = undefined;
      record.generation++;
      this.free.push(record);
      return false;
    });
    if (this.free.length === 0 && this.slabs < MAX_SLABS) this.addSlab();
    const record = this.free.pop();
    if (record !== undefined) return record;
    warnOnce(
      `more than ${String(MAX_SLABS * RECORDS_PER_SLAB)} spans open at once on one thread: the newest are published as none`,
    );
    return NO_RECORD;
  }

  private addSlab(): void {
    const slab = Buffer.from(new ArrayBuffer(RECORD_STRIDE * RECORDS_PER_SLAB));
    const base = this.addon.address(slab);
    for (let i = RECORDS_PER_SLAB - 1; i >= 0; i--) {
      const offset = i * RECORD_STRIDE;
      this.free.push({ address: base + BigInt(offset), offset, slab, span: undefined, generation: 0 });
    }
    this.slabs++;
  }
}

const warned = new Set<string>();

function warnOnce(problem: string): void {
  if (warned.has(problem)) return;
  warned.add(problem);
  process.emitWarning(`causeway thread-ctx: ${problem}`, 'CausewayThreadContextWarning');
}

let slot: ThreadSlot | null | undefined;

/** This thread's slot, or null (warned once) when the addon cannot be loaded. */
function threadSlot(): ThreadSlot | null {
  if (slot === undefined) {
    try {
      slot = new ThreadSlot(createRequire(import.meta.url)(ADDON) as Addon);
    } catch (error) {
      warnOnce(
        `no thread contexts are published (${error instanceof Error ? error.message : String(error)}); Causeway attaches kernel events to the span latest started on their thread. Build the addon with: make -C src/otlp/node`,
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
    const generation = previous.generation;
    slot.publish(context);
    try {
      return super.with(context, fn, thisArg, ...args);
    } finally {
      slot.restore(previous, generation);
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
