import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EventBatch, type KernelEvent } from '../../src/kernel/events.js';
import { Kind } from '../../src/kernel/record.js';
import * as A from '../../src/semconv/attributes.js';
import { MAX_BUFFERED, PACKED_ROWS } from '../../src/store/store.js';
import { TestMeter } from '../export/meter.js';
import { record, runqueue } from '../kernel/records.js';
import { shaped } from '../kernel/shaped.js';
import { MS, T0, appSpan, ids, kernelEvent, storeWith } from './traces.js';

const at = (ms: number) => T0 + BigInt(ms) * MS;
const task = { pid: 10, tid: 11 };

test('a thread window returns the events overlapping it, in start order, with their attributes', async (t) => {
  const store = await storeWith(
    [],
    [
      kernelEvent('futex.wait', task, at(50), at(60), { 'causeway.futex.uaddr': '0x10' }),
      kernelEvent('sched.runqueue', task, at(5), at(20)),
      kernelEvent('sched.runqueue', { pid: 10, tid: 12 }, at(5), at(20)),
      kernelEvent('sched.runqueue', task, at(200), at(220)),
    ],
  );
  t.after(() => store.close());
  const events = await store.events({ pid: 10, tid: 11, from: at(10), to: at(100) });
  assert.deepEqual(
    events.map((e) => [e.kind, e.startUnixNano]),
    [
      ['sched.runqueue', at(5)],
      ['futex.wait', at(50)],
    ],
  );
  assert.equal(events[1]?.attributes['causeway.futex.uaddr'], '0x10');
  assert.equal((await store.events({ pid: 10, from: at(10), to: at(100) })).length, 3);
});

test('a window finds an event that began seconds before it among short ones, and the GPU events of other processes that overlap it', async (t) => {
  const gpu = { pid: 20, tid: 21 };
  const store = await storeWith(
    [],
    [
      kernelEvent('sched.blocked', task, at(0), at(20_000)),
      kernelEvent('cuda.sync', gpu, at(1_000), at(19_000)),
      ...Array.from({ length: 100 }, (_, i) => kernelEvent('futex.wait', task, at(18_450 + i), at(18_450 + i) + 1000n)),
    ],
  );
  t.after(() => store.close());
  const read = await store.events({ ...task, from: at(18_500), to: at(30_000) });
  assert.deepEqual(read.map((e) => e.kind).slice(0, 1), ['sched.blocked']);
  assert.equal(read.length, 1 + 50, 'the long wait and the short ones that began in the window');
  assert.deepEqual(
    (await store.gpuEvents(at(18_500), at(30_000), task.pid)).map((e) => e.startUnixNano),
    [at(1_000)],
  );
});

test("a capture batch's events are stored but its messages, with consecutive ids given in the batch, read as they were shaped", async (t) => {
  const store = await storeWith([], []);
  t.after(() => store.close());
  const ns = (ms: number) => BigInt(ms) * MS;
  const events = await shaped(
    [
      runqueue({
        pid: 10,
        tid: 11,
        startNs: ns(1),
        endNs: ns(2),
        holders: [{ pid: 50, tid: 51, comm: 'hog', oncpuNs: MS }],
      }),
      record({ kind: Kind.FUTEX_WAIT, pid: 10, tid: 11, startNs: ns(3), endNs: ns(4) }),
      record({ kind: Kind.SCHED_BLOCKED, pid: 10, tid: 12, startNs: ns(5), endNs: ns(6) }),
    ],
    { epochNs: T0 },
  );
  const message = kernelEvent(A.CAUSEWAY_KIND_VALUE_IPC_MESSAGE, task, at(2), at(2));
  const batch = EventBatch.of([events[0], message, ...events.slice(1)] as KernelEvent[]);
  store.addEvents([kernelEvent('futex.wait', task, at(0), at(1))]);
  store.addBatch(batch);
  store.addEvents([kernelEvent('futex.wait', task, at(7), at(8))]);
  assert.deepEqual(
    Array.from({ length: batch.length }, (_, i) => batch.storeId(i)),
    [1, undefined, 2, 3],
    'the ids after the one before, the message given none',
  );
  await store.flush();
  const stored = await store.events({ pid: 10, from: at(0), to: at(10) });
  assert.deepEqual(
    stored.map((e) => [e.kind, e.tid, e.startUnixNano, e.endUnixNano]),
    [
      ['futex.wait', 11, at(0), at(1)],
      ...events.map((e) => [e.kind, e.tid, e.startUnixNano, e.endUnixNano]),
      ['futex.wait', 11, at(7), at(8)],
    ],
  );
  assert.deepEqual(
    stored[1]?.attributes,
    events[0]?.attributes,
    "the run-queue wait's holders and all, from its record",
  );
});

