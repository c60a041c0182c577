import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  Correlator,
  SPANS_JOINED_PER_TURN,
  scopeOf,
  type Attachment,
  type JoinableSpan,
  type SpanPlace,
} from '../../src/correlate/correlator.js';
import type { Meter } from '@opentelemetry/api';
import { runInNewContext } from 'node:vm';
import v8 from 'node:v8';
import type { KernelEvent } from '../../src/kernel/events.js';
import { Kind, LAYOUT, RECORD_SIZE } from '../../src/kernel/record.js';
import * as A from '../../src/semconv/attributes.js';
import { TestMeter } from '../export/meter.js';
import { record, runqueue, writeTask } from '../kernel/records.js';
import { shapedBatches } from '../kernel/shaped.js';

const S = 1_000_000_000n;
const MS = 1_000_000n;

function span(spanId: string, start: bigint, end: bigint, tid?: number): JoinableSpan {
  return {
    traceId: 'a'.repeat(32),
    spanId,
    name: spanId,
    startUnixNano: start,
    endUnixNano: end,
    attributes: tid === undefined ? {} : { 'causeway.thread.tid': tid },
    resource: { 'process.pid': 100 },
  };
}

function event(tid: number, start: bigint, end: bigint, kind: KernelEvent['kind'] = 'futex.wait'): KernelEvent {
  return { kind, pid: 100, tid, comm: 'app', startUnixNano: start, endUnixNano: end, attributes: {} };
}

function setup(
  now: { t: bigint },
  options: { maxEvents?: number; maxPendingSpans?: number; retentionMs?: number; meter?: Meter } = {},
) {
  const joined: Attachment[] = [];
  const place = (s: JoinableSpan): SpanPlace | undefined => {
    if (s.resource['process.pid'] !== 100) return undefined;
    const tid = s.attributes['causeway.thread.tid'];
    return typeof tid === 'number' ? { hostPid: 100, hostTid: tid } : { hostPid: 100 };
  };
  const correlator = new Correlator({
    onJoined: (a) => joined.push(...a),
    now: () => now.t,
    maxJoinWaitMs: 500,
    retentionMs: 10_000,
    maxEvents: 1_000_000,
    ...options,
  });
  const addSpans = (spans: JoinableSpan[]) => correlator.addSpans(spans.map((span) => ({ span, place: place(span) })));
  return { correlator, joined, addSpans };
}

test('an event goes to the innermost span of its thread that was active when it began', () => {
  const now = { t: 12n * S };
  const { correlator, joined, addSpans } = setup(now);
  correlator.addEvents([
    event(7, 10n * S + 100n * MS, 10n * S + 300n * MS),
    event(7, 10n * S + 700n * MS, 10n * S + 800n * MS),
    event(8, 10n * S + 150n * MS, 10n * S + 200n * MS),
  ]);
  addSpans([span('outer', 10n * S, 11n * S, 7), span('inner', 10n * S + 50n * MS, 10n * S + 400n * MS, 7)]);
  correlator.join();
  const byId = new Map(joined.map((a) => [a.span.spanId, a.events]));
  assert.deepEqual(
    byId.get('inner')?.map((e) => e.startUnixNano),
    [10n * S + 100n * MS],
  );
  assert.deepEqual(
    byId.get('outer')?.map((e) => e.startUnixNano),
    [10n * S + 700n * MS],
  );
  assert.equal(correlator.counters().eventsAttached, 2);
});

test('an inner span that comes after its outer one was joined takes its event over: handed on again as taken over, attached once', async () => {
  const now = { t: 12n * S };
  const { correlator, joined, addSpans } = setup(now);
  // As the capture makes them: held by column, made again each time they are read.
  const [events = []] = await shapedBatches(
    [[record({ kind: Kind.FUTEX_WAIT, pid: 100, tid: 7, startNs: 100n * MS, endNs: 300n * MS })]],
    { epochNs: 10n * S },
  );
  correlator.addEvents(events);
  addSpans([span('outer', 10n * S, 11n * S, 7)]);
  correlator.join();
  addSpans([span('inner', 10n * S + 50n * MS, 10n * S + 400n * MS, 7)]);
  correlator.join();
  const [outer, inner] = joined;
  assert.deepEqual(
    [outer?.span.spanId, outer?.events.length, outer?.takenOver, inner?.span.spanId, inner?.events.length],
    ['outer', 1, undefined, 'inner', 1],
  );
  const [taken] = inner?.events ?? [];
  assert.ok(taken !== undefined && inner?.takenOver?.has(taken) === true);
  assert.deepEqual([taken.kind, taken.tid, taken.startUnixNano], ['futex.wait', 7, 10n * S + 100n * MS]);
  assert.notEqual(taken, outer?.events[0], 'another object for the same event');
  assert.equal(correlator.counters().eventsAttached, 1);
});

