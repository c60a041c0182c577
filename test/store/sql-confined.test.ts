// query_sql's confinement checked against DuckDB's own catalog rather than a list of known
// escapes: every table function and pragma DuckDB has, except the few that only generate rows,
// is refused; so is every function outside the allow-list; and the allow-list itself holds only
// what its rules admit (sql-allowed.ts): aggregates, CONSISTENT scalars, the clock, and macros
// whose bodies pass the same check. And an answer too large to hold is refused before any of it
// becomes JavaScript values.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { ALLOWED_FUNCTIONS, TABLE_FUNCTIONS, refusalOf } from '../../src/store/sql-allowed.js';
import { QueryRefused, readOnlyQuery } from '../../src/store/sql.js';
import { storeWith } from './traces.js';

const SESSION_READERS = [
  'current_setting',
  'getvariable',
  'version',
  'json_serialize_plan',
  'json_serialize_sql',
  'json_deserialize_sql',
];
const CLOCK = ['now', 'today', 'current_date', 'get_current_time', 'get_current_timestamp', 'transaction_timestamp'];

async function catalog() {
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  const rows = (
    await connection.runAndReadAll(
      'SELECT function_name, function_type, stability, macro_definition FROM duckdb_functions()',
    )
  ).getRowsJson() as [string, string, string | null, string | null][];
  return {
    connection,
    rows,
    close: () => {
      instance.closeSync();
    },
  };
}

async function refusal(connection: DuckDBConnection, sql: string): Promise<string | undefined> {
  const reader = await connection.runAndReadAll('SELECT json_serialize_sql($1::VARCHAR)', [sql]);
  const tree = JSON.parse(String(reader.getRows()[0]?.[0])) as { error?: boolean };
  assert.notEqual(tree.error, true, sql);
  return refusalOf(tree);
}

test('the allow-list holds only what its rules admit from DuckDB catalog', async (t) => {
  const { connection, rows, close } = await catalog();
  t.after(close);
  const byName = new Map<string, typeof rows>();
  for (const row of rows) byName.set(row[0], [...(byName.get(row[0]) ?? []), row]);
  for (const name of ALLOWED_FUNCTIONS) {
    if (name === 'unnest') continue; // a keyword: in the catalog only as a table function
    const entries = byName.get(name) ?? [];
    assert.ok(entries.length > 0, `${name} is not in DuckDB's catalog`);
    const admitted = await Promise.all(
      entries.map(async ([, type, stability, macro]) => {
        if (type === 'aggregate' || (type === 'scalar' && (stability === 'CONSISTENT' || CLOCK.includes(name))))
          return true;
        return type === 'macro' && macro !== null && (await refusal(connection, `SELECT ${macro}`)) === undefined;
      }),
    );
    assert.ok(
      admitted.some(Boolean),
      `${name} (${entries.map(([, type, stability]) => `${type} ${String(stability)}`).join(', ')})`,
    );
  }
  for (const name of SESSION_READERS) assert.ok(!ALLOWED_FUNCTIONS.has(name), name);
  assert.ok(![...ALLOWED_FUNCTIONS].some((n) => n.startsWith('icu_collate_') || n.startsWith('__internal_')));
});

test('every table function and pragma DuckDB has is refused, but the generators', async (t) => {
  const { connection, rows, close } = await catalog();
  t.after(close);
  const tableFunctions = new Set(rows.filter(([, type]) => /^(table|table_macro|pragma)$/.test(type)).map(([n]) => n));
  for (const name of TABLE_FUNCTIONS)
    assert.ok(tableFunctions.has(name) || name === 'unnest', `${name} is a table function`);
  for (const name of tableFunctions) {
    const problem = await refusal(connection, `SELECT * FROM "${name}"()`);
    if (TABLE_FUNCTIONS.has(name)) assert.equal(problem, undefined, name);
    else assert.match(problem ?? 'accepted', /is not allowed/, name);
  }
});

test('every scalar function and macro outside the allow-list is refused, by name, before it is bound', async (t) => {
  const { connection, rows, close } = await catalog();
  t.after(close);
  const others = new Set(
    rows
      .filter(
        ([name, type]) => /^(scalar|macro)$/.test(type) && !ALLOWED_FUNCTIONS.has(name) && /^[a-z_]\w*$/.test(name),
      )
      .map(([name]) => name),
  );
  assert.ok(others.has('current_setting') && others.has('getvariable'));
  for (const name of others)
    assert.match((await refusal(connection, `SELECT "${name}"(1)`)) ?? 'accepted', /is not allowed/, name);
});

test('an answer larger than the byte bound is refused before it is read, and one within it is returned', async (t) => {
  const store = await storeWith([], []);
  t.after(() => store.close());
  await assert.rejects(
    readOnlyQuery(store, `SELECT repeat('x', 1000) FROM range(2000)`, { maxBytes: 100_000 }),
    (e: unknown) =>
      e instanceof QueryRefused && /the answer would hold .* MiB of values, past the 0\.10 MiB/.test(e.message),
  );
  const within = await readOnlyQuery(store, `SELECT repeat('x', 1000) AS x FROM range(2000)`, {
    maxRows: 50,
    maxBytes: 100_000,
  });
  assert.equal(within.rows.length, 50);
  assert.equal(within.truncated, true);
});

test('what runs is the statement DuckDB writes back from the checked tree: comments and a trailing semicolon are gone', async (t) => {
  const store = await storeWith([], []);
  t.after(() => store.close());
  const result = await readOnlyQuery(store, `SELECT 41 + 1 AS answer; -- and nothing after`);
  assert.deepEqual(result, { columns: ['answer'], rows: [[42]], truncated: false });
});