test('retention deletes rows older than the window and the oldest beyond the size bounds, and counts them', async (t) => {
  let now = at(0);
  const store = await storeWith([], [], { retentionMs: 1000, maxEvents: 3, now: () => now });
  t.after(() => store.close());
  store.addEvents([1, 2, 3, 4, 5].map((i) => kernelEvent('futex.wait', task, at(i), at(i + 1))));
  store.addSpans([appSpan({ trace: 1, span: 1, start: at(0), end: at(10), pid: 10, tid: 11 })]);
  now = at(1000); // a second after the store's first write (retention applies at most once a second)
  await store.flush();
  assert.deepEqual(
    (await store.events({ pid: 10, from: at(0), to: at(100) })).map((e) => e.startUnixNano),
    [at(3), at(4), at(5)],
  );
  now = at(5000);
  await store.flush();
  assert.equal((await store.size()).events, 0);
  assert.deepEqual(await store.spans(ids(1).traceId), []);
  assert.equal(store.counters().rowsExpired, 6);
});

test('retention after writes that deleted nothing: a late row, the row bounds crossed later, and a shed time added later are each deleted when due', async (t) => {
  let now = at(10_000);
  const store = await storeWith([], [], { retentionMs: 10_000, maxEvents: 3, maxSpans: 2, now: () => now });
  t.after(() => store.close());
  // Each write a second after the one before: the retention and the row bounds apply at most once a second.
  const flush = () => {
    now += 1000n * MS;
    return store.flush();
  };
  const spanAt = (n: number, end: number) =>
    appSpan({ trace: n, span: n, start: at(end - 1), end: at(end), pid: 10, tid: 11 });
  // Writes within the bounds and the window: nothing to delete.
  store.addEvents([kernelEvent('futex.wait', task, at(9500), at(9600))]);
  store.addSpans([spanAt(1, 9600)]);
  await flush();
  await flush();
  // A row that ended before the window, written after retention last ran, goes at this write.
  store.addEvents([kernelEvent('futex.wait', task, at(100), at(200))]);
  store.addSpans([spanAt(2, 200)]);
  await flush();
  assert.deepEqual(await store.rows('SELECT count(*) FROM kernel_events'), [[1n]]);
  assert.deepEqual(await store.rows('SELECT span_id FROM spans'), [[ids(1).spanId]]);
  // A shed time before the oldest span, added now, overlaps none.
  store.addShed(at(9000), at(9100));
  await flush();
  assert.deepEqual(await store.rows('SELECT count(*) FROM shed_times'), [[0n]]);
  // The row bounds crossed by later writes: the oldest beyond them go.
  store.addEvents([1, 2, 3].map((i) => kernelEvent('futex.wait', task, at(9700 + i), at(9800 + i))));
  store.addSpans([spanAt(3, 9700), spanAt(4, 9800)]);
  await flush();
  assert.deepEqual(await store.rows('SELECT end_ns FROM kernel_events ORDER BY event_id'), [
    [at(9801)],
    [at(9802)],
    [at(9803)],
  ]);
  assert.deepEqual(await store.rows('SELECT span_id FROM spans ORDER BY seq'), [[ids(3).spanId], [ids(4).spanId]]);
  assert.equal(store.counters().rowsExpired, 4);
});

