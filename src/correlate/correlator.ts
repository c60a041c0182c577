// Attaches kernel events to the app spans they happened in (DESIGN, "Attaching kernel events
// to traces"). An event stamped with the span its app published as active when it began
// (OTEP 4947 thread context, read by the probes) belongs to that span, whatever thread ran it:
// scope exact. Otherwise an event on host (pid, tid) belongs to the innermost span of that
// thread that was active when the event began: scope thread, or ambiguous when another span of
// the thread (not an ancestor) was open then too, as on an event loop; process when the span's
// thread is unknown. App spans arrive late (exporters batch for seconds), so
// events are kept for a bounded window and a span is joined once the event watermark has
// passed its end; inner spans end first, so joining in order of end gives them their events.
// The watermark comes from the capture: every kernel event ending before it has been read
// (advanceWatermark). Once it passes a span's end, the span has every event that could have
// held it up: a wait it (or one it waited on) was held in ended before it did. On a known
// thread that is every event it takes: one that began on that thread inside the span held the
// thread, so it ended before the span did. A span known only by its process also takes the
// events of its other threads that began inside it, and one of those may still be going when
// the watermark passes its end (a long sync): it is read when it ends, and taken then, handed
// on as a late attachment, until the watermark is the longest join wait (maxJoinWaitMs) past
// the span's end. Spans wait for the watermark however far the capture trails (a busy sidecar
// decodes late, and a span joined before its events were read would get none); only while the
// capture is silent, no watermark for the longest join wait, does the clock join them, that
// long after their end.
// A span also gets the waits of other processes it waited on (linked.ts), from the same events.
// The capture says when it shed events (addShed): a span of that time is joined marked so
// (Attachment.shed), so that its missing waits are not read as none; one left with no event is
// only counted (handing on a summary for every span of a flood multiplied the export: issue 11).
import type { Histogram, Meter } from '@opentelemetry/api';
import { counter, gauge, observe } from '../export/metrics.js';
import { EventBatch, EventList, compactRecords, type KernelEvent } from '../kernel/events.js';
import * as A from '../semconv/attributes.js';
import { WOKEN_WAITS, isMessage, linkedWaits, type HeldEvents } from './linked.js';
import { SHED_MERGE_NS } from './source.js';
import { MS, byTime, earlier, later, nowUnixNano, toMs } from './time.js';

/** What the correlator needs of an app span (the OTLP receiver's spans have it). */
export interface JoinableSpan {
  traceId: string;
  spanId: string;
  name: string;
  startUnixNano: bigint;
  endUnixNano: bigint;
  attributes: Record<string, unknown>;
  resource: Record<string, unknown>;
  parentSpanId?: string;
}

/** How surely an event is the span's (causeway.attach.scope), surest first. */
export type AttachScope = A.CausewayAttachScopeValue;

const SCOPES: readonly AttachScope[] = [
  A.CAUSEWAY_ATTACH_SCOPE_VALUE_EXACT,
  A.CAUSEWAY_ATTACH_SCOPE_VALUE_THREAD,
  A.CAUSEWAY_ATTACH_SCOPE_VALUE_AMBIGUOUS,
  A.CAUSEWAY_ATTACH_SCOPE_VALUE_PROCESS,
];

/** How surely the event is the attachment's span's. */
export function scopeOf(attachment: Attachment, event: KernelEvent): AttachScope {
  return attachment.scopes?.get(event) ?? placeScope(attachment.place);
}

/** How surely an event is a span's when the span is known by its place alone: by its thread, or by its process. */
const placeScope = (place: SpanPlace): AttachScope =>
  place.hostTid === undefined ? A.CAUSEWAY_ATTACH_SCOPE_VALUE_PROCESS : A.CAUSEWAY_ATTACH_SCOPE_VALUE_THREAD;

/** The least sure of the scopes; undefined for none. */
export function weakestScope(scopes: Iterable<AttachScope>): AttachScope | undefined {
  let weakest: AttachScope | undefined;
  for (const scope of scopes)
    if (weakest === undefined || SCOPES.indexOf(scope) > SCOPES.indexOf(weakest)) weakest = scope;
  return weakest;
}

/** Where a span ran on this host, as far as can be told. */
export interface SpanPlace {
  hostPid: number;
  /** Undefined: the span's thread is unknown, its events are the whole process's. */
  hostTid?: number;
}

/** A span with where it ran, found once by the caller: undefined when its process is not on this host. */
export interface PlacedSpan<S extends JoinableSpan = JoinableSpan> {
  span: S;
  place: SpanPlace | undefined;
}

export interface Attachment<S extends JoinableSpan = JoinableSpan> {
  span: S;
  place: SpanPlace;
  /**
   * Kernel events that began on the span's thread (or process) while it was the innermost span,
   * and the linked waits of other processes it waited on (linked.ts: new events, not held here).
   */
  events: KernelEvent[];
  /**
   * How surely an event taken is the span's, where not as its place says: an event not in it (most
   * are, and a linked wait) has its place's scope (scopeOf).
   */
  scopes?: Map<KernelEvent, AttachScope>;
  /**
   * Of `events`, those another span had taken before (an inner span that came later takes them
   * over): handed on before, as other objects (a held event is made again each time it is read).
   */
  takenOver?: ReadonlySet<KernelEvent>;
  /** Kernel events of the span's time were shed (the capture was behind): `events` may miss some. */
  shed?: boolean;
  /**
   * Events of the span's other threads (it is known only by its process) that began inside it and
   * were still going when it was joined, read since: its kernel spans, no second summary.
   */
  late?: boolean;
}

