// The work a process has queued on its CUDA streams and not yet seen complete: what a sync
// found in flight. Work is counted in order per stream (a sequence number per item): a
// stream sync completes the stream's work so far, an event sync the work before the event
// was recorded, and cudaStreamWaitEvent makes a stream's later work depend on another
// stream's work before the event. Per stream, only the latest items are kept one by one;
// older ones are summed up. Captures (stream capture into a CUDA graph) are tracked here
// too, since a launch on a capturing stream is recorded into the graph, not queued.

/** Items kept one by one per stream; older ones are only counted. */
const MAX_ITEMS = 64;
/** cudaStreamWaitEvent dependencies kept per stream. */
const MAX_WAITS = 8;
/** How far dependencies are followed from the awaited stream. */
const MAX_DEPTH = 4;
/** Kernel symbols kept per capture (and so per graph); the count goes on. */
const MAX_CAPTURED = 256;

/** A graph's kernels as captured: symbols in capture order (the first MAX_CAPTURED), and how many. */
export interface GraphKernels {
  symbols: string[];
  count: number;
}

/** One piece of queued work: a kernel, a graph launch, or an asynchronous copy. */
interface Item {
  seq: number;
  /** Kernels it runs: 1 for a launch, a graph's count (0 when unknown), 0 for a copy. */
  kernels: number;
  /** A kernel launch's symbol, when named. */
  symbol: string | undefined;
  /** A graph launch: the executable graph, and its kernels when its capture was seen. */
  graph: { exec: bigint; kernels: GraphKernels | undefined } | undefined;
  /** Bytes, for an asynchronous copy. */
  bytes: number;
}

/** A stream capture in progress: the streams it spans (the origin, and those joined through events). */
export interface Capture extends GraphKernels {
  streams: Set<Stream>;
}

interface Wait {
  stream: Stream;
  /** The other stream's work up to here must complete first, */
  seq: number;
  /** for our work after this. */
  after: number;
}

/** What a sync waited for. */
export interface Pending {
  kernels: number;
  symbols: string[];
  graphs: bigint[];
  bytes: number;
  /** The streams whose work was pending, the awaited one first. */
  streams: bigint[];
}

export class Stream {
  /** Sequence number of the latest work queued. */
  seq = 0;
  /** Work up to here is known complete. */
  private done = 0;
  /**
   * The latest items, a ring: `count` of them, the oldest at `head`. A slot's item is filled
   * again when its work is pushed out or completed (an object per launch was garbage at 100k
   * launches/s).
   */
  private readonly items: (Item | undefined)[] = new Array<Item | undefined>(MAX_ITEMS);
  private head = 0;
  private count = 0;
  /** What fell out of `items`: counted, not named. */
  private older = { kernels: 0, bytes: 0 };
  private waits: Wait[] = [];
  capture: Capture | undefined;

  constructor(
    /** The handle the application passes, for attributes. */
    readonly handle: bigint,
    /** The device its work runs on, when known. */
    public device: number | undefined,
  ) {}

  /** Kernel launches of one function (`count` of them, from a launch summary), its symbol when named. */
  launched(symbol: string | undefined, count = 1): void {
    this.push(count, symbol, undefined, 0);
  }

  /** A graph launch, its kernels when its capture was seen. */
  graphLaunched(exec: bigint, kernels: GraphKernels | undefined): void {
    this.push(kernels?.count ?? 0, undefined, { exec, kernels }, 0);
  }

  /** An asynchronous copy. */
  copied(bytes: number): void {
    this.push(0, undefined, undefined, bytes);
  }

  private push(kernels: number, symbol: string | undefined, graph: Item['graph'], bytes: number): void {
    if (this.count === MAX_ITEMS) {
      const dropped = this.items[this.head] as Item;
      this.older.kernels += dropped.kernels;
      this.older.bytes += dropped.bytes;
      this.head = (this.head + 1) % MAX_ITEMS;
      this.count--;
    }
    const slot = (this.head + this.count) % MAX_ITEMS;
    const item = (this.items[slot] ??= { seq: 0, kernels: 0, symbol: undefined, graph: undefined, bytes: 0 });
    item.seq = ++this.seq;
    item.kernels = kernels;
    item.symbol = symbol;
    item.graph = graph;
    item.bytes = bytes;
    this.count++;
  }

  /** What is queued on this stream and not known complete, left as it is: what a new launch queues behind. */
  queued(): Pending {
    const into = emptyPending();
    into.kernels = this.older.kernels;
    into.bytes = this.older.bytes;
    for (let i = 0; i < this.count; i++) add(into, this.items[(this.head + i) % MAX_ITEMS] as Item);
    if (into.kernels > 0 || into.bytes > 0 || into.graphs.length > 0) into.streams.push(this.handle);
    return into;
  }

  /** Our work after now must wait for `other`'s work up to `seq`. */
  waitFor(other: Stream, seq: number): void {
    if (other === this || seq === 0) return;
    this.waits.push({ stream: other, seq, after: this.seq });
    if (this.waits.length > MAX_WAITS) this.waits.shift();
  }

  /**
   * The work up to `upto` (and what it depended on) is complete: returns what of it was
   * still pending, and forgets it.
   */
  complete(upto: number, into: Pending = emptyPending(), depth = 0): Pending {
    if (upto <= this.done || depth > MAX_DEPTH) return into;
    let found = false;
    // Items too old to be kept one by one: counted whole, even if the event fell among them.
    if (this.older.kernels > 0 || this.older.bytes > 0) {
      into.kernels += this.older.kernels;
      into.bytes += this.older.bytes;
      found = true;
    }
    this.older.kernels = 0;
    this.older.bytes = 0;
    while (this.count > 0) {
      const item = this.items[this.head] as Item;
      if (item.seq > upto) break;
      add(into, item);
      this.head = (this.head + 1) % MAX_ITEMS;
      this.count--;
      found = true;
    }
    if (found) into.streams.push(this.handle);
    this.done = upto;
    if (this.waits.length === 0) return into;
    const due = this.waits.filter((w) => w.after < upto);
    this.waits = this.waits.filter((w) => w.after >= upto);
    for (const wait of due) wait.stream.complete(wait.seq, into, depth + 1);
    return into;
  }
}

function add(into: Pending, item: Item): void {
  into.kernels += item.kernels;
  into.bytes += item.bytes;
  if (item.symbol !== undefined) into.symbols.push(item.symbol);
  if (item.graph !== undefined) {
    into.graphs.push(item.graph.exec);
    if (item.graph.kernels !== undefined) into.symbols.push(...item.graph.kernels.symbols);
  }
}

export const emptyPending = (): Pending => ({ kernels: 0, symbols: [], graphs: [], bytes: 0, streams: [] });

/** Starts a capture on a stream (cudaStreamBeginCapture). */
export function beginCapture(stream: Stream): void {
  stream.capture = { symbols: [], count: 0, streams: new Set([stream]) };
}

/** Records kernels into a capture: a launch's one, or a child graph's. */
export function capture(into: GraphKernels, symbols: string[], count: number): void {
  into.count += count;
  for (const symbol of symbols) if (into.symbols.length < MAX_CAPTURED) into.symbols.push(symbol);
}

/** Ends the capture a stream is part of (cudaStreamEndCapture): its kernels, for the graph. */
export function endCapture(stream: Stream): GraphKernels | undefined {
  const ended = stream.capture;
  if (ended === undefined) return undefined;
  for (const member of ended.streams) member.capture = undefined;
  return { symbols: ended.symbols, count: ended.count };
}
