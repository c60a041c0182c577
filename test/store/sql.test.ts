import assert from 'node:assert/strict';
import { test } from 'node:test';
import { QueryRefused, readOnlyQuery } from '../../src/store/sql.js';
import { MS, T0, kernelEvent, storeWith } from './traces.js';

test('query_sql runs a SELECT and bounds its rows', async (t) => {
  const store = await storeWith(
    [],
    Array.from({ length: 30 }, (_, i) =>
      kernelEvent('futex.wait', { pid: 10, tid: 11 }, T0 + BigInt(i) * MS, T0 + BigInt(i + 1) * MS),
    ),
  );
  t.after(() => store.close());
  const r = await readOnlyQuery(store, 'SELECT kind, count(*) AS n FROM kernel_events GROUP BY kind', {
    maxRows: 10,
    timeoutMs: 5000,
  });
  assert.deepEqual(r, { columns: ['kind', 'n'], rows: [['futex.wait', '30']], truncated: false });
  const many = await readOnlyQuery(store, 'SELECT * FROM kernel_events', { maxRows: 10, timeoutMs: 5000 });
  assert.equal(many.rows.length, 10);
  assert.equal(many.truncated, true);
});

/** What query_sql must refuse, each named after what it would do. */
const REFUSED: { name: string; sql: string }[] = [
  { name: 'a delete', sql: 'DELETE FROM kernel_events' },
  { name: 'an insert', sql: "INSERT INTO kernel_events (kind) VALUES ('x')" },
  { name: 'an update', sql: "UPDATE kernel_events SET kind = 'x'" },
  { name: 'dropping a table', sql: 'DROP TABLE kernel_events' },
  { name: 'creating a table', sql: 'CREATE TABLE x AS SELECT 1' },
  { name: 'attaching a database file', sql: "ATTACH '/tmp/causeway-evil.db' AS evil" },
  { name: 'copying to a file', sql: "COPY kernel_events TO '/tmp/causeway-evil.csv'" },
  { name: 'a setting', sql: 'SET enable_external_access = true' },
  { name: 'a pragma', sql: "PRAGMA memory_limit = '10GB'" },
  { name: 'a second statement after a select', sql: 'SELECT 1; DELETE FROM kernel_events' },
  { name: 'reading a CSV file', sql: "SELECT * FROM read_csv('/etc/passwd')" },
  { name: 'reading a text file', sql: "SELECT * FROM read_text('/etc/hostname')" },
  { name: 'installing an extension', sql: 'INSTALL httpfs' },
  { name: 'a write inside query()', sql: "SELECT * FROM query('DELETE FROM kernel_events')" },
];

test('writes, DDL, settings, files, attaching and several statements are refused, and nothing changes', async (t) => {
  const store = await storeWith([], [kernelEvent('futex.wait', { pid: 10, tid: 11 }, T0, T0 + MS)]);
  t.after(() => store.close());
  for (const { name, sql } of REFUSED)
    await t.test(`${name} is refused: ${sql}`, async () => {
      await assert.rejects(readOnlyQuery(store, sql), QueryRefused, sql);
    });
  assert.equal((await store.size()).events, 1);
});

test('a query that runs past its time limit is stopped', async (t) => {
  const store = await storeWith([], []);
  t.after(() => store.close());
  const started = Date.now();
  await assert.rejects(
    readOnlyQuery(store, 'SELECT count(*) FROM range(100000000) a, range(100000000) b', {
      maxRows: 10,
      timeoutMs: 200,
    }),
    /ran past 200 ms/,
  );
  assert.ok(Date.now() - started < 5000);
});