export interface CorrelatorOptions<S extends JoinableSpan> {
  onJoined: (attachments: Attachment<S>[]) => void;
  /** How long kernel events wait for a late span. */
  retentionMs: number;
  /** Kernel events kept at most; the oldest go first. */
  maxEvents: number;
  /**
   * How long past its end (by the watermark) a span known only by its process takes its other
   * threads' events read late; with no watermark this long, spans join by the clock this long after their end.
   */
  maxJoinWaitMs: number;
  /** App spans held at most: waiting for the watermark, or joined and taking late events; more are refused (counted). */
  maxPendingSpans?: number;
  now?: () => bigint;
  /** Its counters are read from here at each collection. */
  meter?: Meter;
}

export interface CorrelatorCounters {
  spansJoined: number;
  spansWithEvents: number;
  /** Joined while kernel events of their time were shed: those with events left are marked so (causeway.attach.shed). */
  spansShed: number;
  spansNotHere: number;
  spansRefused: number;
  eventsAttached: number;
  /** Of those, attached after their span was joined, as they were read (Attachment.late). */
  eventsAttachedLate: number;
  /** Of those, attached by the span their thread context named (scope exact). */
  eventsAttachedExact: number;
  /** Attached to the innermost of several spans open on their thread, no context saying which (scope ambiguous). */
  eventsAttachedAmbiguous: number;
  /** Other processes' waits linked to spans (a wait linked to N spans counts N times). */
  eventsLinked: number;
  eventsEvictedUnjoined: number;
  /** Evicted before their retention ended because maxEvents were held (joined or not). */
  eventsEvictedOverBound: number;
  eventsHeld: number;
  /**
   * The bytes of memory those keep, the chunks their records are in (kernel/events.ts,
   * compactRecords), as of the latest count: once per as many events received as held.
   */
  eventBytesHeld: number;
  spansPending: number;
}

/** How far behind joining runs. */
export interface CorrelatorLag {
  /** Since the end of the newest kernel event received; null before the first. */
  newestEventAgeMs: number | null;
  /** Every kernel event that ended before this (Unix ms) has been read; null before the first watermark. */
  watermarkUnixMs: number | null;
  /** How far the event watermark trails the clock: the capture's own lag; null before the first watermark. */
  watermarkAgeMs: number | null;
  /** How long after its end a span takes late events, and is joined by the clock while the watermark does not come. */
  maxJoinWaitMs: number;
  /** From a span's end to its joining, over the last RECENT_JOINS spans joined; null before the first. */
  joinDelayMs: { p50: number; p99: number; max: number } | null;
  spansWaitingToJoin: number;
}

/**
 * Spans joined per turn of the event loop at most; the rest, oldest first, on the next turns.
 * A watermark that jumps after a stall makes thousands ready at once, and joining them (with
 * their export and store hand-off) in one turn held OTLP intake and MCP for as long (issue 11).
 */
export const SPANS_JOINED_PER_TURN = 512;
/** Spans joined whose delays the lag's percentiles are taken over. */
const RECENT_JOINS = 1024;
/** Stretches of time shed held at most; past it the oldest two become one (a span between them is marked too). */
const MAX_SHED_TIMES = 1024;
/** The join delay histogram's buckets, in seconds: around the loader's 10 ms drains, up to the longest wait. */
const JOIN_DELAY_BUCKETS_S = [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5];

/** A span waiting for the watermark, and where it ran. */
interface Pending<S extends JoinableSpan> {
  span: S;
  place: SpanPlace;
}

const pendingEnd = (p: Pending<JoinableSpan>) => p.span.endUnixNano;

/** The events a span takes as it is joined, by start, with how surely each is its where not as its place says (Correlator.take). */
interface Taken {
  events: KernelEvent[];
  /** The start of the last of `events` (the lists' time), and whether each began no earlier than the one before. */
  lastStart: number;
  inStartOrder: boolean;
  scopes: Map<KernelEvent, AttachScope>;
  /** Of those, the ones another span had taken before (Attachment.takenOver). */
  takenOver: Set<KernelEvent>;
}

/** A span known only by its process, joined, taking its other threads' events read since (Attachment.late). */
interface LateTaker<S extends JoinableSpan> extends Pending<S> {
  /** It has been handed on with events: counted once in spansWithEvents. */
  hadEvents: boolean;
}

/** A span on a known thread, as long as events may still come for it: to tell whether another was open. */
interface ThreadSpan {
  spanId: string;
  parentSpanId: string | undefined;
  start: bigint;
  end: bigint;
}

/** A known thread's spans. */
interface ThreadSpans {
  /** By end: those that ended before a time are a prefix (evicted), those still open after it a suffix. */
  byEnd: ThreadSpan[];
  /** The latest added of each span id held: to walk a span's ancestors without a lookup table per join. */
  byId: Map<string, ThreadSpan>;
}

/**
 * A thread's held events, by start, and how long the longest of them lasted. Times are the
 * list's (EventList.time: ns after its base, as numbers).
 */
interface ThreadEvents {
  /** With the start of the span that took each (EventList.takenAt): a span that began later, an inner one, may take it over. */
  held: EventList;
  /**
   * At least the longest duration among `held`: an event overlapping a window began no earlier
   * than this before it, so a search looks back this far and no further (not the whole retention).
   */
  longestNs: number;
  /**
   * How many of `held` last longestNs: the bound is worked out again only when the last of them
   * goes, not each time one does (waits often last the same; reading the whole list at every
   * eviction made each batch cost as much as the events held).
   */
  longest: number;
  /** How many of `held` are messages: a thread with none is not read for them. */
  messages: number;
}

/** Which held events a search makes (the others are not made): by list and index. */
type Keep = (held: EventList, i: number) => boolean;

const messageAt: Keep = (held, i) => held.kind(i) === A.CAUSEWAY_KIND_VALUE_IPC_MESSAGE;

/** The events of process `pid` that can link a request to another process (HeldEvents.linking). */
const linkingOf =
  (pid: number): Keep =>
  (held, i) => {
    if (messageAt(held, i)) return true;
    const kind = held.kind(i);
    if (kind === undefined || !WOKEN_WAITS.has(kind)) return false;
    const other = held.otherPid(i);
    return other !== undefined && other !== 0 && other !== pid;
  };

