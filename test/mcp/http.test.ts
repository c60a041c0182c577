import assert from 'node:assert/strict';
import http from 'node:http';
import { networkInterfaces } from 'node:os';
import { test, type TestContext } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpBindError } from '../../src/mcp/bind.js';
import { serveMcp } from '../../src/mcp/http.js';
import type { Store } from '../../src/store/store.js';
import { querySource } from '../../src/store/backend.js';
import { MS, appSpan, ids } from '../store/traces.js';
import { KNOWN_TRACE, serveKnownTrace } from './server.js';

const TOOLS = ['compare_latency', 'explain_trace', 'find_stalls', 'gpu_activity', 'query_sql', 'slow_traces', 'status'];
const INIT = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
};

async function client(t: TestContext, url: string, headers: Record<string, string> = {}) {
  const c = new Client({ name: 'test', version: '1' });
  await c.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } }));
  t.after(() => c.close());
  return c;
}

const post = (url: string, headers: Record<string, string>, body: unknown = INIT) =>
  fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body: JSON.stringify(body),
  });

test('every tool is read-only with an output schema, and explain_trace answers through a real MCP client', async (t) => {
  const { url } = await serveKnownTrace(t);
  const c = await client(t, url);
  const { tools } = await c.listTools();
  assert.deepEqual(tools.map((tool) => tool.name).sort(), TOOLS);
  for (const tool of tools) {
    assert.equal(tool.annotations?.readOnlyHint, true, tool.name);
    assert.equal(tool.outputSchema?.type, 'object', tool.name);
  }
  const result = await c.callTool({ name: 'explain_trace', arguments: { trace_id: KNOWN_TRACE } });
  const explanation = result.structuredContent as { root_cause: { kind: string; culprit: { tid: number } } };
  assert.equal(explanation.root_cause.kind, 'futex.wait');
  assert.equal(explanation.root_cause.culprit.tid, 12);
  assert.match((result.content as { text: string }[])[0]?.text ?? '', /Root cause: futex\.wait/);
  const stalls = await c.callTool({ name: 'find_stalls', arguments: { kind: 'futex.wait' } });
  assert.equal((stalls.structuredContent as { stalls: unknown[] }).stalls.length, 1);
  const { prompts } = await c.listPrompts();
  assert.deepEqual(
    prompts.map((p) => p.name),
    ['diagnose_slow_request'],
  );
  const prompt = await c.getPrompt({ name: 'diagnose_slow_request', arguments: { service: 'api' } });
  assert.match(JSON.stringify(prompt.messages), /slow_traces.*explain_trace/);
});

test("explain_trace says when kernel events of the trace's time were shed, and not for a time after it", async (t) => {
  const { url, store, trace } = await serveKnownTrace(t);
  const c = await client(t, url);
  const explain = async () => {
    const result = await c.callTool({ name: 'explain_trace', arguments: { trace_id: KNOWN_TRACE } });
    return {
      shed: (result.structuredContent as { kernel_events_shed: boolean }).kernel_events_shed,
      text: (result.content as { text: string }[])[0]?.text ?? '',
    };
  };
  store.addShed(trace.end + 100n * MS, trace.end + 200n * MS);
  await store.flush();
  const after = await explain();
  assert.equal(after.shed, false);
  assert.doesNotMatch(after.text, /shed/);
  // The capture fell behind while the request waited: its events of [150, 250) ms are missing.
  store.addShed(trace.start + 150n * MS, trace.start + 250n * MS);
  await store.flush();
  const during = await explain();
  assert.equal(during.shed, true);
  assert.match(during.text, /Kernel events of this trace's time were shed because Causeway's sidecar was behind/);
  const stored = await c.callTool({ name: 'query_sql', arguments: { sql: 'SELECT count(*) AS n FROM shed_times' } });
  assert.deepEqual((stored.structuredContent as { rows: unknown[][] }).rows, [['2']]);
});

