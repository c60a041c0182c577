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
import { trace, type Context } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';

const ADDON =
  process.env.CAUSEWAY_THREAD_CTX_ADDON ??
  fileURLToPath(new URL('../../../../src/otlp/node/causeway_thread_ctx.node', import.meta.url));

interface Addon {
  slot(): ArrayBuffer;
  address(record: Buffer): bigint;
}

/** The record is 28 bytes; 32 keeps each aligned. */
const RECORD_STRIDE = 32;
/** A record's ids: trace id and span id, 24 bytes, in 32-bit words. */
const ID_WORDS = 6;
/** Spans whose decoded ids are kept, by the last two digits of the span id. */
const DECODED = 64;
/** Spans published one inside another on one thread (nested with() and continuations) beyond which the innermost are published as none. */
const MAX_DEPTH = 256;
const NULL_RECORD = 0n;
/** A character's value as a hex digit (ids are lowercase hex: 32 digits a trace id, 16 a span id). */
const HEX_DIGIT = new Uint8Array(128);
for (let digit = 0; digit < 16; digit++) HEX_DIGIT[digit.toString(16).charCodeAt(0)] = digit;
const hexDigit = (hex: string, at: number) => HEX_DIGIT[hex.charCodeAt(at)] ?? 0;

/**
 * This thread's slot (its otel_thread_ctx_v1) and the records it points to: each thread loads its
 * own copy of this module. The records are a stack, one per span published inside another
 * (with() and continuations nest): publishing writes the ids into the record above those in use
 * and points the slot at it; returning points the slot back. A record in use is never rewritten,
 * so a reader finds the slot pointing to a whole record or to none. Nothing is kept on a span, and
 * no span stays reachable for the writer: an unchanged span costs a comparison, a span published
 * again (its next continuation) a copy of its ids decoded before.
 */
class ThreadSlot {
  private readonly slot: BigUint64Array;
  /** The records: an ArrayBuffer of their own, outside the JS heap, whose bytes never move. */
  private readonly records: Int32Array;
  /** Ids decoded from hex (DECODED entries of ID_WORDS words), and which span each entry holds. */
  private readonly decoded = new Int32Array(DECODED * ID_WORDS);
  private readonly decodedBytes = new Uint8Array(this.decoded.buffer);
  private readonly decodedTraceIds: string[] = new Array<string>(DECODED).fill('');
  private readonly decodedSpanIds: string[] = new Array<string>(DECODED).fill('');
  private readonly addresses: bigint[] = [];
  /** The ids each record holds (strings compare by identity first: a span's own ids, the same strings). */
  private readonly traceIds: string[] = new Array<string>(MAX_DEPTH).fill('');
  private readonly spanIds: string[] = new Array<string>(MAX_DEPTH).fill('');
  /** The record the slot points to (-1: none) and the records in use below `top`. */
  published = -1;
  top = 0;
  /** What each continuation running (`depth` of them, one inside another) put back when it returns: published, top. */
  private readonly saved = new Int32Array(2 * MAX_DEPTH);
  private depth = 0;

  constructor(addon: Addon) {
    this.slot = new BigUint64Array(addon.slot());
    const records = Buffer.from(new ArrayBuffer(RECORD_STRIDE * MAX_DEPTH));
    // Every record is valid once written; reserved and attrs_data_size (no attributes) stay 0.
    for (let i = 0; i < MAX_DEPTH; i++) records[i * RECORD_STRIDE + 24] = 1;
    this.records = new Int32Array(records.buffer);
    const base = addon.address(records);
    for (let i = 0; i < MAX_DEPTH; i++) this.addresses.push(base + BigInt(i * RECORD_STRIDE));
  }