test('without a watermark a span waits the longest join wait, then joins the events that arrived before it', () => {
  const now = { t: 10n * S };
  const { correlator, joined, addSpans } = setup(now);
  addSpans([span('late', 9n * S, 9n * S + 800n * MS, 7)]);
  correlator.join();
  assert.equal(joined.length, 0, 'the longest join wait (500 ms) has not passed since the span end');
  correlator.addEvents([event(7, 9n * S + 600n * MS, 9n * S + 700n * MS)]);
  now.t = 10n * S + 400n * MS;
  correlator.join();
  assert.equal(joined.length, 1);
  assert.equal(correlator.counters().spansPending, 0);
});

test("without a thread, a span takes its whole process's events and says so", () => {
  const now = { t: 11n * S };
  const { correlator, joined, addSpans } = setup(now);
  correlator.addEvents([event(7, 10n * S, 10n * S + MS), event(9, 10n * S + 2n * MS, 10n * S + 3n * MS)]);
  addSpans([span('process-level', 10n * S - MS, 10n * S + 5n * MS)]);
  correlator.join();
  assert.equal(joined[0]?.events.length, 2);
  assert.equal(joined[0].place.hostTid, undefined);
});

test('spans from processes not on this host are counted, not joined', () => {
  const now = { t: 100n * S };
  const { correlator, joined, addSpans } = setup(now);
  addSpans([{ ...span('elsewhere', S, 2n * S, 7), resource: { 'process.pid': 5 } }]);
  correlator.join();
  assert.equal(joined.length, 0);
  assert.equal(correlator.counters().spansNotHere, 1);
});

test('memory is bounded: old events are evicted and counted when never joined, excess spans are refused', () => {
  const now = { t: 100n * S };
  const { correlator, addSpans } = setup(now, { maxEvents: 3, maxPendingSpans: 1 });
  correlator.addEvents([event(7, 1n * S, 1n * S + MS)]); // older than the 10 s retention
  assert.equal(correlator.counters().eventsEvictedUnjoined, 1);
  correlator.addEvents([1n, 2n, 3n, 4n, 5n].map((i) => event(7, 99n * S + i * MS, 99n * S + i * MS + 1n)));
  assert.equal(correlator.counters().eventsHeld, 3);
  assert.equal(correlator.counters().eventsEvictedUnjoined, 3);
  assert.equal(correlator.counters().eventsEvictedOverBound, 2); // the first went by age
  assert.equal(addSpans([span('a', S, 2n * S, 7), span('b', S, 2n * S, 7)]), 1);
  assert.equal(correlator.counters().spansRefused, 1);
});

/**
 * Batches of records as the loader sends them, each with one wait of a quiet thread (tid 8)
 * among a busy thread's (tid 7), shaped: the records themselves are not kept.
 */
async function quietAmongBusy(batches: number, perBatch: number, epochNs: bigint): Promise<KernelEvent[][]> {
  const F = LAYOUT.cw_futex.fields;
  const records: Buffer[][] = [];
  for (let b = 0; b < batches; b++) {
    const at = (i: number) => BigInt(b * perBatch + i) * 1000n;
    const quiet = record({
      kind: Kind.FUTEX_WAIT,
      pid: 100,
      tid: 8,
      startNs: at(0),
      endNs: at(0) + 500n,
      body: (buf, u) => {
        writeTask(buf, u + F.waker, { pid: 100, tid: 7, comm: 'busy' });
      },
    });
    const busy = Array.from({ length: perBatch - 1 }, (_, i) =>
      runqueue({
        pid: 100,
        tid: 7,
        startNs: at(i + 1),
        endNs: at(i + 1) + 500n,
        holders: [{ pid: 50, tid: 51, comm: 'hog', oncpuNs: 400n }],
      }),
    );
    records.push([quiet, ...busy]);
  }
  return shapedBatches(records, { epochNs });
}