/** Index of the first item whose time is at or after `at`, in a list sorted by that time. */
function firstAt<T>(list: readonly T[], at: bigint, time: (item: T) => bigint): number {
  let low = 0;
  let high = list.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    const item = list[middle];
    if (item !== undefined && time(item) < at) low = middle + 1;
    else high = middle;
  }
  return low;
}

const endOf = (span: ThreadSpan) => span.end;

/**
 * Puts an item in a list sorted by end, after those ending with it. Spans arrive nearly in the
 * order they ended, so this is nearly always at the end: pushed there without a search and a
 * splice (which took three times as long per span queued, issue 11).
 */
function insertByEnd<T>(list: T[], item: T, end: (item: T) => bigint): void {
  const last = list.at(-1);
  if (last === undefined || end(last) <= end(item)) list.push(item);
  else list.splice(firstAt(list, end(item) + 1n, end), 0, item);
}

/**
 * Adds to `found` the events of a thread that began in [from, to] and ended at or after
 * `endedFrom` (the list's times), those `keep` says only when given; returns it.
 */
function window(
  thread: ThreadEvents,
  from: number,
  to: number,
  endedFrom: number,
  found: KernelEvent[],
  keep?: Keep,
): KernelEvent[] {
  const { held } = thread;
  for (let i = held.firstStartingAt(from); i < held.length && held.start(i) <= to; i++)
    if (held.end(i) >= endedFrom && (keep === undefined || keep(held, i))) found.push(held.event(i));
  return found;
}

/** The other spans of the span's thread that are not its ancestors: open with it, they make its events ambiguous. */
function othersOnThread(span: JoinableSpan, { byEnd, byId }: ThreadSpans): ThreadSpan[] {
  const ancestors = new Set<string>();
  for (let parent = span.parentSpanId; parent !== undefined && !ancestors.has(parent);) {
    ancestors.add(parent);
    parent = byId.get(parent)?.parentSpanId;
  }
  const others: ThreadSpan[] = [];
  // Those that ended after it began, then those of them that began before it ended.
  for (let i = firstAt(byEnd, span.startUnixNano + 1n, endOf); i < byEnd.length; i++) {
    const s = byEnd[i];
    if (s !== undefined && s.start < span.endUnixNano && s.spanId !== span.spanId && !ancestors.has(s.spanId))
      others.push(s);
  }
  return others;
}

/**
 * How surely an unstamped event that began at `start` on the span's thread, which began at
 * `spanStart`, is the span's: undefined when a span of the thread that began later was open then
 * (the innermost, it takes the event); ambiguous when another was open then. Times are the lists'.
 */
function threadScope(
  spanStart: number,
  others: { start: number; end: number }[],
  start: number,
): AttachScope | undefined {
  let scope: AttachScope = A.CAUSEWAY_ATTACH_SCOPE_VALUE_THREAD;
  for (const o of others) {
    if (o.start > start || start >= o.end) continue;
    if (o.start > spanStart) return undefined;
    scope = A.CAUSEWAY_ATTACH_SCOPE_VALUE_AMBIGUOUS;
  }
  return scope;
}

/** How far past the origin the earliest held event may begin before the origin moves up: a day. */
const ORIGIN_MOVES_AFTER_NS = 86_400e9;

export class Correlator<S extends JoinableSpan> {
  private readonly byThread = new Map<number, Map<number, ThreadEvents>>();
  /**
   * The base of every list's times (EventList), set by the first event held and moved up a day at
   * a time (evict): a span's times are worked out in it once, not in each list's time of its own
   * (a BigInt subtraction per list and time, most of what joining a span allocated: issue 11).
   */
  private origin: bigint | undefined;
  /** Held events stamped with a span, by span id: that span alone takes them. */
  private readonly bySpan = new Map<string, KernelEvent[]>();
  /** The spans of each known thread (pid/tid), kept as long as events are. */
  private readonly threadSpans = new Map<string, ThreadSpans>();
  /**
   * Spans waiting for the watermark, by end. Those ready are a prefix, so joining reads only
   * them, not every span waiting (it runs at every watermark, about every 10 ms).
   */
  private readonly pending: Pending<S>[] = [];
  /**
   * Spans known only by their process, joined and still taking late events, by pid, each by end:
   * an event began in a span only if it began before the span's end, so the spans it may go to
   * are a suffix, and an event newer than every span there looks at none.
   */
  private readonly lateTakers = new Map<number, LateTaker<S>[]>();
  /**
   * The same by span id: an event read late stamped with one of them goes to it. Kept only once a
   * stamped event has been read: an app that publishes no thread context stamps none, and keeping
   * it for every span cost about 3% of the main thread under the whole-sidecar load (issue 11).
   */
  private lateTakerById: Map<string, LateTaker<S>> | undefined;
  private lateTakerCount = 0;
  /** The next turn's joining of spans left ready past SPANS_JOINED_PER_TURN; undefined when none is due. */
  private nextTurn: NodeJS.Immediate | undefined;
  private heldCount = 0;
  private heldBytes = 0;
  /** Events received since the held events' bytes were last counted and compacted. */
  private receivedSinceCompact = 0;
  private newestEventEnd: bigint | undefined;
  private watermark: bigint | undefined;
  /** When (by `now`) the watermark last advanced. */
  private watermarkAdvancedAt: bigint | undefined;
  /** Times whose kernel events were shed, apart and in order, as long as events are held. */
  private readonly shedTimes: { from: bigint; to: bigint }[] = [];
  private readonly recentDelaysMs = new Float64Array(RECENT_JOINS);
  private joinsRecorded = 0;
  private joinDelay: Histogram | undefined;
  private readonly retention: bigint;
  private readonly maxJoinWait: bigint;
  private readonly maxEvents: number;
  private readonly maxPendingSpans: number;
  private readonly now: () => bigint;
  private readonly count = {
    spansJoined: 0,
    spansWithEvents: 0,
    spansShed: 0,
    spansNotHere: 0,
    spansRefused: 0,
    eventsAttached: 0,
    eventsAttachedLate: 0,
    eventsAttachedExact: 0,
    eventsAttachedAmbiguous: 0,
    eventsLinked: 0,
    eventsEvictedUnjoined: 0,
    eventsEvictedOverBound: 0,
  };
  private readonly held: HeldEvents = {
    events: (pid, tid, from, to) => this.overlapping(this.listsOf(pid, tid), from, to),
    linking: (pid, tid, from, to) => this.overlapping(this.listsOf(pid, tid), from, to, linkingOf(pid)),
    processMessages: (pid, from, to) => {
      const lists: ThreadEvents[] = [];
      for (const thread of this.byThread.get(pid)?.values() ?? []) if (thread.messages > 0) lists.push(thread);
      return this.overlapping(lists, from, to, messageAt);
    },
    messages: (connections, exceptPid, from, to) => {
      const found: KernelEvent[] = [];
      const [start, end] = [this.sinceOrigin(from), this.sinceOrigin(to)];
      for (const [pid, threads] of this.byThread) {
        if (pid === exceptPid) continue;
        for (const thread of threads.values()) {
          if (thread.messages === 0) continue;
          for (const e of window(thread, start, end, start, [], messageAt))
            if (connections.has(String(e.attributes[A.ATTR_CAUSEWAY_IPC_CONNECTION]))) found.push(e);
        }
      }
      return found.sort((a, b) => byTime(a.startUnixNano, b.startUnixNano));
    },
    sharedCounts: new Map(),
  };

