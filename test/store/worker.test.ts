// The store's database runs in a worker thread: a long write neither holds up queries nor the
// main thread's event loop, and a worker that stops is reported and replaced without losing
// what it had written.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Worker } from 'node:worker_threads';
import { MS, T0, appSpan, ids, kernelEvent, storeWith, waker } from './traces.js';

const at = (ms: number) => T0 + BigInt(ms) * MS;

test('while a large batch is written, queries are answered and the main event loop keeps turning', async (t) => {
  const store = await storeWith([appSpan({ trace: 1, span: 1, start: at(0), end: at(10), pid: 10 })], []);
  t.after(() => store.close());
  store.addEvents(
    Array.from({ length: 200_000 }, (_, i) =>
      kernelEvent(
        'futex.wait',
        { pid: 10, tid: 11 + (i % 50) },
        at(i),
        at(i + 1),
        waker('futex', { pid: 10, tid: 9, comm: 'holder' }),
      ),
    ),
  );
  // The main thread's longest wait for a turn of its event loop during the write.
  let last = performance.now();
  let longestGap = 0;
  const ticks = setInterval(() => {
    const now = performance.now();
    longestGap = Math.max(longestGap, now - last);
    last = now;
  }, 1);
  const began = performance.now();
  let writeMs = 0;
  const written = store.flush().then(() => (writeMs = performance.now() - began));
  const spans = await store.spans(ids(1).traceId);
  const queryMs = performance.now() - began;
  await written;
  clearInterval(ticks);

  assert.equal(spans.length, 1);
  assert.equal((await store.size()).events, 200_000, 'the whole batch was written');
  assert.ok(queryMs < writeMs, `the query took ${queryMs} ms, answered before the ${writeMs} ms write ended`);
  assert.ok(
    longestGap < writeMs / 2,
    `the main event loop waited at most ${longestGap} ms for a turn during the ${writeMs} ms write`,
  );
});

test('a worker that stops is reported and replaced; the rows it wrote stay, those it had not are counted lost', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'causeway-store-'));
  t.after(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  const lines: string[] = [];
  const task = { pid: 10, tid: 11 };
  const store = await storeWith(
    [],
    [1, 2, 3].map((i) => kernelEvent('futex.wait', task, at(i), at(i + 1))),
    {
      path: join(dir, 'store.duckdb'),
      log: (line) => lines.push(line),
    },
  );
  t.after(() => store.close());
  store.addEvents([4, 5].map((i) => kernelEvent('futex.wait', task, at(i), at(i + 1))));

  // As if it crashed: the worker ends with the two rows above handed to it and not written.
  await (store as unknown as { worker: Worker }).worker.terminate();
  assert.equal(lines.length, 1);
  assert.match(lines[0] ?? '', /store: its worker stopped \(.+\); 2 rows not written are lost; starting it again/);
  assert.deepEqual(pick(store.counters(), ['workerRestarts', 'rowsLost', 'rowsBuffered', 'eventsStored']), {
    workerRestarts: 1,
    rowsLost: 2,
    rowsBuffered: 0,
    eventsStored: 3,
  });

  store.addEvents([6].map((i) => kernelEvent('futex.wait', task, at(i), at(i + 1))));
  await store.flush();
  const rows = await store.rows('SELECT event_id FROM kernel_events ORDER BY event_id');
  assert.deepEqual(
    rows.map(([id]) => id),
    [0n, 1n, 2n, 5n],
    'the rows written before are kept, and ids go on past those lost',
  );
  const status = await store.status();
  assert.equal(status.down, null);
  assert.equal(status.flushErrors, 0);
});

test('a worker that keeps stopping before any write is not started again: the store says it is down', async (t) => {
  const lines: string[] = [];
  const store = await storeWith([], [], { log: (line) => lines.push(line) });
  t.after(() => store.close());
  const worker = () => (store as unknown as { worker: Worker }).worker;
  for (let stop = 1; stop <= 4; stop++) {
    await store.size(); // the worker (the first, or the one started again) has the database open
    await worker().terminate();
  }
  assert.equal(lines.length, 4);
  assert.match(lines[3] ?? '', /stopped 4 times with no write in between .*; the store is down/);
  store.addEvents([kernelEvent('futex.wait', { pid: 10, tid: 11 }, at(1), at(2))]);
  await store.flush();
  const status = await store.status();
  assert.match(status.down ?? '', /stopped 4 times/);
  assert.deepEqual(pick(status, ['workerRestarts', 'rowsLost', 'rowsBuffered', 'eventsStored']), {
    workerRestarts: 3,
    rowsLost: 1,
    rowsBuffered: 0,
    eventsStored: 0,
  });
  await assert.rejects(store.spans(ids(1).traceId), /the store is down: its worker stopped 4 times/);
});

function pick<T extends object, K extends keyof T>(from: T, keys: K[]): Pick<T, K> {
  return Object.fromEntries(keys.map((key) => [key, from[key]])) as Pick<T, K>;
}
