// The store in a file: what a process wrote is there after it is killed (DuckDB replays its
// write-ahead log at the next open), ids go on from the rows kept, and the bytes it takes stay
// within maxBytes, the oldest rows going first.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';
import { MS, T0, appSpan, ids, kernelEvent, storeWith } from './traces.js';

const task = { pid: 10, tid: 11 };
const at = (ms: number) => T0 + BigInt(ms) * MS;

function storePath(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'causeway-store-'));
  t.after(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  return join(dir, 'nested', 'store.duckdb');
}

/** Runs `sql` on the store file at `path` with DuckDB alone (as an earlier version wrote it, or to look), and returns its rows. */
async function onStoreFile(path: string, sql: string): Promise<unknown[][]> {
  mkdirSync(dirname(path), { recursive: true });
  const db = await DuckDBInstance.create(path);
  const connection = await db.connect();
  const rows = (await connection.runAndReadAll(sql)).getRows();
  connection.closeSync();
  db.closeSync();
  return rows;
}

/** In a process of its own: a store with one span and two events, flushed, then SIGKILL. */
const WRITE_AND_DIE = `
import { storeWith, appSpan, kernelEvent, T0, MS } from ${JSON.stringify(new URL('./traces.js', import.meta.url).href)};
const store = await storeWith(
  [appSpan({ trace: 1, span: 1, start: T0, end: T0 + 100n * MS, pid: 10, tid: 11 })],
  [kernelEvent('futex.wait', { pid: 10, tid: 11 }, T0, T0 + MS), kernelEvent('futex.wait', { pid: 10, tid: 11 }, T0 + MS, T0 + 2n * MS)],
  { path: process.argv[2], retentionMs: 1e12 },
);
process.kill(process.pid, 'SIGKILL');
`;

test('rows written before a SIGKILL are there at the next open, and new ids go on from them', async (t) => {
  const path = storePath(t);
  // A file rather than --eval: the store's worker thread would inherit --input-type, which workers refuse.
  const script = join(dirname(path), '..', 'write-and-die.mjs');
  writeFileSync(script, WRITE_AND_DIE);
  const run = spawnSync(process.execPath, [script, path], {
    cwd: fileURLToPath(new URL('.', import.meta.url)),
    encoding: 'utf8',
  });
  assert.equal(run.signal, 'SIGKILL', run.stderr);

  const store = await storeWith([], [kernelEvent('futex.wait', task, at(5), at(6))], { path, retentionMs: 1e12 });
  t.after(() => store.close());
  assert.equal((await store.spans(ids(1).traceId)).length, 1);
  const rows = await store.rows('SELECT event_id FROM kernel_events ORDER BY event_id');
  assert.deepEqual(
    rows.map(([id]) => id),
    [0n, 1n, 2n],
  );
  const status = await store.status();
  assert.equal(status.path, path);
  assert.ok(status.diskBytes > 0, 'the file is counted');
  assert.ok(status.oldestSpanAgeMs !== null && status.oldestSpanAgeMs > 0);
});

test('a store written before events carried a stamp gains its columns: old rows unstamped, new ones stamped', async (t) => {
  const path = storePath(t);
  // The kernel_events table as stores wrote it before the stamp, with one row.
  await onStoreFile(
    path,
    `CREATE TABLE kernel_events (
    event_id BIGINT, kind VARCHAR, pid INTEGER, tid INTEGER, comm VARCHAR, start_ns BIGINT, end_ns BIGINT,
    duration_ms DOUBLE, other_pid INTEGER, other_tid INTEGER, other_comm VARCHAR, cuda_kernel VARCHAR, attributes JSON);
    INSERT INTO kernel_events VALUES (0, 'futex.wait', 10, 11, 'app', ${String(at(0))}, ${String(at(1))}, 1, NULL, NULL, NULL, NULL, '{}');`,
  );

  const stamp = { traceId: 'a'.repeat(32), spanId: 'b'.repeat(16) };
  const store = await storeWith([], [{ ...kernelEvent('cuda.sync', task, at(2), at(3)), spanContext: stamp }], {
    path,
    retentionMs: 1e12,
  });
  t.after(() => store.close());
  const read = await store.events({ ...task, from: at(0), to: at(5) });
  assert.deepEqual(
    read.map((e) => [e.kind, e.spanContext]),
    [
      ['futex.wait', undefined],
      ['cuda.sync', stamp],
    ],
  );
});

test("a store written with an index on spans' trace ids loses it at open, and finds a trace's spans without it", async (t) => {
  const path = storePath(t);
  // The spans table as stores wrote it before, with its index.
  await onStoreFile(
    path,
    `CREATE TABLE spans (
    seq BIGINT, trace_id VARCHAR, span_id VARCHAR, parent_span_id VARCHAR, service VARCHAR, name VARCHAR,
    span_kind TINYINT, start_ns BIGINT, end_ns BIGINT, duration_ms DOUBLE, pid INTEGER, tid INTEGER,
    status_code TINYINT, attributes JSON);
    CREATE INDEX spans_by_trace ON spans (trace_id);`,
  );
  const indexes = async () => (await onStoreFile(path, 'SELECT index_name FROM duckdb_indexes()')).flat();
  assert.deepEqual(await indexes(), ['spans_by_trace']);

  const span = appSpan({ trace: 7, span: 1, start: at(0), end: at(10), pid: 10, tid: 11 });
  const store = await storeWith([span], [], { path, retentionMs: 1e12 });
  assert.deepEqual(
    (await store.spans(ids(7).traceId)).map((s) => s.spanId),
    [ids(1).spanId],
  );
  await store.close();
  assert.deepEqual(await indexes(), []);
});

test('past maxBytes the oldest rows are deleted until the store fits, and counted', async (t) => {
  const path = storePath(t);
  const maxBytes = 4 * 2 ** 20;
  const store = await storeWith([], [], { path, maxBytes, retentionMs: 1e12 });
  t.after(() => store.close());
  // Distinct attributes, so that compression does not make the rows free.
  const batch = (from: number) =>
    Array.from({ length: 20_000 }, (_, i) =>
      kernelEvent('futex.wait', task, at(from + i), at(from + i + 1), {
        'causeway.futex.uaddr': `0x${(from + i) * 7919}`,
      }),
    );
  for (let i = 0; i < 15; i++) {
    store.addEvents(batch(i * 20_000));
    store.addSpans([appSpan({ trace: i + 1, span: i + 1, start: at(i * 20_000), end: at(i * 20_000 + 5), pid: 10 })]);
    await store.flush();
    const size = await store.size();
    assert.ok(size.bytes <= maxBytes, `after batch ${i + 1}: ${size.bytes} bytes held, bound ${maxBytes}`);
  }
  const { events, spans, rowsExpired } = await store.status();
  assert.ok(rowsExpired > 0, 'rows were deleted to stay within the bound');
  assert.equal(events + spans + rowsExpired, 300_000 + 15, 'every row is held or counted as expired');
  const [range] = await store.rows('SELECT min(event_id), max(event_id) FROM kernel_events');
  assert.deepEqual(range, [BigInt(300_000 - events), 299_999n], 'the oldest went first');
});