  constructor(private readonly options: CorrelatorOptions<S>) {
    this.retention = BigInt(options.retentionMs) * MS;
    this.maxJoinWait = BigInt(options.maxJoinWaitMs) * MS;
    this.maxEvents = options.maxEvents;
    this.maxPendingSpans = options.maxPendingSpans ?? 100_000;
    this.now = options.now ?? nowUnixNano;
    if (options.meter !== undefined) this.instrument(options.meter);
  }

  /** Holds events for joining: the capture's batches, or events made (EventBatch.of). */
  addEvents(events: EventBatch | KernelEvent[]): void {
    const batch = Array.isArray(events) ? EventBatch.of(events) : events;
    let late: Map<LateTaker<S>, KernelEvent[]> | undefined;
    const lastEnds = new Map<number, number>();
    let newestEnd = -Infinity;
    for (let i = 0; i < batch.length; i++) {
      const pid = batch.pid(i);
      const tid = batch.tid(i);
      let threads = this.byThread.get(pid);
      if (threads === undefined) this.byThread.set(pid, (threads = new Map<number, ThreadEvents>()));
      let thread = threads.get(tid);
      if (thread === undefined)
        threads.set(
          tid,
          (thread = {
            held: new EventList((this.origin ??= batch.base + BigInt(batch.start(i)))),
            longestNs: 0,
            longest: 0,
            messages: 0,
          }),
        );
      const { held } = thread;
      const stamp = batch.spanContext(i);
      if (stamp !== undefined) {
        const event = batch.event(i);
        const stamped = this.bySpan.get(stamp.spanId);
        if (stamped === undefined) this.bySpan.set(stamp.spanId, [event]);
        else stamped.push(event);
      }
      const at = held.add(batch, i);
      const message = batch.kind(i) === A.CAUSEWAY_KIND_VALUE_IPC_MESSAGE;
      const taker = this.lateTakerCount === 0 || message ? undefined : this.lateTaker(batch, i, lastEnds);
      if (taker !== undefined) {
        held.take(at, this.sinceOrigin(taker.span.startUnixNano));
        this.countAttached(
          stamp === undefined ? A.CAUSEWAY_ATTACH_SCOPE_VALUE_PROCESS : A.CAUSEWAY_ATTACH_SCOPE_VALUE_EXACT,
        );
        this.count.eventsAttachedLate++;
        late ??= new Map();
        const event = batch.event(i);
        const taken = late.get(taker);
        if (taken === undefined) late.set(taker, [event]);
        else taken.push(event);
      }
      const duration = held.end(at) - held.start(at);
      if (duration > thread.longestNs) {
        thread.longestNs = duration;
        thread.longest = 1;
      } else if (duration === thread.longestNs) thread.longest++;
      if (message) thread.messages++;
      this.heldCount++;
      if (batch.end(i) > newestEnd) newestEnd = batch.end(i);
    }
    if (batch.length > 0) {
      const newest = batch.base + BigInt(newestEnd);
      if (this.newestEventEnd === undefined || newest > this.newestEventEnd) this.newestEventEnd = newest;
    }
    this.evict(this.now() - this.retention);
    // Linear in the events held: once per as many received, a constant cost per event.
    this.receivedSinceCompact += batch.length;
    if (this.receivedSinceCompact >= this.heldCount) {
      this.receivedSinceCompact = 0;
      this.heldBytes = compactRecords(this.allLists());
    }
    if (late !== undefined) this.handLate(late);
  }