test('slow_traces marks the traces whose time overlaps a shed stretch, and only those', async (t) => {
  const { url, store, trace } = await serveKnownTrace(t);
  const c = await client(t, url);
  const later = { start: trace.end + 200n * MS, end: trace.end + 300n * MS };
  store.addSpans([appSpan({ trace: 2, span: 2, ...later, pid: 10, tid: 11 })]);
  // The capture fell behind while trace 1 waited, and again between the two traces.
  store.addShed(trace.start + 150n * MS, trace.start + 250n * MS);
  store.addShed(trace.end + 50n * MS, trace.end + 100n * MS);
  await store.flush();
  const result = await c.callTool({ name: 'slow_traces', arguments: {} });
  const { traces } = result.structuredContent as { traces: { trace_id: string; kernel_events_shed: boolean }[] };
  assert.deepEqual(
    traces.map((tr) => [tr.trace_id, tr.kernel_events_shed]),
    [
      [KNOWN_TRACE, true],
      [ids(2).traceId, false],
    ],
  );
  const lines = ((result.content as { text: string }[])[0]?.text ?? '').split('\n');
  assert.deepEqual(
    lines.filter((line) => line.includes('kernel events shed')).map((line) => line.slice(0, 32)),
    [KNOWN_TRACE],
  );
});

