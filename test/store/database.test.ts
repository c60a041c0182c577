// The worker's database: a write is one transaction, so the rows it appends are all there or none.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_CONFIG } from '../../src/sidecar/config.js';
import { packEvents } from '../../src/store/columns.js';
import { IN_MEMORY, StoreDatabase } from '../../src/store/database.js';
import { MS, T0, kernelEvent } from './traces.js';

const task = { pid: 10, tid: 11 };
const now = () => BigInt(Date.now()) * MS;

test('a write whose spans cannot be appended stores none of its events, and the next write stores its own', async (t) => {
  const db = await StoreDatabase.open({
    ...DEFAULT_CONFIG.store,
    path: IN_MEMORY,
    memoryLimit: '64MB',
    retentionMs: 1e12,
  });
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