  /**
   * The joined span known only by its process that takes event i of a batch, read late (not a
   * message): the innermost it began in, if any. `lastEnds`: by pid, when the last of its spans
   * taking late events ended, in the batch's time, as worked out for the batch so far.
   */
  private lateTaker(batch: EventBatch, i: number, lastEnds: Map<number, number>): LateTaker<S> | undefined {
    const stamp = batch.spanContext(i);
    if (stamp !== undefined) {
      this.lateTakerById ??= new Map([...this.lateTakers.values()].flat().map((t) => [t.span.spanId, t]));
      const taker = this.lateTakerById.get(stamp.spanId);
      return taker?.span.traceId === stamp.traceId ? taker : undefined;
    }
    const pid = batch.pid(i);
    const takers = this.lateTakers.get(pid);
    const last = takers?.at(-1);
    if (takers === undefined || last === undefined) return undefined;
    // Most events began after every span there ended: told in the batch's time, with no bigint
    // made per event (while spans take late events, every event is looked at here: issue 11).
    let lastEnd = lastEnds.get(pid);
    if (lastEnd === undefined) lastEnds.set(pid, (lastEnd = Number(last.span.endUnixNano - batch.base)));
    if (batch.start(i) >= lastEnd) return undefined;
    const start = batch.base + BigInt(batch.start(i));
    let innermost: LateTaker<S> | undefined;
    for (let t = firstAt(takers, start + 1n, pendingEnd); t < takers.length; t++) {
      const taker = takers[t];
      if (
        taker !== undefined &&
        taker.span.startUnixNano <= start &&
        (innermost === undefined || taker.span.startUnixNano > innermost.span.startUnixNano)
      )
        innermost = taker;
    }
    return innermost;
  }

  /** An event taken by a span for the first time, by how surely it is the span's. */
  private countAttached(scope: AttachScope): void {
    this.count.eventsAttached++;
    if (scope === A.CAUSEWAY_ATTACH_SCOPE_VALUE_EXACT) this.count.eventsAttachedExact++;
    if (scope === A.CAUSEWAY_ATTACH_SCOPE_VALUE_AMBIGUOUS) this.count.eventsAttachedAmbiguous++;
  }

  /** Hands on the events read late, each span's as one attachment. */
  private handLate(late: Map<LateTaker<S>, KernelEvent[]>): void {
    const attachments: Attachment<S>[] = [];
    for (const [taker, events] of late) {
      if (!taker.hadEvents) this.count.spansWithEvents++;
      taker.hadEvents = true;
      events.sort((a, b) => byTime(a.startUnixNano, b.startUnixNano));
      const exact = events.filter((e) => e.spanContext !== undefined);
      attachments.push({
        span: taker.span,
        place: taker.place,
        events,
        ...(exact.length === 0
          ? {}
          : { scopes: new Map(exact.map((e) => [e, A.CAUSEWAY_ATTACH_SCOPE_VALUE_EXACT] as const)) }),
        shed: this.shedDuring(taker.span),
        late: true,
      });
    }
    this.options.onJoined(attachments);
  }

  /** Spans that ended by `before` take no more late events: the watermark is the longest join wait past their end. */
  private retireLateTakers(before: bigint): void {
    for (const [pid, takers] of this.lateTakers) {
      const first = takers[0];
      if (first !== undefined && pendingEnd(first) > before) continue;
      const done = firstAt(takers, before + 1n, pendingEnd);
      const byId = this.lateTakerById;
      if (byId !== undefined)
        for (const taker of takers.slice(0, done))
          if (byId.get(taker.span.spanId) === taker) byId.delete(taker.span.spanId);
      takers.splice(0, done);
      this.lateTakerCount -= done;
      if (takers.length === 0) this.lateTakers.delete(pid);
    }
  }

  /** Every thread's list. */
  private allLists(): EventList[] {
    const all: EventList[] = [];
    for (const threads of this.byThread.values()) for (const thread of threads.values()) all.push(thread.held);
    return all;
  }

  /**
   * The capture shed kernel events from `from` to `to`: the spans of that time are joined marked
   * so. Times that overlap, or nearly, the latest held are held as one with it, and so are the
   * earlier ones it then reaches (the kernel's shedding and the sidecar's come in their own
   * orders): a span between them is marked too, when it need not be rather than not when it should.
   */
  addShed(from: bigint, to: bigint): void {
    const last = this.shedTimes.at(-1);
    if (last !== undefined && from <= last.to + SHED_MERGE_NS) {
      last.from = earlier(last.from, from);
      last.to = later(last.to, to);
      // Apart and in order again: a span is looked up in the first stretch that ends after it began.
      for (let before = this.shedTimes.at(-2); before !== undefined && last.from <= before.to + SHED_MERGE_NS;) {
        last.from = earlier(last.from, before.from);
        this.shedTimes.splice(-2, 1);
        before = this.shedTimes.at(-2);
      }
      return;
    }
    this.shedTimes.push({ from, to });
    if (this.shedTimes.length > MAX_SHED_TIMES) {
      const [first, second] = this.shedTimes.splice(0, 2);
      if (first !== undefined && second !== undefined) this.shedTimes.unshift({ from: first.from, to: second.to });
    }
  }

  /** Queues spans until the watermark passes their end (joins those it has passed); returns how many were refused. */
  addSpans(spans: PlacedSpan<S>[]): number {
    let refused = 0;
    for (const { span, place } of spans) {
      if (place === undefined) {
        this.count.spansNotHere++;
      } else if (this.spansPending() + this.lateTakerCount >= this.maxPendingSpans) {
        refused++;
      } else {
        insertByEnd(this.pending, { span, place }, pendingEnd);
        if (place.hostTid !== undefined) {
          const key = `${String(place.hostPid)}/${String(place.hostTid)}`;
          let spans = this.threadSpans.get(key);
          if (spans === undefined) this.threadSpans.set(key, (spans = { byEnd: [], byId: new Map() }));
          const added = {
            spanId: span.spanId,
            parentSpanId: span.parentSpanId,
            start: span.startUnixNano,
            end: span.endUnixNano,
          };
          insertByEnd(spans.byEnd, added, endOf);
          spans.byId.set(added.spanId, added);
        }
      }
    }
    this.count.spansRefused += refused;
    // A span can arrive after the watermark has passed its end: it joins now, not at the next
    // watermark, up to a poll later. (The clock's rule stays with join(), called on a timer.)
    if (this.watermark !== undefined && refused < spans.length)
      this.joinEndedBy(this.watermark - this.maxJoinWait, this.watermark);
    return refused;
  }

