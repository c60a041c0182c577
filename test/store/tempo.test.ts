// TempoSource's requests and its reading of the answers, against a stand-in for Tempo's query
// frontend on loopback: Tempo is not installed on the test machines, so the stand-in answers
// as Tempo's API documentation says (OTLP/JSON with base64 ids for a trace, {"traces": [...]}
// for a search, plain-text errors, "404 page not found" for a path it does not serve).
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { TempoSource } from '../../src/store/tempo.js';
import { at, tempoTrace } from './tempo-trace.js';

const TRACE = '0af7651916cd43dd8448eb211c80319c';
const ns = (ms: number) => BigInt(at(ms));

test('TempoSource: a trace by id without a time window, a TraceQL search sorted slowest first, errors', async (t) => {
  const requests: URL[] = [];
  const tempo = createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://tempo');
    requests.push(url);
    const json = (body: unknown) =>
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (url.pathname === `/tempo/api/traces/${TRACE}`) json(tempoTrace);
    else if (url.pathname.startsWith('/tempo/api/traces/')) response.writeHead(404).end('trace not found');
    else if (url.pathname === '/tempo/api/search' && url.searchParams.get('q') === '{}')
      response.writeHead(500).end('too many jobs in the queue');
    else if (url.pathname === '/tempo/api/search') {
      json({
        traces: [
          // Tempo drops leading zeros from ids in search results; durationMs is absent under 1 ms.
          {
            traceID: TRACE.slice(1),
            rootServiceName: 'gateway',
            rootTraceName: 'GET /checkout',
            startTimeUnixNano: at(0),
            durationMs: 600,
          },
          {
            traceID: '1'.repeat(32),
            rootServiceName: 'gateway',
            rootTraceName: 'GET /health',
            startTimeUnixNano: at(10),
            spanSet: { spans: [], matched: 1 },
          },
          {
            traceID: '2'.repeat(32),
            rootServiceName: 'gateway',
            rootTraceName: 'GET /cart',
            startTimeUnixNano: at(20),
            durationMs: 900,
          },
          // Inside the whole seconds asked for, outside the window.
          {
            traceID: '3'.repeat(32),
            rootServiceName: 'gateway',
            rootTraceName: 'GET /late',
            startTimeUnixNano: at(5000),
            durationMs: 5000,
          },
        ],
        metrics: { inspectedTraces: 4 },
      });
    } else response.writeHead(404).end('404 page not found\n');
  });
  await new Promise<void>((resolve) => tempo.listen(0, '127.0.0.1', resolve));
  t.after(() => tempo.close());
  const base = `http://127.0.0.1:${(tempo.address() as AddressInfo).port}/tempo`;
  const source = new TempoSource(base);

  const spans = await source.spans(TRACE);
  assert.deepEqual(
    spans.map((s) => [s.spanId, s.service, s.pid, s.tid]),
    [
      ['00f067aa0ba902b7', 'gateway', 5001, 5001],
      ['b7ad6b7169203331', 'checkout', 30012, 30013],
    ],
  );
  assert.equal(requests.at(-1)?.search, '', 'no start/end: a window can miss the trace');
  assert.deepEqual(
    (await source.events({ pid: 30012, tid: 30013, from: ns(50), to: ns(550) })).map((e) => e.kind),
    ['cuda.launch', 'sched.runqueue', 'tcp.retransmit'],
  );
  // The summary span marked causeway.attach.shed: its time, and only it, had kernel events shed.
  assert.equal(await source.shedDuring(ns(500), ns(600)), true);
  assert.equal(await source.shedDuring(ns(560), ns(600)), false);
  assert.deepEqual(
    (await source.gpuEvents(ns(0), ns(600), 5001)).map((e) => [e.kind, e.pid]),
    [['cuda.launch', 30012]],
  );
  assert.deepEqual(await source.spans('f'.repeat(32)), []);

  const from = ns(0) + 500_000_000n; // 1700000000.5 s
  const slow = await source.slowTraces({
    service: 'gate"way',
    from: ns(-1000),
    to: ns(4000),
    minDurationMs: 250.5,
    limit: 2,
  });
  const search = requests.at(-1);
  assert.equal(
    search?.searchParams.get('q'),
    '{ resource.service.name = "gate\\"way" && traceDuration >= 250500000ns }',
  );
  assert.equal(search.searchParams.get('start'), '1699999999');
  assert.equal(search.searchParams.get('end'), '1700000004');
  assert.equal(search.searchParams.get('limit'), '100');
  assert.deepEqual(slow, [
    { traceId: '2'.repeat(32), service: 'gateway', name: 'GET /cart', startUnixNano: ns(20), durationMs: 900 },
    { traceId: TRACE, service: 'gateway', name: 'GET /checkout', startUnixNano: ns(0), durationMs: 600 },
  ]);
  await assert.rejects(
    source.slowTraces({ from, to: ns(4000), limit: 1 }),
    /^Error: tempo at http:\/\/127\.0\.0\.1:\d+\/tempo\/: GET \/tempo\/api\/search answered HTTP 500: too many jobs in the queue$/,
  );
  // The wrong URL (no /tempo prefix) is an error, not an unknown trace.
  await assert.rejects(new TempoSource(base.replace('/tempo', '')).spans(TRACE), /HTTP 404: 404 page not found/);
});