test('explain_trace finds a trace handed to the store and not written yet, by having it written first', async (t) => {
  const { url, store, trace } = await serveKnownTrace(t);
  const c = await client(t, url);
  // The store writes on no timer here: the trace's span waits to be written, as behind a long write.
  store.addSpans([appSpan({ trace: 2, span: 2, start: trace.start, end: trace.end, pid: 10, tid: 11 })]);
  assert.equal(store.lag().rows, 1);
  const found = await c.callTool({ name: 'explain_trace', arguments: { trace_id: ids(2).traceId } });
  assert.equal(found.isError, undefined, JSON.stringify(found.content));
  assert.equal((found.structuredContent as { trace_id: string }).trace_id, ids(2).traceId);
  assert.equal(store.lag().rows, 0);
  // A trace that is nowhere, while rows wait: they are written, and the answer is that it is unknown.
  store.addSpans([appSpan({ trace: 3, span: 3, start: trace.start, end: trace.end, pid: 10, tid: 11 })]);
  const unknown = await c.callTool({ name: 'explain_trace', arguments: { trace_id: 'f'.repeat(32) } });
  assert.equal(unknown.isError, true);
  assert.match(JSON.stringify(unknown.content), /is not in local store \(too old for the retention/);
  assert.deepEqual(await store.rows('SELECT count(*) FROM spans'), [[3n]]);
  const { lookupsWaited, lookupsBehind } = store.counters();
  assert.deepEqual({ lookupsWaited, lookupsBehind }, { lookupsWaited: 2, lookupsBehind: 0 });
});

test('explain_trace says a trace is not in the store yet, with the rows waiting and how far behind, when the wait runs out', async (t) => {
  let ahead = 0n;
  const { url, store, trace } = await serveKnownTrace(t, {}, [], {
    lookupWaitMs: 0,
    now: () => BigInt(Date.now()) * MS + ahead,
  });
  const c = await client(t, url);
  store.addSpans(
    [2, 3].map((n) => appSpan({ trace: n, span: n, start: trace.start, end: trace.end, pid: 10, tid: 11 })),
  );
  ahead = 60_000n * MS;
  const behind = await c.callTool({ name: 'explain_trace', arguments: { trace_id: ids(2).traceId } });
  assert.equal(behind.isError, true);
  const text = (behind.content as { text: string }[])[0]?.text ?? '';
  const said =
    /is not in the local store yet: 2 rows are waiting to be written \(the store is ([\d.]+) s behind\)/.exec(text);
  assert.ok(said !== null, text);
  assert.ok(Number(said[1]) >= 60, text);
  assert.equal(store.counters().lookupsBehind, 1);
  // The write it asked for goes on: once done, the trace is there.
  await store.flush();
  const found = await c.callTool({ name: 'explain_trace', arguments: { trace_id: ids(2).traceId } });
  assert.equal((found.structuredContent as { trace_id: string }).trace_id, ids(2).traceId);
});

test('bad input and writes come back as tool errors, with nothing changed', async (t) => {
  const { url } = await serveKnownTrace(t);
  const c = await client(t, url);
  const bad = await c.callTool({ name: 'explain_trace', arguments: { trace_id: 'not-hex' } });
  assert.equal(bad.isError, true);
  const unknown = await c.callTool({ name: 'explain_trace', arguments: { trace_id: 'f'.repeat(32) } });
  assert.equal(unknown.isError, true);
  assert.match(JSON.stringify(unknown.content), /not in local store/);
  const write = await c.callTool({ name: 'query_sql', arguments: { sql: 'DELETE FROM kernel_events' } });
  assert.equal(write.isError, true);
  assert.match(JSON.stringify(write.content), /only SELECT/);
  const count = await c.callTool({ name: 'query_sql', arguments: { sql: 'SELECT count(*) AS n FROM kernel_events' } });
  assert.deepEqual((count.structuredContent as { rows: unknown[][] }).rows, [['2']]);
});

/** fetch may not set Host: a raw request does, as a DNS-rebinding page's browser would. */
const postWithHost = (port: number, host: string) =>
  new Promise<number>((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path: '/mcp',
        method: 'POST',
        headers: { host, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(INIT));
  });

test('a foreign Origin and a non-loopback Host are refused; no Origin and the own Origin are served', async (t) => {
  const { url, server } = await serveKnownTrace(t);
  assert.equal((await post(url, { origin: 'http://evil.example' })).status, 403);
  assert.equal(await postWithHost(server.port, `evil.example:${String(server.port)}`), 403);
  assert.equal(await postWithHost(server.port, `localhost:${String(server.port)}`), 200);
  assert.equal((await post(url, {})).status, 200);
  assert.equal((await post(url, { origin: `http://127.0.0.1:${String(server.port)}` })).status, 200);
  assert.equal((await post(url, { origin: `http://localhost:${String(server.port)}` })).status, 200);
  assert.equal((await fetch(url)).status, 405);
  assert.equal((await post(`http://127.0.0.1:${String(server.port)}/other`, {})).status, 404);
});

test('beyond loopback a token is required: no bind without one, and calls without it are refused', async (t) => {
  await assert.rejects(
    serveMcp(
      { host: '0.0.0.0', port: 0 },
      { store: undefined as unknown as Store, sources: [], status: () => Promise.resolve({}) },
    ),
    McpBindError,
  );
  const { url: loopbackUrl, server } = await serveKnownTrace(t, { host: '0.0.0.0', token: 's3cret-token' });
  // A remote caller: through this machine's own non-loopback address when it has one.
  const external = Object.values(networkInterfaces())
    .flat()
    .find((i) => i?.family === 'IPv4' && !i.internal)?.address;
  const url = external === undefined ? loopbackUrl : `http://${external}:${String(server.port)}/mcp`;
  const none = await post(url, {});
  assert.equal(none.status, 401);
  assert.match(none.headers.get('www-authenticate') ?? '', /^Bearer /);
  assert.equal((await post(url, { authorization: 'Bearer wrong' })).status, 401);
  assert.equal((await post(`${url}?access_token=s3cret-token`, {})).status, 400);
  const c = await client(t, url, { authorization: 'Bearer s3cret-token' });
  assert.equal((await c.listTools()).tools.length, TOOLS.length);
});

test('cluster mode with its backend down: slow_traces still answers from the store and says which source it could not ask', async (t) => {
  const { url } = await serveKnownTrace(t, {}, [querySource('jaeger=http://127.0.0.1:9')]);
  const c = await client(t, url);
  const result = await c.callTool({ name: 'slow_traces', arguments: {} });
  const answer = result.structuredContent as { traces: { trace_id: string; cause: string }[]; unavailable: string[] };
  assert.deepEqual(
    answer.traces.map((tr) => [tr.trace_id, tr.cause]),
    [[KNOWN_TRACE, 'futex.wait']],
  );
  assert.equal(answer.unavailable.length, 1);
  assert.match(answer.unavailable[0] ?? '', /^jaeger at http:\/\/127\.0\.0\.1:9\/: /);
  assert.match(JSON.stringify(result.content), /Not asked: jaeger/);
});