  /**
   * The capture read every kernel event that ended before `unixNano`: the spans that ended by
   * then are joined now. An older watermark (a restarted loader's) is ignored.
   */
  advanceWatermark(unixNano: bigint): void {
    if (this.watermark !== undefined && unixNano <= this.watermark) return;
    this.watermark = unixNano;
    this.watermarkAdvancedAt = this.now();
    this.join();
  }

  /**
   * Joins every pending span the watermark has passed, or, while the capture is silent, the
   * clock; and ends the late taking of those the longest join wait has passed.
   */
  join(): void {
    const waitedLongest = this.now() - this.maxJoinWait;
    const { watermark, watermarkAdvancedAt } = this;
    if (watermark !== undefined && watermarkAdvancedAt !== undefined && watermarkAdvancedAt > waitedLongest)
      this.joinEndedBy(watermark - this.maxJoinWait, watermark);
    else
      this.joinEndedBy(waitedLongest, watermark !== undefined && watermark > waitedLongest ? watermark : waitedLongest);
  }

  /** Joins every pending span, whatever its end, in this turn: at shutdown, when no more events will come. */
  joinAll(): void {
    clearImmediate(this.nextTurn);
    this.nextTurn = undefined;
    this.joinEndedBy(2n ** 64n, 2n ** 64n, Infinity);
  }

  /**
   * Joins the spans that ended by `readyBy`, the `most` that ended first now and the others on the
   * next turns; those that ended by `retired` take no late events (retireLateTakers).
   */
  private joinEndedBy(retired: bigint, readyBy: bigint, most = SPANS_JOINED_PER_TURN): void {
    this.retireLateTakers(retired);
    const ready = this.pending.splice(0, Math.min(most, firstAt(this.pending, readyBy + 1n, pendingEnd)));
    if (ready.length === 0) return;
    const next = this.pending[0];
    if (next !== undefined && next.span.endUnixNano <= readyBy)
      this.nextTurn ??= setImmediate(() => {
        this.nextTurn = undefined;
        this.join();
      });
    this.recordDelays(ready);
    const joined: Attachment<S>[] = [];
    for (const { span, place } of ready) {
      const linked = linkedWaits(
        {
          pid: place.hostPid,
          ...(place.hostTid === undefined ? {} : { tid: place.hostTid }),
          from: span.startUnixNano,
          to: span.endUnixNano,
        },
        this.held,
      );
      this.count.eventsLinked += linked.length;
      const taken = this.take(span, place);
      const shed = this.shedDuring(span);
      if (shed) this.count.spansShed++;
      const events = taken === undefined ? linked : taken.events.concat(linked);
      if (place.hostTid === undefined && span.endUnixNano > retired)
        this.takeLate({ span, place, hadEvents: events.length > 0 });
      if (events.length === 0) continue;
      joined.push({
        span,
        place,
        events,
        ...(taken === undefined || taken.scopes.size === 0 ? {} : { scopes: taken.scopes }),
        ...(taken === undefined || taken.takenOver.size === 0 ? {} : { takenOver: taken.takenOver }),
        shed,
      });
    }
    this.count.spansJoined += ready.length;
    this.count.spansWithEvents += joined.length;
    if (joined.length > 0) this.options.onJoined(joined);
  }

  /** From now on the span takes its process's events that began in it, as they are read (lateTaker). */
  private takeLate(taker: LateTaker<S>): void {
    let takers = this.lateTakers.get(taker.place.hostPid);
    if (takers === undefined) this.lateTakers.set(taker.place.hostPid, (takers = []));
    insertByEnd(takers, taker, pendingEnd);
    this.lateTakerById?.set(taker.span.spanId, taker);
    this.lateTakerCount++;
  }

  /** Whether kernel events of the span's time were shed. */
  private shedDuring(span: S): boolean {
    const shed = this.shedTimes[firstAt(this.shedTimes, span.startUnixNano, (t) => t.to)];
    return shed !== undefined && shed.from <= span.endUnixNano;
  }

  counters(): CorrelatorCounters {
    return {
      ...this.count,
      eventsHeld: this.heldCount,
      eventBytesHeld: this.heldBytes,
      spansPending: this.spansPending(),
    };
  }

  lag(): CorrelatorLag {
    const now = this.now();
    return {
      newestEventAgeMs: this.newestEventEnd === undefined ? null : toMs(now - this.newestEventEnd),
      watermarkUnixMs: this.watermark === undefined ? null : toMs(this.watermark),
      watermarkAgeMs: this.watermark === undefined ? null : toMs(now - this.watermark),
      maxJoinWaitMs: this.options.maxJoinWaitMs,
      joinDelayMs: this.recentJoinDelays(),
      spansWaitingToJoin: this.spansPending(),
    };
  }

  private spansPending(): number {
    return this.pending.length;
  }

  private recordDelays(joined: { span: S }[]): void {
    // In ms as numbers (exact to a µs): no bigint made per span.
    const nowMs = toMs(this.now());
    for (const { span } of joined) {
      const ms = nowMs - toMs(span.endUnixNano);
      this.recentDelaysMs[this.joinsRecorded++ % RECENT_JOINS] = ms;
      this.joinDelay?.record(ms / 1000);
    }
  }

  private recentJoinDelays(): CorrelatorLag['joinDelayMs'] {
    if (this.joinsRecorded === 0) return null;
    const sorted = this.recentDelaysMs.slice(0, Math.min(this.joinsRecorded, RECENT_JOINS)).sort();
    const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
    return { p50: at(50), p99: at(99), max: sorted[sorted.length - 1] ?? 0 };
  }