test('the retention and the row bounds apply at most once a second of the store clock (at once when it is set back): rows past them stay until then', async (t) => {
  let now = at(10_000);
  const store = await storeWith([], [], { maxEvents: 2, now: () => now }); // its first write applied them
  t.after(() => store.close());
  store.addEvents([1, 2, 3].map((i) => kernelEvent('futex.wait', task, at(9000 + i), at(9100 + i))));
  now = at(10_999);
  await store.flush();
  assert.deepEqual(await store.rows('SELECT count(*) FROM kernel_events'), [[3n]]);
  assert.equal(store.counters().rowsExpired, 0);
  now = at(11_000);
  await store.flush();
  assert.deepEqual(await store.rows('SELECT end_ns FROM kernel_events ORDER BY event_id'), [[at(9102)], [at(9103)]]);
  assert.equal(store.counters().rowsExpired, 1);
  // The clock set back an hour: they apply at once, not an hour later.
  store.addEvents([kernelEvent('futex.wait', task, at(9200), at(9300))]);
  now = at(11_000 - 3_600_000);
  await store.flush();
  assert.deepEqual(await store.rows('SELECT end_ns FROM kernel_events ORDER BY event_id'), [[at(9103)], [at(9300)]]);
  assert.equal(store.counters().rowsExpired, 2);
});

test('flushes asked while a write runs share one write behind it, which takes every row handed over by then', async (t) => {
  const store = await storeWith([], []);
  t.after(() => store.close());
  store.addEvents([kernelEvent('futex.wait', task, at(1), at(2))]);
  const running = store.flush();
  await new Promise(setImmediate); // that write has begun
  store.addEvents([kernelEvent('futex.wait', task, at(3), at(4))]);
  const behind = [store.flush(), store.flush(), store.flush()];
  assert.ok(behind.every((flush) => flush === behind[0]));
  assert.notEqual(behind[0], running);
  await Promise.all([running, ...behind]);
  assert.equal(store.counters().eventsStored, 2);
  assert.equal(store.counters().rowsBuffered, 0);
});

test('shed times are held as one when near, kept while a span they may overlap is, and expired with the retention', async (t) => {
  let now = at(0);
  const store = await storeWith([], [], { retentionMs: 10_000, now: () => now });
  t.after(() => store.close());
  store.addSpans([appSpan({ trace: 1, span: 1, start: at(100), end: at(200), pid: 10, tid: 11 })]);
  store.addShed(at(10), at(20)); // before every span: it overlaps none
  store.addShed(at(150), at(160));
  store.addShed(at(165), at(170));
  now = at(1000); // a second after the store's first write (retention applies at most once a second)
  await store.flush();
  assert.deepEqual(await store.rows('SELECT from_ns, to_ns FROM shed_times'), [[at(150), at(170)]]);
  assert.equal(await store.shedDuring(at(100), at(200)), true);
  assert.equal(await store.shedDuring(at(171), at(200)), false);
  now = at(20_000);
  await store.flush();
  assert.deepEqual(await store.rows('SELECT count(*) FROM shed_times'), [[0n]]);
});

test('slow traces are ranked by their extent, filtered by service and window', async (t) => {
  const store = await storeWith(
    [
      appSpan({ trace: 1, span: 1, start: at(0), end: at(100), pid: 10, service: 'api' }),
      appSpan({ trace: 2, span: 2, start: at(0), end: at(50), pid: 10, service: 'api' }),
      appSpan({ trace: 2, span: 3, parent: 2, start: at(10), end: at(400), pid: 10, service: 'db' }),
      appSpan({ trace: 3, span: 4, start: at(0), end: at(900), pid: 10, service: 'batch' }),
    ],
    [],
  );
  t.after(() => store.close());
  const api = await store.slowTraces({ service: 'api', from: at(-1), to: at(1000), limit: 10 });
  assert.deepEqual(
    api.map((s) => [s.traceId, s.durationMs]),
    [
      [ids(2).traceId, 400],
      [ids(1).traceId, 100],
    ],
  );
  assert.equal(api[0]?.service, 'api', 'named by its root span');
  assert.equal((await store.slowTraces({ from: at(-1), to: at(1000), limit: 1 }))[0]?.traceId, ids(3).traceId);
});