  /**
   * Make the slot hold `context`'s span (none when it has none, or it ended), in a record above
   * those in use unless the published one holds it already. The caller puts back `published`
   * and `top` as they were when its context is no longer active.
   */
  publish(context: Context): void {
    const span = trace.getSpan(context);
    if (span === undefined || !span.isRecording()) {
      this.point(-1);
      return;
    }
    const { traceId, spanId } = span.spanContext();
    const published = this.published;
    if (published >= 0 && this.spanIds[published] === spanId && this.traceIds[published] === traceId) return;
    const record = this.top;
    if (record >= MAX_DEPTH) {
      warnOnce(
        `spans published more than ${String(MAX_DEPTH)} deep on one thread: the innermost are published as none`,
      );
      this.point(-1);
      return;
    }
    this.top = record + 1;
    if (this.spanIds[record] !== spanId || this.traceIds[record] !== traceId) this.write(record, traceId, spanId);
    this.point(record);
  }

  /** A continuation begins in `context`. */
  enter(context: Context): void {
    const depth = this.depth++;
    if (depth >= MAX_DEPTH) return;
    this.saved[2 * depth] = this.published;
    this.saved[2 * depth + 1] = this.top;
    this.publish(context);
  }

  /** The innermost continuation returned: what it published is no longer active. */
  leave(): void {
    // None entered: the hook was enabled while this continuation ran.
    if (this.depth === 0) return;
    const depth = --this.depth;
    if (depth >= MAX_DEPTH) return;
    this.top = this.saved[2 * depth + 1] ?? 0;
    this.point(this.saved[2 * depth] ?? -1);
  }

  /**
   * No span published, no continuation running (the hooks were disabled: a continuation may have
   * begun without its end). The records in use stay so: a with() still running puts its own back.
   */
  clear(): void {
    this.depth = 0;
    this.point(-1);
  }

  /** Point the slot at a record (-1: none): one aligned 8-byte store, a reader sees the old pointer or the new one. */
  point(record: number): void {
    if (record === this.published) return;
    this.published = record;
    this.slot[0] = record < 0 ? NULL_RECORD : (this.addresses[record] ?? NULL_RECORD);
  }

  private write(record: number, traceId: string, spanId: string): void {
    const entry = (hexDigit(spanId, 14) * 16 + hexDigit(spanId, 15)) % DECODED;
    if (this.decodedSpanIds[entry] !== spanId || this.decodedTraceIds[entry] !== traceId)
      this.decode(entry, traceId, spanId);
    const from = entry * ID_WORDS;
    const to = record * (RECORD_STRIDE / 4);
    for (let i = 0; i < ID_WORDS; i++) this.records[to + i] = this.decoded[from + i] ?? 0;
    this.traceIds[record] = traceId;
    this.spanIds[record] = spanId;
  }

  /** The ids' bytes as they lie in a record (trace id, then span id), into a decoded entry. */
  private decode(entry: number, traceId: string, spanId: string): void {
    const bytes = this.decodedBytes;
    const at = entry * ID_WORDS * 4;
    for (let i = 0; i < 16; i++) bytes[at + i] = hexDigit(traceId, 2 * i) * 16 + hexDigit(traceId, 2 * i + 1);
    for (let i = 0; i < 8; i++) bytes[at + 16 + i] = hexDigit(spanId, 2 * i) * 16 + hexDigit(spanId, 2 * i + 1);
    this.decodedTraceIds[entry] = traceId;
    this.decodedSpanIds[entry] = spanId;
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
      // before hook runs); after it, what was published before it (at the loop's top: none, as
      // the loop then waits in epoll or runs native work of no request).
      this.continuations = createHook({
        before: () => {
          slot.enter(this.active());
        },
        after: () => {
          slot.leave();
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
    const { published, top } = slot;
    slot.publish(context);
    try {
      return super.with(context, fn, thisArg, ...args);
    } finally {
      slot.top = top;
      slot.point(published);
    }
  }

  override enable(): this {
    super.enable();
    this.continuations?.enable();
    return this;
  }

  override disable(): this {
    this.continuations?.disable();
    this.slot?.clear();
    return super.disable();
  }
}
