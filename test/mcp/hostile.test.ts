// The MCP server under hostile input, through a real MCP client over Streamable HTTP (and raw
// POSTs for what a client library would never send): malformed JSON-RPC, arguments of the wrong
// type, huge arguments, unknown tools, and query_sql escapes out of the store (file and URL
// readers, getenv, glob, settings, secrets, ATTACH, COPY, INSTALL, LOAD, nested queries, several
// statements, pragma and catalog functions, functions with side effects, a huge answer). Every
// one is refused with a tool error or a JSON-RPC error, and nothing outside the store is read:
// a named pipe no reader ever opens, an HTTP server no request reaches, an environment variable
// and a file whose contents never appear in an answer. The server keeps answering afterwards.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants, mkdtempSync, open, openSync, closeSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { KNOWN_TRACE, serveKnownTrace } from './server.js';

const CANARY = `canary-${randomBytes(8).toString('hex')}`;

async function client(t: TestContext, url: string) {
  const c = new Client({ name: 'hostile', version: '1' });
  await c.connect(new StreamableHTTPClientTransport(new URL(url)));
  t.after(() => c.close());
  return c;
}

const textOf = (result: unknown) =>
  ((result as { content?: { text?: string }[] }).content ?? []).map((c) => c.text ?? '').join('\n');

/** A named pipe that tells whether anything opened it for reading: its writer's open returns only then. */
function tripwire(t: TestContext, path: string) {
  execFileSync('mkfifo', [path]);
  let opened = false;
  open(path, constants.O_WRONLY, (error, fd) => {
    if (error === null) {
      opened = true;
      closeSync(fd);
    }
  });
  t.after(() => {
    // Unblock the writer's open with a reader of our own.
    closeSync(openSync(path, constants.O_RDONLY | constants.O_NONBLOCK));
  });
  return { opened: () => opened };
}

