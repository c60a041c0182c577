// The worker's database: a write is one transaction, so the rows it appends are all there or none;
// strings that repeat across a write's rows come back as each row had them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_CONFIG } from '../../src/sidecar/config.js';
import { packEvents } from '../../src/store/columns.js';
import { IN_MEMORY, StoreDatabase } from '../../src/store/database.js';
import { MS, T0, kernelEvent, waker } from './traces.js';

const task = { pid: 10, tid: 11 };
const now = () => BigInt(Date.now()) * MS;

const openInMemory = () =>
  StoreDatabase.open({ ...DEFAULT_CONFIG.store, path: IN_MEMORY, memoryLimit: '64MB', retentionMs: 1e12 });

test('strings that repeat over several data chunks are stored as each row had them, NULLs included', async (t) => {
  const db = await openInMemory();
  t.after(() => {
    db.close();
  });
  // Short (inlined by DuckDB) and long comms, two kinds, and a waker's comm on every third futex wait.
  const comms = ['app', 'a-thread-with-a-long-name-1', 'py', 'a-thread-with-a-long-name-2', 'w'];
  const rows = Array.from({ length: 5000 }, (_, i) => ({
    kind: i % 2 === 0 ? ('futex.wait' as const) : ('sched.runqueue' as const),
    comm: comms[(i * 7) % comms.length] ?? 'app',
    waker: i % 6 === 0 ? `waker-with-a-long-name-${String((i / 6) % 4)}` : undefined,
  }));
  const events = rows.map(({ kind, comm, waker: wakerComm }, i) =>
    kernelEvent(
      kind,
      { ...task, comm },
      T0 + BigInt(i) * MS,
      T0 + BigInt(i + 1) * MS,
      wakerComm === undefined ? {} : waker('futex', { pid: 20, tid: 21, comm: wakerComm }),
    ),
  );

  await db.write([packEvents(events, 0)], [], [], [], now());

  const stored = await db.rows('SELECT kind, comm, other_comm FROM kernel_events ORDER BY event_id');
  assert.deepEqual(
    stored,
    rows.map(({ kind, comm, waker: wakerComm }) => [kind, comm, wakerComm ?? null]),
  );
});

test('a write whose spans cannot be appended stores none of its events, and the next write stores its own', async (t) => {
  const db = await openInMemory();
  t.after(() => {
    db.close();
  });
  const events = (first: number, count: number) =>
    packEvents(
      Array.from({ length: count }, (_, i) =>
        kernelEvent('futex.wait', task, T0 + BigInt(first + i) * MS, T0 + BigInt(first + i + 1) * MS),
      ),
      first,
    );
  // Ten rows said, room for one value: its columns cannot be read.
  const brokenSpans = { rows: 10, buffer: new ArrayBuffer(8), strings: [] };

  await assert.rejects(db.write([events(0, 3)], [brokenSpans], [], [], now()), RangeError);
  assert.deepEqual(await db.rows('SELECT count(*) FROM kernel_events'), [[0n]]);

  const written = await db.write([events(3, 2)], [], [], [], now());
  assert.equal(written.eventsStored, 2);
  assert.deepEqual(await db.rows('SELECT event_id FROM kernel_events ORDER BY event_id'), [[3n], [4n]]);
});