  private instrument(meter: Meter): void {
    this.joinDelay = meter.createHistogram('causeway_correlator_join_delay_seconds', {
      description: "From an app span's end to its joining with its kernel events.",
      unit: 's',
      advice: { explicitBucketBoundaries: JOIN_DELAY_BUCKETS_S },
    });
    observe(
      meter,
      {
        spansJoined: counter('causeway_correlator_spans_joined', 'App spans joined with kernel events.'),
        spansWithEvents: counter('causeway_correlator_spans_with_events', 'App spans that had kernel events.'),
        spansShed: counter(
          'causeway_correlator_spans_shed',
          'App spans joined while kernel events of their time were shed (capture was behind); those with events left are marked causeway.attach.shed.',
        ),
        spansNotHere: counter('causeway_correlator_spans_not_here', 'App spans from processes not on this host.'),
        spansRefused: counter('causeway_correlator_spans_refused', 'App spans refused: too many waiting to be joined.'),
        eventsAttached: counter('causeway_correlator_events_attached', 'Kernel events attached to app spans.'),
        eventsAttachedLate: counter(
          'causeway_correlator_events_attached_late',
          "Kernel events attached to app spans known only by their process after they were joined: another thread's, begun inside the span, still going then.",
        ),
        eventsAttachedExact: counter(
          'causeway_correlator_events_attached_exact',
          'Kernel events attached to the span their thread context named (OTEP 4947): scope exact.',
        ),
        eventsAttachedAmbiguous: counter(
          'causeway_correlator_events_attached_ambiguous',
          'Kernel events attached to the innermost of several spans open on their thread, no thread context saying which: scope ambiguous.',
        ),
        eventsLinked: counter(
          'causeway_correlator_events_linked',
          "Other processes' waits linked to the app spans that waited on them.",
        ),
        eventsEvictedUnjoined: counter(
          'causeway_correlator_events_evicted_unjoined',
          'Kernel events evicted before any span took them.',
        ),
        eventsEvictedOverBound: counter(
          'causeway_correlator_events_evicted_over_bound',
          'Kernel events evicted before their retention ended: --max-events were held.',
        ),
        eventsHeld: gauge('causeway_correlator_events_held', 'Kernel events waiting for late spans.'),
        eventBytesHeld: gauge(
          'causeway_correlator_held_event_bytes',
          'Memory the records of the events waiting for late spans keep (the chunks they are in), counted once per as many events received as held.',
          'By',
        ),
        spansPending: gauge('causeway_correlator_spans_pending', 'App spans waiting for the kernel watermark.'),
        newestEventAge: gauge(
          'causeway_correlator_newest_event_age_seconds',
          'Time since the end of the newest kernel event received: how far capture lags.',
          's',
        ),
        watermarkAge: gauge(
          'causeway_correlator_watermark_age_seconds',
          'How far the event watermark trails the clock: every kernel event that ended before it has been read.',
          's',
        ),
      },
      () => {
        const { newestEventAgeMs, watermarkAgeMs } = this.lag();
        const seconds = (ms: number | null) => (ms === null ? undefined : ms / 1000);
        return {
          ...this.counters(),
          newestEventAge: seconds(newestEventAgeMs),
          watermarkAge: seconds(watermarkAgeMs),
        };
      },
    );
  }

  /**
   * The events stamped with the span, and those that began within it on its thread, unstamped,
   * that no inner span took, but messages; each with how surely it is the span's. Undefined when
   * it takes none, as most spans do: nothing is made for them (issue 11: a map, a set and the
   * other spans of the thread made for every span were a fifth of the main thread's garbage).
   */
  private take(span: S, place: SpanPlace): Taken | undefined {
    let taken: Taken | undefined;
    const byPlace = placeScope(place);
    const [from, to] = [this.sinceOrigin(span.startUnixNano), this.sinceOrigin(span.endUnixNano)];
    /** Claims event i of a list for the span. */
    const claim = ({ held }: ThreadEvents, i: number, scope: AttachScope) => {
      if (i < 0) return;
      taken ??= { events: [], lastStart: -Infinity, inStartOrder: true, scopes: new Map(), takenOver: new Set() };
      const event = held.event(i);
      // In order told from the lists' times, with no event's time made (one thread's, nothing stamped: most spans).
      const start = held.start(i);
      if (start < taken.lastStart) taken.inStartOrder = false;
      taken.lastStart = start;
      if (Number.isNaN(held.takenAt(i))) this.countAttached(scope);
      else {
        taken.takenOver.add(event);
        // Taken over: an event loop's spans, open together, may each take it over in turn.
        held.holdWhole(i, event);
      }
      held.take(i, from);
      taken.events.push(event);
      // Most events are as sure as the span's place says: they need no entry (a Map entry per event taken).
      if (scope !== byPlace) taken.scopes.set(event, scope);
    };
    for (const event of this.bySpan.get(span.spanId) ?? []) {
      if (event.spanContext?.traceId !== span.traceId || isMessage(event)) continue;
      const thread = this.byThread.get(event.pid)?.get(event.tid);
      if (thread !== undefined) claim(thread, this.indexOf(thread, event), A.CAUSEWAY_ATTACH_SCOPE_VALUE_EXACT);
    }
    let othersThen: { start: number; end: number }[] | undefined;
    for (const thread of this.listsOf(place.hostPid, place.hostTid)) {
      if (thread === undefined) continue;
      const { held } = thread;
      for (let i = held.firstStartingAt(from); i < held.length && held.start(i) < to; i++) {
        if (held.whole(i)?.spanContext !== undefined) continue; // its own span takes it
        if (held.takenAt(i) > from) continue; // an inner span has it
        if (messageAt(held, i)) continue; // messages only link (linked.ts)
        if (place.hostTid === undefined) claim(thread, i, A.CAUSEWAY_ATTACH_SCOPE_VALUE_PROCESS);
        else {
          othersThen ??= this.othersOnThread(span, place.hostPid, place.hostTid).map((o) => ({
            start: this.sinceOrigin(o.start),
            end: this.sinceOrigin(o.end),
          }));
          const scope = threadScope(from, othersThen, held.start(i));
          if (scope !== undefined) claim(thread, i, scope);
        }
      }
    }
    if (taken?.inStartOrder === false) taken.events.sort((a, b) => byTime(a.startUnixNano, b.startUnixNano));
    return taken;
  }