/** An HTTP server that counts the requests that reach it. */
async function urlTripwire(t: TestContext) {
  let hits = 0;
  const server = http.createServer((_, res) => {
    hits++;
    res.end(`a,b\n${CANARY},1\n`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise((resolve) => server.close(resolve)));
  return { url: `http://127.0.0.1:${String((server.address() as { port: number }).port)}`, hits: () => hits };
}

function escapes(dir: string, pipe: string, file: string, url: string): string[] {
  return [
    // Files and URLs, by every reader DuckDB has, and by name alone.
    `SELECT * FROM read_text('${pipe}')`,
    `SELECT * FROM read_text('${file}')`,
    `SELECT * FROM read_blob('${pipe}')`,
    `SELECT * FROM read_csv('${pipe}')`,
    `SELECT * FROM read_csv_auto('${file}')`,
    `SELECT * FROM read_json('${pipe}')`,
    `SELECT * FROM read_json_objects('${pipe}')`,
    `SELECT * FROM read_ndjson('${pipe}')`,
    `SELECT * FROM read_parquet('${pipe}')`,
    `SELECT * FROM parquet_metadata('${pipe}')`,
    `SELECT * FROM parquet_schema('${pipe}')`,
    `SELECT * FROM sniff_csv('${pipe}')`,
    `SELECT * FROM read_duckdb('${pipe}')`,
    `SELECT * FROM '${pipe}'`,
    `SELECT * FROM '${file}'`,
    `FROM '${pipe}'`,
    `SELECT * FROM read_csv('${url}/data.csv')`,
    `SELECT * FROM read_text('${url}/')`,
    `SELECT * FROM '${url}/data.csv'`,
    `SELECT * FROM spans WHERE name IN (SELECT content FROM read_text('${file}'))`,
    `SELECT * FROM glob('${dir}/*')`,
    // The environment and DuckDB's settings.
    `SELECT getenv('CAUSEWAY_TEST_CANARY')`,
    `SELECT current_setting('home_directory')`,
    `SELECT current_setting('secret_directory')`,
    `SELECT current_setting('extension_directory')`,
    `SELECT system.main.current_setting('temp_directory')`,
    `SELECT * FROM duckdb_settings()`,
    `SELECT * FROM pg_catalog.pg_settings`,
    `SELECT getvariable('anything')`,
    `SELECT version()`,
    `SELECT list_transform([1], x -> current_setting('home_directory'))`,
    // Secrets.
    `SELECT * FROM duckdb_secrets()`,
    `SELECT * FROM which_secret('s3://bucket/key', 's3')`,
    // Attaching, copying, installing, loading, exporting.
    `ATTACH '${pipe}' AS outside`,
    `ATTACH ':memory:' AS other`,
    `COPY spans TO '${dir}/spans.csv'`,
    `COPY spans FROM '${pipe}'`,
    `EXPORT DATABASE '${dir}/export'`,
    `INSTALL httpfs`,
    `LOAD httpfs`,
    `LOAD '${pipe}'`,
    // Queries inside queries.
    `SELECT * FROM query('SELECT 42')`,
    `SELECT * FROM query_table('spans')`,
    `SELECT * FROM json_execute_serialized_sql(json_serialize_sql('SELECT 42'))`,
    `SELECT json_serialize_plan('SELECT * FROM read_text(''${pipe}'')')`,
    `SELECT * FROM histogram(spans, pid)`,
    // Several statements.
    `SELECT 1; SELECT 2`,
    `SELECT 1; ATTACH '${pipe}' AS outside`,
    // Pragmas and the catalog beyond the store.
    `PRAGMA version`,
    `CALL pragma_version()`,
    `SELECT * FROM pragma_version()`,
    `SELECT * FROM pragma_platform()`,
    `SELECT * FROM pragma_database_list`,
    `SELECT * FROM pragma_storage_info('spans')`,
    `SELECT * FROM duckdb_databases()`,
    `SELECT * FROM duckdb_extensions()`,
    `SELECT * FROM duckdb_functions()`,
    `SELECT * FROM duckdb_memory()`,
    `SELECT * FROM duckdb_temporary_files()`,
    `SELECT * FROM duckdb_logs`,
    `SELECT * FROM information_schema.tables`,
    `SELECT * FROM memory.main.spans`,
    `SELECT * FROM temp.main.spans`,
    `DESCRIBE spans`,
    `SUMMARIZE spans`,
    `SHOW ALL TABLES`,
    // State changes and stalls.
    `SELECT * FROM enable_logging()`,
    `SELECT * FROM checkpoint()`,
    `SELECT * FROM truncate_duckdb_logs()`,
    `SELECT write_log('x')`,
    `SELECT sleep_ms(60000)`,
    `SELECT setseed(0.5)`,
    `SET enable_external_access = true`,
    `RESET lock_configuration`,
    `SET VARIABLE x = 1`,
    `CREATE TEMP TABLE t AS SELECT 1`,
    `CREATE MACRO m() AS 1`,
    // An answer too large to hold.
    `SELECT repeat('x', 100000000) AS huge`,
  ];
}

test('query_sql refuses every escape from the store with a tool error, and nothing outside the store is read', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'causeway-escapes-'));
  const pipe = join(dir, 'pipe.csv');
  const file = join(dir, 'secret.txt');
  const reads = tripwire(t, pipe);
  t.after(() => {
    rmSync(dir, { recursive: true, force: true }); // after the tripwire's release (hooks run in order)
  });
  writeFileSync(file, `${CANARY}\n`);
  process.env.CAUSEWAY_TEST_CANARY = CANARY;
  t.after(() => {
    delete process.env.CAUSEWAY_TEST_CANARY;
  });
  const remote = await urlTripwire(t);
  const { url } = await serveKnownTrace(t);
  const c = await client(t, url);

  const answers: string[] = [];
  for (const sql of escapes(dir, pipe, file, remote.url)) {
    const result = await c.callTool({ name: 'query_sql', arguments: { sql } });
    const text = textOf(result);
    answers.push(text);
    assert.equal(result.isError, true, `accepted: ${sql}\n${text}`);
    assert.match(text, /^Query refused: /, sql);
  }
  const all = answers.join('\n');
  assert.equal(reads.opened(), false, 'the named pipe was opened');
  assert.equal(remote.hits(), 0, 'a URL was fetched');
  assert.ok(!all.includes(CANARY), 'the file or the environment variable reached an answer');
  assert.ok(!all.includes(homedir()), 'the home directory reached an answer');

  const count = await c.callTool({
    name: 'query_sql',
    arguments: { sql: 'SELECT (SELECT count(*) FROM spans), (SELECT count(*) FROM kernel_events)' },
  });
  assert.deepEqual((count.structuredContent as { rows: unknown[][] }).rows, [['1', '2']], 'the store is unchanged');
});