test('a quiet thread holding one event in each of many batches keeps its records in memory, not the batches', async (t) => {
  const m = new TestMeter();
  t.after(() => m.close());
  const [batches, perBatch, maxEvents] = [64, 512, 1024];
  const now = { t: 101n * S };
  const { correlator } = setup(now, { maxEvents, meter: m.meter });
  v8.setFlagsFromString('--expose-gc');
  const collect = runInNewContext('gc') as () => void;
  collect();
  const before = process.memoryUsage().arrayBuffers;
  // The busy thread's list is the longest: past maxEvents its oldest go, the quiet thread's stay.
  for (const events of await quietAmongBusy(batches, perBatch, 100n * S)) correlator.addEvents(events);
  const { eventsHeld, eventBytesHeld } = correlator.counters();
  assert.equal(eventsHeld, maxEvents);
  // Counted and compacted once per as many events received as held: then the chunks held from
  // have at least a quarter of their records held.
  const bound = 4 * RECORD_SIZE * eventsHeld;
  assert.ok(eventBytesHeld >= RECORD_SIZE * eventsHeld, `${String(eventBytesHeld)} bytes held`);
  assert.ok(
    eventBytesHeld <= bound,
    `${String(eventBytesHeld)} bytes held for ${String(eventsHeld)} events, over ${String(bound)} (the batches: ${String(batches * perBatch * RECORD_SIZE)})`,
  );
  assert.equal(await m.value('causeway_correlator_held_event_bytes'), eventBytesHeld);
  // What stays in memory: that, the batches received since (at most as many records as held),
  // give or take what else this test allocates.
  for (let i = 0; i < 3; i++) {
    collect();
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const kept = process.memoryUsage().arrayBuffers - before;
  const keptBound = bound + RECORD_SIZE * eventsHeld + 1024 * 1024;
  assert.ok(kept <= keptBound, `${String(kept)} bytes of buffers kept, over ${String(keptBound)}`);
});

test("spans ready at once are joined a turn's worth at a time, those that ended first first", async () => {
  const now = { t: 100n * S };
  const { correlator, joined, addSpans } = setup(now);
  const count = 2 * SPANS_JOINED_PER_TURN + 1;
  // Each span has an event of its own thread, so that each is handed on joined.
  const ends = Array.from({ length: count }, (_, i) => 90n * S + BigInt(count - i) * MS);
  correlator.addEvents(ends.map((end, i) => event(i, end - MS, end - MS + 1n)));
  addSpans(ends.map((end, i) => span(`s${String(i)}`, end - 2n * MS, end, i)));
  correlator.advanceWatermark(99n * S);
  assert.equal(joined.length, SPANS_JOINED_PER_TURN, 'one turn joins its share');
  assert.equal(correlator.counters().spansPending, count - SPANS_JOINED_PER_TURN);
  const firstTurn = joined.map((a) => a.span.endUnixNano);
  assert.deepEqual(
    firstTurn,
    [...ends].sort((a, b) => (a < b ? -1 : 1)).slice(0, SPANS_JOINED_PER_TURN),
    'those that ended first',
  );
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(joined.length, 2 * SPANS_JOINED_PER_TURN);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(joined.length, count, 'the rest on the turns after, without a new watermark');
  assert.equal(correlator.counters().spansPending, 0);
  assert.equal(correlator.counters().spansJoined, count);
});

test('joining everything at shutdown takes every span in one turn', () => {
  const now = { t: 55n * S };
  const { correlator, joined, addSpans } = setup(now);
  const count = SPANS_JOINED_PER_TURN + 3;
  correlator.addEvents(Array.from({ length: count }, (_, i) => event(i, 50n * S, 50n * S + 1n)));
  addSpans(Array.from({ length: count }, (_, i) => span(`s${String(i)}`, 50n * S - MS, 50n * S + MS, i)));
  correlator.joinAll();
  assert.equal(joined.length, count);
  assert.equal(correlator.counters().spansPending, 0);
});

/** The engine that wakes the request: its block I/O is linked to the request by waker. */
const ENGINE = { pid: 200, tid: 201, comm: 'engine' };

function engineIo(start: bigint, end: bigint): KernelEvent {
  return { kind: 'block.io', ...ENGINE, startUnixNano: start, endUnixNano: end, attributes: {} };
}

/**
 * The request (thread 7, 30 s to 31 s) and its wait from 30.1 s to 30.9 s, woken by the engine,
 * joined at 40 s: the engine's events linked to it by waker, as [pid, end].
 */
function linkedByWaker({ correlator, joined, addSpans }: ReturnType<typeof setup>): [unknown, bigint][] {
  correlator.addEvents([
    {
      ...event(7, 30n * S + 100n * MS, 30n * S + 900n * MS),
      attributes: {
        [A.ATTR_CAUSEWAY_FUTEX_WAKER_PID]: ENGINE.pid,
        [A.ATTR_CAUSEWAY_FUTEX_WAKER_TID]: ENGINE.tid,
        [A.ATTR_CAUSEWAY_FUTEX_WAKER_COMM]: ENGINE.comm,
      },
    },
  ]);
  addSpans([span('request', 30n * S, 31n * S, 7)]);
  correlator.join();
  return joined
    .flatMap((a) => a.events)
    .filter((e) => e.attributes[A.ATTR_CAUSEWAY_LINK] === 'waker')
    .map((e) => [e.attributes[A.ATTR_CAUSEWAY_REMOTE_PID], e.endUnixNano]);
}

test("a wait's waker thread is searched back as far as its longest held event: one that began long before is linked", () => {
  const joining = setup({ t: 40n * S }, { retentionMs: 60_000 });
  // A write that lasted 25.5 s (longer than any fixed look-back short of the retention), many
  // short ones after it began, and one within the wait.
  const short = Array.from({ length: 239 }, (_, i) => 6n * S + BigInt(i) * 100n * MS);
  joining.correlator.addEvents([
    engineIo(5n * S, 30n * S + 500n * MS),
    ...short.map((start) => engineIo(start, start + MS)),
    engineIo(30n * S + 200n * MS, 30n * S + 300n * MS),
  ]);
  assert.deepEqual(linkedByWaker(joining), [
    [ENGINE.pid, 30n * S + 500n * MS],
    [ENGINE.pid, 30n * S + 300n * MS],
  ]);
});

test('the lag names the newest kernel event, the watermark, the join delays and the spans waiting', () => {
  const now = { t: 20n * S };
  const { correlator, addSpans } = setup(now);
  assert.deepEqual(correlator.lag(), {
    newestEventAgeMs: null,
    watermarkUnixMs: null,
    watermarkAgeMs: null,
    maxJoinWaitMs: 500,
    joinDelayMs: null,
    spansWaitingToJoin: 0,
  });
  correlator.addEvents([event(7, 19n * S, 19n * S + 750n * MS), event(7, 19n * S, 19n * S + 100n * MS)]);
  addSpans([span('waiting', 19n * S, 19n * S + 900n * MS, 7), span('joined', 19n * S, 19n * S + 200n * MS, 7)]);
  correlator.advanceWatermark(19n * S + 800n * MS);
  assert.deepEqual(correlator.lag(), {
    newestEventAgeMs: 250,
    watermarkUnixMs: 19_800,
    watermarkAgeMs: 200,
    maxJoinWaitMs: 500,
    joinDelayMs: { p50: 800, p99: 800, max: 800 },
    spansWaitingToJoin: 1,
  });
});

test('a span on a known thread is joined as soon as the watermark passes its end, not later', () => {
  const now = { t: 20n * S };
  const { correlator, joined, addSpans } = setup(now);
  correlator.addEvents([event(7, 19n * S + 900n * MS, 19n * S + 950n * MS)]);
  addSpans([span('request', 19n * S + 850n * MS, 19n * S + 990n * MS, 7)]);
  correlator.advanceWatermark(19n * S + 980n * MS);
  assert.equal(joined.length, 0, 'the watermark has not passed its end: an event ending before it may be unread');
  correlator.advanceWatermark(19n * S + 995n * MS);
  assert.deepEqual(
    joined.map((a) => [a.span.spanId, a.events.length]),
    [['request', 1]],
    'joined at the watermark, 10 ms after its end, with no timer',
  );
  assert.equal(correlator.lag().joinDelayMs?.max, 10);
});

test('a span that arrives after the watermark has passed its end is joined as it arrives, not at the next watermark', () => {
  const now = { t: 20n * S };
  const { correlator, joined, addSpans } = setup(now);
  correlator.addEvents([event(7, 19n * S + 900n * MS, 19n * S + 950n * MS)]);
  correlator.advanceWatermark(19n * S + 995n * MS);
  addSpans([span('request', 19n * S + 850n * MS, 19n * S + 990n * MS, 7), span('later', 19n * S, 21n * S, 7)]);
  assert.deepEqual(
    joined.map((a) => [a.span.spanId, a.events.length]),
    [['request', 1]],
    'joined with its event; the span the watermark has not passed waits',
  );
  assert.equal(correlator.counters().spansPending, 1);
});

test('a span of a time whose kernel events were shed is joined marked so, one left with no event counted; one of another time is not', () => {
  const now = { t: 20n * S };
  const { correlator, joined, addSpans } = setup(now);
  correlator.addEvents([
    event(7, 19n * S + 100n * MS, 19n * S + 150n * MS),
    event(7, 19n * S + 360n * MS, 19n * S + 370n * MS),
  ]);
  // Two frames' worth shed one after the other: one stretch, 19.2 s to 19.4 s.
  correlator.addShed(19n * S + 200n * MS, 19n * S + 300n * MS);
  correlator.addShed(19n * S + 305n * MS, 19n * S + 400n * MS);
  addSpans([
    span('before', 19n * S + 50n * MS, 19n * S + 180n * MS, 7),
    span('during', 19n * S + 350n * MS, 19n * S + 380n * MS, 7),
    span('across', 19n * S + 90n * MS, 19n * S + 250n * MS, 8),
    span('after', 19n * S + 450n * MS, 19n * S + 500n * MS, 7),
  ]);
  correlator.advanceWatermark(19n * S + 600n * MS);
  assert.deepEqual(
    joined.map((a) => [a.span.spanId, a.events.length, a.shed]),
    [
      ['before', 1, false],
      ['during', 1, true],
    ],
    'a span with no events is not handed on',
  );
  assert.equal(correlator.counters().spansShed, 2, 'across, with no event left, is counted');
  assert.equal(correlator.counters().spansWithEvents, 2);
});

test('a time shed that reaches back over earlier ones is held as one with them: a span between them is marked', () => {
  const now = { t: 20n * S };
  const { correlator, joined, addSpans } = setup(now);
  correlator.addEvents([event(7, 19n * S + 60n * MS, 19n * S + 65n * MS)]);
  correlator.addShed(19n * S + 100n * MS, 19n * S + 200n * MS);
  correlator.addShed(19n * S + 250n * MS, 19n * S + 300n * MS);
  // The sidecar's, of records read late, after the kernel's of later times.
  correlator.addShed(19n * S + 50n * MS, 19n * S + 260n * MS);
  addSpans([span('between', 19n * S + 55n * MS, 19n * S + 70n * MS, 7)]);
  correlator.advanceWatermark(19n * S + 400n * MS);
  assert.deepEqual(
    joined.map((a) => [a.span.spanId, a.shed]),
    [['between', true]],
  );
});

test("a span known only by its process is joined as the watermark passes its end; another thread's event that began inside it and was still going is taken as it is read, up to the longest join wait past its end", () => {
  const now = { t: 20n * S };
  const { correlator, joined, addSpans } = setup(now);
  correlator.addEvents([event(7, 19n * S + 810n * MS, 19n * S + 820n * MS)]);
  addSpans([span('request', 19n * S + 800n * MS, 19n * S + 900n * MS)]);
  correlator.advanceWatermark(19n * S + 890n * MS);
  assert.equal(joined.length, 0, 'the watermark has not passed its end');
  correlator.advanceWatermark(19n * S + 900n * MS);
  assert.deepEqual(
    joined.map((a) => [a.span.spanId, a.late === true, a.events.map((e) => e.tid)]),
    [['request', false, [7]]],
    'joined at the watermark, with what was read by then',
  );
  // A thread's sync began inside the span, and is read once it returns, after the watermark passed the span's end.
  correlator.addEvents([
    event(8, 19n * S + 850n * MS, 20n * S + 200n * MS),
    event(9, 19n * S + 950n * MS, 20n * S + 210n * MS),
  ]);
  assert.deepEqual(
    joined.map((a) => [a.span.spanId, a.late === true, a.events.map((e) => e.tid)]),
    [
      ['request', false, [7]],
      ['request', true, [8]],
    ],
    'the sync that began inside it, not the wait that began after its end',
  );
  correlator.advanceWatermark(20n * S + 400n * MS);
  correlator.addEvents([event(10, 19n * S + 860n * MS, 20n * S + 420n * MS)]);
  assert.equal(joined.length, 2, 'the watermark is 500 ms past its end: it takes no more');
  const counters = correlator.counters();
  assert.equal(counters.spansJoined, 1);
  assert.equal(counters.spansWithEvents, 1);
  assert.equal(counters.eventsAttached, 2);
  assert.equal(counters.eventsAttachedLate, 1);
});

test('an event read late goes to the innermost joined span of its process it began in, and one stamped with a span to that span', () => {
  const now = { t: 20n * S };
  const { correlator, joined, addSpans } = setup(now);
  addSpans([
    span('outer', 19n * S, 19n * S + 500n * MS),
    span('inner', 19n * S + 100n * MS, 19n * S + 200n * MS),
    span('named', 19n * S + 300n * MS, 19n * S + 400n * MS),
  ]);
  correlator.advanceWatermark(19n * S + 500n * MS);
  assert.equal(joined.length, 0, 'none had events when it was joined');
  assert.equal(correlator.counters().spansJoined, 3);
  const stamped = {
    ...event(9, 19n * S + 150n * MS, 20n * S),
    spanContext: { traceId: 'a'.repeat(32), spanId: 'named' },
  };
  correlator.addEvents([
    event(8, 19n * S + 150n * MS, 20n * S),
    event(8, 19n * S + 450n * MS, 20n * S + 10n * MS),
    stamped,
  ]);
  assert.deepEqual(
    joined.map((a) => [a.span.spanId, a.late, a.events.map((e) => e.startUnixNano)]),
    [
      ['inner', true, [19n * S + 150n * MS]],
      ['outer', true, [19n * S + 450n * MS]],
      ['named', true, [19n * S + 150n * MS]],
    ],
  );
  assert.equal(joined[2]?.scopes?.get(stamped), 'exact');
  assert.equal(
    joined[0]?.scopes?.get(joined[0].events[0] as KernelEvent),
    undefined,
    'process scope, as its place says',
  );
  assert.equal(correlator.counters().spansWithEvents, 3);
});

test('an event read late stamped with a span finds it among spans joined after the first stamped event, and not once it is past the longest join wait', () => {
  const now = { t: 20n * S };
  const { correlator, joined, addSpans } = setup(now);
  const stamped = (spanId: string, start: bigint) => ({
    ...event(9, start, start + 10n * MS),
    spanContext: { traceId: 'a'.repeat(32), spanId },
  });
  addSpans([span('first', 19n * S, 19n * S + 100n * MS)]);
  correlator.advanceWatermark(19n * S + 100n * MS);
  correlator.addEvents([stamped('first', 19n * S + 200n * MS)]);
  addSpans([span('second', 19n * S + 300n * MS, 19n * S + 400n * MS)]);
  correlator.advanceWatermark(19n * S + 400n * MS);
  correlator.addEvents([stamped('second', 19n * S + 450n * MS)]);
  correlator.advanceWatermark(19n * S + 700n * MS);
  correlator.addEvents([stamped('first', 19n * S + 710n * MS), stamped('second', 19n * S + 720n * MS)]);
  assert.deepEqual(
    joined.map((a) => [a.span.spanId, a.late, a.events.map((e) => e.startUnixNano)]),
    [
      ['first', true, [19n * S + 200n * MS]],
      ['second', true, [19n * S + 450n * MS]],
      ['second', true, [19n * S + 720n * MS]],
    ],
    'the first span ended 600 ms before the last watermark (the longest join wait is 500 ms), the second 300 ms',
  );
});

test('spans joined and taking late events count toward the spans held at most', () => {
  const now = { t: 20n * S };
  const { correlator, addSpans } = setup(now, { maxPendingSpans: 2 });
  addSpans([span('first', 19n * S, 19n * S + 100n * MS), span('second', 19n * S, 19n * S + 200n * MS)]);
  correlator.advanceWatermark(19n * S + 300n * MS);
  assert.equal(correlator.counters().spansPending, 0);
  assert.equal(addSpans([span('third', 19n * S, 19n * S + 400n * MS)]), 1, 'two are still taking late events');
  correlator.advanceWatermark(19n * S + 650n * MS);
  assert.equal(addSpans([span('fourth', 19n * S, 19n * S + 700n * MS)]), 0, 'the first is past the longest join wait');
});

test('with no watermark for the longest join wait (capture down) a span is joined by the clock that long after its end', () => {
  const now = { t: 20n * S };
  const { correlator, joined, addSpans } = setup(now);
  correlator.advanceWatermark(19n * S);
  correlator.addEvents([event(7, 19n * S + 850n * MS, 19n * S + 860n * MS)]);
  addSpans([span('request', 19n * S + 800n * MS, 19n * S + 900n * MS, 7)]);
  correlator.join();
  assert.equal(joined.length, 0, 'the watermark stopped before its end and the longest wait has not passed');
  now.t = 20n * S + 450n * MS;
  correlator.join();
  assert.equal(joined.length, 0, 'the last watermark came 450 ms ago: the capture may only be slow');
  now.t = 20n * S + 500n * MS;
  correlator.join();
  assert.deepEqual(
    joined.map((a) => a.span.spanId),
    ['request'],
  );
  correlator.advanceWatermark(18n * S);
  assert.equal(correlator.lag().watermarkAgeMs, 1500, "an older watermark (a restarted loader's) is ignored");
});

test('however far the capture trails, a span waits for the watermark and is joined with its events', () => {
  const now = { t: 20n * S };
  const { correlator, joined, addSpans } = setup(now);
  addSpans([span('thread', 15n * S, 15n * S + 100n * MS, 7), span('process', 15n * S, 15n * S + 100n * MS)]);
  // Five seconds behind, the capture is still reading, its watermark still coming.
  correlator.addEvents([event(7, 15n * S + 20n * MS, 15n * S + 40n * MS)]);
  for (let ms = 0n; ms < 50n; ms += 10n) {
    now.t = 20n * S + ms * MS;
    correlator.advanceWatermark(15n * S + ms * MS);
    correlator.join();
  }
  assert.equal(joined.length, 0, 'the watermark has not passed their end');
  // Another thread's long wait that began inside the span, read once it ended.
  correlator.addEvents([event(8, 15n * S + 80n * MS, 15n * S + 580n * MS)]);
  correlator.advanceWatermark(15n * S + 600n * MS);
  assert.deepEqual(
    joined.map((a) => [a.span.spanId, a.events.map((e) => e.tid)]),
    [
      ['thread', [7]],
      ['process', [7, 8]],
    ],
  );
});

test('its counters and lag are instruments of the meter it is given, read at each collection', async (t) => {
  const m = new TestMeter();
  t.after(() => m.close());
  const now = { t: 20n * S };
  const { correlator, addSpans } = setup(now, { meter: m.meter });
  assert.equal(await m.value('causeway_correlator_newest_event_age_seconds'), undefined, 'no event yet');
  correlator.addEvents([event(7, 19n * S, 19n * S + 750n * MS), event(8, 19n * S, 19n * S + 100n * MS)]);
  addSpans([span('done', 19n * S - MS, 19n * S + MS, 7), span('waiting', 19n * S + MS, 19n * S + 900n * MS, 7)]);
  addSpans([{ ...span('elsewhere', S, 2n * S, 7), resource: { 'process.pid': 5 } }]);
  correlator.join();
  assert.equal(await m.value('causeway_correlator_spans_joined'), 1);
  assert.equal(await m.value('causeway_correlator_spans_with_events'), 1);
  assert.equal(await m.value('causeway_correlator_events_attached'), 1);
  assert.equal(await m.value('causeway_correlator_spans_not_here'), 1);
  assert.equal(await m.value('causeway_correlator_spans_pending'), 1);
  assert.equal(await m.value('causeway_correlator_events_held'), 2);
  assert.equal(await m.value('causeway_correlator_newest_event_age_seconds'), 0.25);
  now.t += S;
  assert.equal(await m.value('causeway_correlator_newest_event_age_seconds'), 1.25, 'read anew at each collection');
});

test('events that arrive out of start order are each found by the span they began in', () => {
  const now = { t: 12n * S };
  const { correlator, joined, addSpans } = setup(now);
  // In the order their intervals end, as the loader sends them: a long wait that began first
  // arrives after two short ones, and one more arrives between the earlier ones, in two batches.
  correlator.addEvents([
    event(7, 10n * S + 300n * MS, 10n * S + 310n * MS),
    event(7, 10n * S + 500n * MS, 10n * S + 510n * MS),
  ]);
  correlator.addEvents([
    event(7, 10n * S + 100n * MS, 10n * S + 600n * MS),
    event(7, 10n * S + 400n * MS, 10n * S + 700n * MS),
  ]);
  addSpans([
    span('first', 10n * S + 50n * MS, 10n * S + 150n * MS, 7),
    span('middle', 10n * S + 350n * MS, 10n * S + 450n * MS, 7),
    span('last', 10n * S + 250n * MS, 10n * S + 550n * MS, 7),
  ]);
  correlator.join();
  const starts = new Map(joined.map((a) => [a.span.spanId, a.events.map((e) => e.startUnixNano)]));
  assert.deepEqual(starts.get('first'), [10n * S + 100n * MS]);
  assert.deepEqual(starts.get('middle'), [10n * S + 400n * MS]);
  assert.deepEqual(starts.get('last'), [10n * S + 300n * MS, 10n * S + 500n * MS]);
});

test("a span's events are handed on in start order: its stamped ones and every thread's of its process", () => {
  const now = { t: 12n * S };
  const { correlator, joined, addSpans } = setup(now);
  const request = span('request', 10n * S, 11n * S);
  // Taken thread by thread (7, then 8) after the stamped ones: in that order they would be 350, 100, 300, 200, 400.
  const stamped = {
    ...event(9, 10n * S + 350n * MS, 10n * S + 360n * MS),
    spanContext: { traceId: request.traceId, spanId: 'request' },
  };
  correlator.addEvents([
    event(7, 10n * S + 100n * MS, 10n * S + 110n * MS),
    event(8, 10n * S + 200n * MS, 10n * S + 210n * MS),
    event(7, 10n * S + 300n * MS, 10n * S + 310n * MS),
    stamped,
    event(8, 10n * S + 400n * MS, 10n * S + 410n * MS),
  ]);
  addSpans([request]);
  correlator.join();
  assert.deepEqual(
    joined[0]?.events.map((e) => [e.tid, (e.startUnixNano - 10n * S) / MS]),
    [
      [7, 100n],
      [8, 200n],
      [7, 300n],
      [9, 350n],
      [8, 400n],
    ],
  );
});

test('on a node up for months, held events keep their times to the nanosecond and go to the span they began in', () => {
  const DAY = 86_400n * S;
  const now = { t: DAY + S };
  const { correlator, joined, addSpans } = setup(now, { retentionMs: 20 * 86_400_000 });
  correlator.addEvents([event(7, DAY + 1n, DAY + 2n)]);
  // The first event gone, the times held move to the next; 109 days after the first, at an odd
  // nanosecond, is past what a number holds exactly (2^53 ns, about 104 days).
  now.t = 100n * DAY;
  correlator.addEvents([event(7, 100n * DAY + 5n, 100n * DAY + 9n)]);
  now.t = 110n * DAY + S;
  correlator.addEvents([event(7, 110n * DAY + 8n, 110n * DAY + 21n)]);
  addSpans([
    span('earlier', 100n * DAY + 5n, 100n * DAY + 9n, 7),
    span('later', 110n * DAY + 8n, 110n * DAY + 31n, 7),
    span('just after', 110n * DAY + 9n, 110n * DAY + 30n, 7),
  ]);
  correlator.join();
  const times = new Map(joined.map((a) => [a.span.spanId, a.events.map((e) => [e.startUnixNano, e.endUnixNano])]));
  assert.deepEqual(times.get('earlier'), [[100n * DAY + 5n, 100n * DAY + 9n]]);
  assert.deepEqual(times.get('later'), [[110n * DAY + 8n, 110n * DAY + 21n]]);
  assert.deepEqual(times.get('just after') ?? [], []);
});

test('a stamped event goes to the span its thread context named, whatever its thread, with scope exact', () => {
  const now = { t: 12n * S };
  const { correlator, joined, addSpans } = setup(now);
  const first = span('first', 10n * S, 10n * S + 500n * MS, 7);
  const second = span('second', 10n * S + 100n * MS, 10n * S + 600n * MS, 7);
  // Begun on thread 7 while second was the later-started span, but published as first's; and one
  // stamped on a pool thread (9) that neither span names.
  const onLoop = {
    ...event(7, 10n * S + 200n * MS, 10n * S + 300n * MS),
    spanContext: { traceId: first.traceId, spanId: 'first' },
  };
  const onPool = {
    ...event(9, 10n * S + 250n * MS, 10n * S + 350n * MS),
    spanContext: { traceId: first.traceId, spanId: 'first' },
  };
  const unstamped = event(7, 10n * S + 400n * MS, 10n * S + 450n * MS);
  correlator.addEvents([onLoop, onPool, unstamped]);
  addSpans([first, second]);
  correlator.join();
  const byId = new Map(joined.map((a) => [a.span.spanId, a]));
  const firstJoined = byId.get('first');
  assert.deepEqual(firstJoined?.events, [onLoop, onPool]);
  assert.deepEqual([...(firstJoined.scopes?.values() ?? [])], ['exact', 'exact']);
  // The unstamped one began while both were open on thread 7: the innermost takes it, ambiguous.
  assert.deepEqual(byId.get('second')?.events, [unstamped]);
  assert.equal(byId.get('second')?.scopes?.get(unstamped), 'ambiguous');
  assert.equal(correlator.counters().eventsAttachedExact, 2);
  assert.equal(correlator.counters().eventsAttachedAmbiguous, 1);
});

test('a stamped event of another trace with the same span id is not taken', () => {
  const now = { t: 12n * S };
  const { correlator, joined, addSpans } = setup(now);
  correlator.addEvents([
    { ...event(7, 10n * S + 200n * MS, 10n * S + 300n * MS), spanContext: { traceId: 'b'.repeat(32), spanId: 'only' } },
  ]);
  addSpans([span('only', 10n * S, 10n * S + 500n * MS, 7)]);
  correlator.join();
  assert.equal(joined.length, 0);
});

test("an event under a child span on the child's thread is thread scope: its open parent is an ancestor", () => {
  const now = { t: 12n * S };
  const { correlator, joined, addSpans } = setup(now);
  const wait = event(7, 10n * S + 200n * MS, 10n * S + 300n * MS);
  correlator.addEvents([wait]);
  addSpans([
    span('server', 10n * S, 11n * S, 7),
    { ...span('handler', 10n * S + 100n * MS, 10n * S + 900n * MS, 7), parentSpanId: 'server' },
  ]);
  correlator.join();
  const handler = joined.find((a) => a.span.spanId === 'handler');
  assert.deepEqual(handler?.events, [wait]);
  assert.equal(scopeOf(handler, wait), 'thread');
});

test('an event of a span known only by its process is process scope', () => {
  const now = { t: 12n * S };
  const { correlator, joined, addSpans } = setup(now);
  const wait = event(7, 10n * S + 200n * MS, 10n * S + 300n * MS);
  correlator.addEvents([wait]);
  addSpans([span('somewhere', 10n * S, 10n * S + 500n * MS)]);
  correlator.join();
  assert.equal(scopeOf(single(joined), wait), 'process');
});

function single<T>(items: T[]): T {
  assert.equal(items.length, 1);
  return items[0] as T;
}

test('a waker thread is still searched back as far as its longest held wait after another as long was evicted', () => {
  const joining = setup({ t: 40n * S }, { retentionMs: 60_000, maxEvents: 3 });
  // Two writes of 25.5 s and a short one; the request's wait then puts the bound over: the first write goes.
  joining.correlator.addEvents([
    engineIo(5n * S, 30n * S + 500n * MS),
    engineIo(5n * S + 100n * MS, 30n * S + 600n * MS),
    engineIo(30n * S + 200n * MS, 30n * S + 300n * MS),
  ]);
  assert.deepEqual(linkedByWaker(joining), [
    [ENGINE.pid, 30n * S + 600n * MS],
    [ENGINE.pid, 30n * S + 300n * MS],
  ]);
  assert.equal(joining.correlator.counters().eventsEvictedOverBound, 1);
});