  /** The other spans of the span's thread that are not its ancestors (othersOnThread). */
  private othersOnThread(span: S, pid: number, tid: number): ThreadSpan[] {
    const spans = this.threadSpans.get(`${String(pid)}/${String(tid)}`);
    return spans === undefined ? [] : othersOnThread(span, spans);
  }

  /** Where an event held whole is in its thread's list (events starting together are few); -1 if gone. */
  private indexOf(thread: ThreadEvents, event: KernelEvent): number {
    const { held } = thread;
    const start = this.sinceOrigin(event.startUnixNano);
    for (let i = held.firstStartingAt(start); i < held.length && held.start(i) <= start; i++)
      if (held.whole(i) === event) return i;
    return -1;
  }

  /** The lists of process `pid`'s thread `tid`, or of all its threads. */
  private listsOf(pid: number, tid: number | undefined): (ThreadEvents | undefined)[] {
    const threads = this.byThread.get(pid);
    return threads === undefined ? [] : tid === undefined ? [...threads.values()] : [threads.get(tid)];
  }

  /** The events of the threads' lists that overlap [from, to] (those `keep` says, when given), by start. */
  private overlapping(lists: (ThreadEvents | undefined)[], from: bigint, to: bigint, keep?: Keep): KernelEvent[] {
    const found: KernelEvent[] = [];
    const [start, end] = [this.sinceOrigin(from), this.sinceOrigin(to)];
    for (const thread of lists) {
      if (thread === undefined) continue;
      window(thread, start - thread.longestNs, end, start, found, keep);
    }
    // One thread's are in start order already.
    return lists.length === 1 ? found : found.sort((a, b) => byTime(a.startUnixNano, b.startUnixNano));
  }

  /** Drops events that ended before `before`, and the oldest beyond maxEvents; and the spans that ended before it. */
  private evict(before: bigint): void {
    this.shedTimes.splice(
      0,
      firstAt(this.shedTimes, before, (t) => t.to),
    );
    for (const [key, { byEnd, byId }] of this.threadSpans) {
      const drop = firstAt(byEnd, before, endOf);
      for (let i = 0; i < drop; i++) {
        const gone = byEnd[i];
        if (gone !== undefined && byId.get(gone.spanId) === gone) byId.delete(gone.spanId);
      }
      byEnd.splice(0, drop);
      if (byEnd.length === 0) this.threadSpans.delete(key);
    }
    const ended = this.sinceOrigin(before);
    let earliest = Infinity;
    for (const [pid, threads] of this.byThread) {
      for (const [tid, thread] of threads) {
        const { held } = thread;
        let drop = 0;
        while (drop < held.length && held.end(drop) < ended) drop++;
        this.dropFront(thread, drop);
        if (held.length === 0) threads.delete(tid);
        else earliest = Math.min(earliest, held.start(0));
      }
      if (threads.size === 0) this.byThread.delete(pid);
    }
    // Over the bound: the longest lists lose their oldest first.
    while (this.heldCount > this.maxEvents) {
      let longest: ThreadEvents | undefined;
      for (const threads of this.byThread.values())
        for (const thread of threads.values()) if (thread.held.length > (longest?.held.length ?? 0)) longest = thread;
      if (longest === undefined) break;
      const over = Math.max(1, Math.min(longest.held.length, this.heldCount - this.maxEvents));
      this.count.eventsEvictedOverBound += over;
      this.dropFront(longest, over);
    }
    this.moveOrigin(earliest);
  }

  /** A time as the lists hold them: ns after the origin. */
  private sinceOrigin(t: bigint): number {
    return this.origin === undefined ? 0 : Number(t - this.origin);
  }

  /**
   * Moves the origin up to `earliest`, the start of the earliest event held once old ones were
   * evicted, when that is a day past it. With none held (evict dropped every list), the next event
   * sets it afresh.
   */
  private moveOrigin(earliest: number): void {
    if (earliest === Infinity) {
      this.origin = undefined;
      return;
    }
    if (this.origin === undefined || earliest < ORIGIN_MOVES_AFTER_NS) return;
    this.origin += BigInt(earliest);
    for (const threads of this.byThread.values()) for (const { held } of threads.values()) held.moveBase(earliest);
  }

  private forgetStamped(event: KernelEvent): void {
    const spanId = event.spanContext?.spanId;
    if (spanId === undefined) return;
    const stamped = this.bySpan.get(spanId);
    if (stamped === undefined) return;
    // Events go oldest first: it is at the front, or near it.
    const at = stamped.indexOf(event);
    if (at >= 0) stamped.splice(at, 1);
    if (stamped.length === 0) this.bySpan.delete(spanId);
  }

  private dropFront(thread: ThreadEvents, n: number): void {
    if (n === 0) return;
    const { held } = thread;
    const end = Math.min(held.length, n);
    for (let i = 0; i < end; i++) {
      if (Number.isNaN(held.takenAt(i))) this.count.eventsEvictedUnjoined++;
      if (messageAt(held, i)) thread.messages--;
      if (held.end(i) - held.start(i) === thread.longestNs) thread.longest--;
      const whole = held.whole(i);
      if (whole?.spanContext !== undefined) this.forgetStamped(whole);
    }
    held.removeFront(end);
    this.heldCount -= end;
    // The longest ones gone: the bound shrinks to what is left, so one long wait does not widen every later search.
    if (thread.longest <= 0) {
      thread.longestNs = 0;
      thread.longest = 0;
      for (let i = 0; i < held.length; i++) {
        const duration = held.end(i) - held.start(i);
        if (duration > thread.longestNs) {
          thread.longestNs = duration;
          thread.longest = 1;
        } else if (duration === thread.longestNs) thread.longest++;
      }
    }
  }
}