test('queries over the store keep working: joins, CTEs, windows, JSON, lists, the clock, generators', async (t) => {
  const { url } = await serveKnownTrace(t);
  const c = await client(t, url);
  const queries = [
    `SELECT s.name, k.kind, k.other_comm FROM spans s JOIN attachments a USING (trace_id, span_id) JOIN kernel_events k USING (event_id)`,
    `WITH waits AS (SELECT tid, sum(duration_ms) AS ms FROM kernel_events GROUP BY tid) SELECT * FROM waits ORDER BY ms DESC`,
    `SELECT kind, row_number() OVER (PARTITION BY pid ORDER BY start_ns) AS n, lag(kind) OVER (ORDER BY start_ns) FROM kernel_events`,
    `SELECT json_extract_string(attributes, '$."causeway.cuda.kernel"') AS kernel FROM kernel_events WHERE kind = 'cuda.launch'`,
    `SELECT list_sum([1, 2, 3]), unnest(['a', 'b']), regexp_matches(name, '^[a-z]'), epoch_ns(now()) > 0 FROM spans`,
    `SELECT quantile_cont(duration_ms, 0.5), arg_max(kind, duration_ms) FROM kernel_events`,
    `SELECT i FROM range(3) t(i) UNION ALL SELECT * FROM generate_series(5, 6)`,
    `FROM causeway.main.processes SELECT count(*)`,
  ];
  for (const sql of queries) {
    const result = await c.callTool({ name: 'query_sql', arguments: { sql } });
    assert.notEqual(result.isError, true, `${sql}: ${textOf(result)}`);
  }
});

test('malformed JSON-RPC, wrong types, huge arguments and unknown tools get clean errors, and the server keeps answering', async (t) => {
  const { url } = await serveKnownTrace(t);
  const post = async (body: string) => {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body,
    });
    return { status: response.status, json: (await response.json()) as { error?: { code: number } } };
  };
  const call = (args: unknown) => JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: args });
  const deep = `{"name":"query_sql","arguments":${'{"a":'.repeat(50_000)}1${'}'.repeat(50_000)}}`;
  const raw: [string, string, number, number][] = [
    ['not JSON', '{"jsonrpc":"2.0",', 400, -32700],
    ['empty', '', 400, -32700],
    ['a batch', JSON.stringify([{ jsonrpc: '2.0', id: 1, method: 'tools/list' }]), 400, -32600],
    ['a batch of calls', JSON.stringify(Array(100).fill(JSON.parse(call({ name: 'status' })))), 400, -32600],
    ['JSON-RPC 1.0', JSON.stringify({ jsonrpc: '1.0', id: 1, method: 'tools/list' }), 400, -32700],
    ['no method', JSON.stringify({ jsonrpc: '2.0', id: 1 }), 400, -32700],
    ['params a string', JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: 'x' }), 400, -32700],
    ['an object id', JSON.stringify({ jsonrpc: '2.0', id: {}, method: 'tools/list' }), 400, -32700],
    ['null', 'null', 400, -32700],
    ['an unknown method', JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'admin/shell' }), 200, -32601],
    ['over 4 MiB', call({ name: 'query_sql', arguments: { sql: 'x'.repeat(5 * 2 ** 20) } }), 413, -32000],
  ];
  for (const [what, body, status, code] of raw) {
    const answer = await post(body);
    assert.equal(answer.status, status, what);
    assert.equal(answer.json.error?.code, code, what);
  }
  // Through the client: each is a tool error (the SDK checks arguments against the input schema).
  const c = await client(t, url);
  const calls: [string, Record<string, unknown>][] = [
    ['no_such_tool', {}],
    ['explain_trace', { trace_id: 42 }],
    ['explain_trace', { trace_id: 'a'.repeat(1_000_000) }],
    ['explain_trace', {}],
    ['slow_traces', { limit: 'ten' }],
    ['slow_traces', { since_minutes: 1e12 }],
    ['find_stalls', { kind: 'rm -rf', min_duration_ms: -1 }],
    ['compare_latency', { service: 'x', slow_percentile: 1000 }],
    ['gpu_activity', { pid: 'one' }],
    ['query_sql', { sql: ['SELECT 1'] }],
    ['query_sql', { sql: `SELECT 1${' '.repeat(20_000)}` }],
    ['query_sql', { sql: 'SELECT 1', max_rows: 1e9 }],
  ];
  for (const [name, args] of calls) {
    const result = await c.callTool({ name, arguments: args });
    assert.equal(result.isError, true, `${name} ${JSON.stringify(args).slice(0, 80)}: ${textOf(result)}`);
  }
  // An own "__proto__" key is one more unknown argument, dropped; nothing is polluted.
  const proto = await post(
    call(JSON.parse('{"name":"query_sql","arguments":{"sql":"SELECT 1","__proto__":{"sql":"x"}}}')),
  );
  assert.deepEqual((proto.json as { result?: { structuredContent?: unknown } }).result?.structuredContent, {
    columns: ['1'],
    rows: [[1]],
    truncated: false,
  });
  assert.equal(({} as { sql?: unknown }).sql, undefined);
  const nested = await post(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":${deep}}`);
  assert.equal(nested.status, 200);
  assert.equal((nested.json as { result?: { isError?: boolean } }).result?.isError, true);

  const explained = await c.callTool({ name: 'explain_trace', arguments: { trace_id: KNOWN_TRACE } });
  assert.equal((explained.structuredContent as { root_cause: { kind: string } }).root_cause.kind, 'futex.wait');
});