test('its counters, rows per table and memory are instruments of the meter it is given', async (t) => {
  const m = new TestMeter();
  t.after(() => m.close());
  const store = await storeWith([], [], { meter: m.meter });
  t.after(() => store.close());
  store.addEvents([1, 2, 3].map((i) => kernelEvent('futex.wait', task, at(i), at(i + 1))));
  store.addSpans([appSpan({ trace: 1, span: 1, start: at(0), end: at(10), pid: 10, tid: 11 })]);
  assert.equal(await m.value('causeway_store_rows_buffered'), 4);
  await store.flush();
  assert.equal(await m.value('causeway_store_rows', { table: 'kernel_events' }), 3);
  assert.equal(await m.value('causeway_store_rows', { table: 'spans' }), 1);
  assert.equal(await m.value('causeway_store_events_stored'), 3);
  assert.equal(await m.value('causeway_store_rows_buffered'), 0);
  assert.ok(((await m.value('causeway_store_memory_bytes')) ?? 0) > 0);
  assert.ok(((await m.value('causeway_store_worker_heap_bytes')) ?? 0) > 0, "the worker's own heap");
});

test('how far behind its writes are, and the lookups that waited for one, are instruments of its meter', async (t) => {
  const m = new TestMeter();
  t.after(() => m.close());
  let now = at(0);
  const store = await storeWith([], [], { meter: m.meter, now: () => now });
  t.after(() => store.close());
  assert.equal(await m.value('causeway_store_behind_seconds'), 0);
  store.addEvents([kernelEvent('futex.wait', task, at(1), at(2))]);
  now = at(1500);
  store.addEvents([kernelEvent('futex.wait', task, at(3), at(4))]);
  now = at(2500);
  assert.deepEqual(store.lag(), { rows: 2, behindMs: 2500 }, 'since the oldest row waiting');
  assert.equal(await m.value('causeway_store_behind_seconds'), 2.5);
  assert.equal(await store.caughtUp(), true);
  assert.deepEqual(store.lag(), { rows: 0, behindMs: 0 });
  assert.equal(await store.caughtUp(), true, 'nothing to wait for');
  assert.equal(await m.value('causeway_store_lookups_waited'), 1);
  assert.equal(await m.value('causeway_store_lookups_behind'), 0);
  assert.deepEqual(await store.rows('SELECT count(*) FROM kernel_events'), [[2n]]);
});

test('each attachment row points at the event it was made for, over batches, linked copies and a copy shed', async (t) => {
  const store = await storeWith([], []);
  t.after(() => store.close());
  // More than a packed batch, handed over in batches of another size.
  const events = Array.from({ length: PACKED_ROWS + 500 }, (_, i) => kernelEvent('sched.runqueue', task, at(i), at(i)));
  for (let i = 0; i < events.length; i += 700) store.addEvents(events.slice(i, i + 700));
  const event = (i: number) => events[i] as KernelEvent;
  // A linked wait is a spread copy of a stored event, made at joining.
  const linked = (i: number): KernelEvent => ({
    ...event(i),
    attributes: { ...event(i).attributes, [A.ATTR_CAUSEWAY_LINK]: 'connection' },
  });
  const span = (n: number) => appSpan({ trace: n, span: n, start: at(0), end: at(10_000), pid: 10, tid: 11 }).span;
  const place = { hostPid: 10, hostTid: 11 };
  store.addAttachments([{ span: span(1), place, events: [event(3), linked(5), event(PACKED_ROWS + 1)] }]);
  await store.flush();
  // Room for one row more: the attachment is taken and its first linked copy, the second is shed.
  const filler = { pid: 10, tid: 99 };
  store.addEvents(Array.from({ length: MAX_BUFFERED - 1 }, () => kernelEvent('sched.runqueue', filler, at(0), at(0))));
  store.addAttachments([{ span: span(2), place, events: [linked(7), linked(9), event(11)] }]);
  assert.equal(store.counters().rowsShed, 1);
  await store.flush();
  const attached = await store.rows(
    `SELECT a.span_id, e.tid, e.start_ns, e.attributes LIKE '%${A.ATTR_CAUSEWAY_LINK}%'
     FROM attachments a LEFT JOIN kernel_events e USING (event_id) ORDER BY a.span_id, e.start_ns`,
  );
  const row = (n: number, i: number, isLinked: boolean) => [ids(n).spanId, 11, at(i), isLinked];
  assert.deepEqual(attached, [
    row(1, 3, false),
    row(1, 5, true),
    row(1, PACKED_ROWS + 1, false),
    row(2, 7, true),
    row(2, 11, false),
  ]);
});
