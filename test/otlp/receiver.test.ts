// The OTLP receiver against real clients and a bad-input suite: the real
// @opentelemetry/exporter-trace-otlp-grpc exporter, a raw grpc-js client,
// and fetch for OTLP/HTTP (protobuf and JSON).

import * as grpc from '@grpc/grpc-js';
import { context, trace, SpanKind as ApiSpanKind } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import * as zlib from 'node:zlib';
import { traceServiceDefinition } from '../../src/otlp/grpc.js';
import {
  otlpTypes,
  startOtlpReceiver,
  SpanKind,
  TRACE_SERVICE_EXPORT_PATH,
  type AppSpan,
  type OtlpReceiverOptions,
} from '../../src/otlp/index.js';
import { TestMeter } from '../export/meter.js';

const TRACE_A = '5b8efff798038103d269b633813fc60c';
const SPAN_A = 'eee19b7ec3c1b174';
const SPAN_B = 'eee19b7ec3c1b175';
const NOW_NS = '1700000000123456789';

interface Harness {
  spans: AppSpan[];
  grpcPort: number;
  httpPort: number;
  counters: () => ReturnType<Awaited<ReturnType<typeof startOtlpReceiver>>['counters']>;
  /** Waits until every accepted span has reached onSpans: the servers answer from a thread of their own, so an answer can come first. */
  settled: () => Promise<void>;
}

async function start(t: TestContext, opts: Partial<OtlpReceiverOptions> = {}): Promise<Harness> {
  const spans: AppSpan[] = [];
  const r = await startOtlpReceiver({
    grpc: { host: '127.0.0.1', port: 0 },
    http: { host: '127.0.0.1', port: 0 },
    onSpans: (s) => {
      spans.push(...s);
    },
    ...opts,
  });
  t.after(() => r.close());
  assert.ok(r.grpcPort !== undefined && r.httpPort !== undefined);
  const settled = async (): Promise<void> => {
    while (r.counters().pendingSpans > 0) await new Promise((resolve) => setTimeout(resolve, 1));
  };
  return { spans, grpcPort: r.grpcPort, httpPort: r.httpPort, counters: () => r.counters(), settled };
}

// ---- request builders ----------------------------------------------------------

interface SpanSpec {
  traceId?: string;
  spanId?: string;
  parentSpanId?: string;
  name?: string;
}

function protoRequest(specs: SpanSpec[], extraAttr?: { key: string; value: string }): Uint8Array {
  const t = otlpTypes().ExportTraceServiceRequest;
  const attributes = [
    { key: 'causeway.thread.tid', value: { intValue: 4321 } },
    { key: 'http.route', value: { stringValue: '/x' } },
  ];
  if (extraAttr) attributes.push({ key: extraAttr.key, value: { stringValue: extraAttr.value } });
  const body = {
    resourceSpans: [
      {
        resource: {
          attributes: [
            { key: 'service.name', value: { stringValue: 'proto-svc' } },
            { key: 'process.pid', value: { intValue: 1234 } },
          ],
        },
        scopeSpans: [
          {
            scope: { name: 'test-scope', version: '1.0' },
            spans: specs.map((s) => ({
              traceId: Buffer.from(s.traceId ?? TRACE_A, 'hex'),
              spanId: Buffer.from(s.spanId ?? SPAN_A, 'hex'),
              parentSpanId: s.parentSpanId ? Buffer.from(s.parentSpanId, 'hex') : undefined,
              name: s.name ?? 'GET /x',
              kind: 2,
              startTimeUnixNano: NOW_NS,
              endTimeUnixNano: '1700000000223456789',
              attributes,
            })),
          },
        ],
      },
    ],
  };
  return t.encode(t.fromObject(body)).finish();
}

function jsonRequest(specs: SpanSpec[]): string {
  return JSON.stringify({
    resourceSpans: [
      {
        resource: {
          attributes: [
            { key: 'service.name', value: { stringValue: 'json-svc' } },
            { key: 'process.pid', value: { intValue: '4242' } },
          ],
        },
        scopeSpans: [
          {
            spans: specs.map((s) => ({
              traceId: s.traceId ?? TRACE_A,
              spanId: s.spanId ?? SPAN_A,
              parentSpanId: s.parentSpanId ?? '',
              name: s.name ?? 'json span',
              kind: 'SPAN_KIND_CLIENT',
              startTimeUnixNano: NOW_NS,
              endTimeUnixNano: '1700000000223456789',
              attributes: [{ key: 'causeway.thread.tid', value: { intValue: 77 } }],
            })),
          },
        ],
      },
    ],
  });
}

async function post(
  port: number,
  body: Uint8Array | string,
  contentType: string,
  headers: Record<string, string> = {},
  path = '/v1/traces',
  method = 'POST',
): Promise<{ status: number; contentType: string | null; headers: Headers; body: Buffer }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    headers: { 'Content-Type': contentType, ...headers },
    body: method === 'GET' ? undefined : body,
  });
  return {
    status: res.status,
    contentType: res.headers.get('content-type'),
    headers: res.headers,
    body: Buffer.from(await res.arrayBuffer()),
  };
}

function decodeStatus(body: Uint8Array): { code: number; message: string } {
  const t = otlpTypes().Status;
  return t.toObject(t.decode(body), { defaults: true }) as { code: number; message: string };
}

function decodeResponse(body: Uint8Array): { partialSuccess?: { rejectedSpans: string; errorMessage: string } } {
  const t = otlpTypes().ExportTraceServiceResponse;
  return t.toObject(t.decode(body), { longs: String });
}

// ---- raw gRPC client -----------------------------------------------------------

const RawClient = grpc.makeGenericClientConstructor(traceServiceDefinition, 'TraceService');

function grpcExport(
  port: number,
  body: Uint8Array,
  gzip = false,
): Promise<{ err: grpc.ServiceError | null; res?: Buffer }> {
  const client = new RawClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
    'grpc.max_send_message_length': -1,
    ...(gzip ? { 'grpc.default_compression_algorithm': grpc.compressionAlgorithms.gzip } : {}),
  });
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      TRACE_SERVICE_EXPORT_PATH,
      (b: Buffer) => b,
      (b: Buffer) => b,
      Buffer.from(body),
      (err: grpc.ServiceError | null, res?: Buffer) => {
        client.close();
        resolve({ err, res });
      },
    );
  });
}

// ---- tests ---------------------------------------------------------------------

test('real OTLP gRPC exporter: spans arrive with ids, parent, kind, attributes and resource', async (t) => {
  const h = await start(t);
  const exporter = new OTLPTraceExporter({ url: `http://127.0.0.1:${h.grpcPort}` });
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'node-app', 'process.pid': process.pid }),
    spanProcessors: [new SimpleSpanProcessor(exporter)],
  });
  t.after(() => provider.shutdown());
  const tracer = provider.getTracer('receiver-test', '0.0.1');
  const parent = tracer.startSpan('GET /work', { kind: ApiSpanKind.SERVER, attributes: { 'http.route': '/work' } });
  const child = tracer.startSpan(
    'compute',
    { attributes: { 'causeway.thread.tid': 98765, ratio: 0.5, ok: true, tags: ['a', 'b'] } },
    trace.setSpan(context.active(), parent),
  );
  child.end();
  parent.end();
  await provider.forceFlush();

  await h.settled();
  assert.equal(h.spans.length, 2);
  const p = h.spans.find((s) => s.name === 'GET /work');
  const c = h.spans.find((s) => s.name === 'compute');
  assert.ok(p && c);
  const pc = parent.spanContext();
  assert.equal(p.traceId, pc.traceId);
  assert.match(p.traceId, /^[0-9a-f]{32}$/);
  assert.equal(p.spanId, pc.spanId);
  assert.equal(p.parentSpanId, undefined);
  assert.equal(p.kind, SpanKind.SERVER);
  assert.equal(c.traceId, pc.traceId);
  assert.equal(c.spanId, child.spanContext().spanId);
  assert.equal(c.parentSpanId, pc.spanId);
  assert.equal(c.kind, SpanKind.INTERNAL);
  assert.equal(c.attributes['causeway.thread.tid'], 98765);
  assert.equal(c.attributes.ratio, 0.5);
  assert.equal(c.attributes.ok, true);
  assert.deepEqual(c.attributes.tags, ['a', 'b']);
  assert.equal(p.attributes['http.route'], '/work');
  assert.equal(c.resource['process.pid'], process.pid);
  assert.equal(typeof c.resource['process.pid'], 'number');
  assert.equal(c.serviceName, 'node-app');
  assert.deepEqual(c.scope, { name: 'receiver-test', version: '0.0.1' });
  assert.equal(typeof c.startUnixNano, 'bigint');
  assert.ok(c.endUnixNano >= c.startUnixNano);
  assert.ok(c.startUnixNano > 1_600_000_000_000_000_000n);
  const k = h.counters();
  assert.equal(k.requestsGrpc, 2);
  assert.equal(k.spansAccepted, 2);
  assert.equal(k.spansDelivered, 2);
});

/** A request to the gRPC receiver, what status it gets, and what else must hold after it. */
interface GrpcCase {
  name: string;
  body: Uint8Array;
  gzip?: boolean;
  /** The gRPC status code; undefined: OK. */
  code?: grpc.status;
  check?: (answer: Awaited<ReturnType<typeof grpcExport>>) => void;
}

test('gRPC: gzip, malformed protobuf, zero ids, oversize and gzip bomb', async (t) => {
  const h = await start(t, { maxMessageBytes: 64 * 1024 });
  const cases: GrpcCase[] = [
    {
      name: 'a gzip-compressed request is decoded after decompression',
      body: protoRequest([{ spanId: SPAN_A }]),
      gzip: true,
      check: (ok) => {
        assert.ok(ok.res);
        assert.deepEqual(decodeResponse(ok.res), {});
        assert.equal(h.spans.length, 1);
        const [s0] = h.spans;
        assert.ok(s0);
        assert.equal(s0.attributes['causeway.thread.tid'], 4321);
        assert.equal(s0.resource['process.pid'], 1234);
        assert.equal(s0.startUnixNano, BigInt(NOW_NS));
      },
    },
    {
      name: 'malformed protobuf is INVALID_ARGUMENT',
      body: Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]),
      code: grpc.status.INVALID_ARGUMENT,
      check: (bad) => {
        assert.match(bad.err?.details ?? '', /protobuf/);
      },
    },
    {
      name: 'zero and wrong-length ids are a partial success that keeps the good span',
      body: protoRequest([
        { traceId: '0'.repeat(32) },
        { spanId: '0'.repeat(16) },
        { spanId: SPAN_B, parentSpanId: SPAN_A },
        { spanId: 'abcd' },
      ]),
      check: (zero) => {
        assert.ok(zero.res);
        const partial = decodeResponse(zero.res).partialSuccess;
        assert.equal(partial?.rejectedSpans, '3');
        assert.match(partial.errorMessage, /all zeros/);
        assert.equal(h.spans.length, 2);
        assert.equal(h.spans[1]?.parentSpanId, SPAN_A);
      },
    },
    {
      name: 'an oversize request is RESOURCE_EXHAUSTED',
      body: protoRequest([{}], { key: 'pad', value: 'x'.repeat(100 * 1024) }),
      code: grpc.status.RESOURCE_EXHAUSTED,
    },
    {
      name: 'a gzip bomb is RESOURCE_EXHAUSTED: the limit applies after decompression',
      body: protoRequest([{}], { key: 'pad', value: '\0'.repeat(8 * 1024 * 1024) }),
      gzip: true,
      code: grpc.status.RESOURCE_EXHAUSTED,
    },
  ];
  for (const c of cases)
    await t.test(c.name, async () => {
      const answer = await grpcExport(h.grpcPort, c.body, c.gzip);
      if (c.code === undefined) assert.equal(answer.err, null);
      else assert.equal(answer.err?.code, c.code);
      await h.settled();
      c.check?.(answer);
    });

  // still serving, nothing lost
  const after = await grpcExport(h.grpcPort, protoRequest([{ spanId: 'eee19b7ec3c1b199' }]));
  assert.equal(after.err, null);
  await h.settled();
  assert.equal(h.spans.length, 3);
  const k = h.counters();
  assert.equal(k.spansAccepted, 3);
  assert.equal(k.spansRejected, 3);
  assert.equal(k.badRequests, 1);
});

test('HTTP protobuf: spans decoded, response has the request content type', async (t) => {
  const h = await start(t);
  const res = await post(
    h.httpPort,
    protoRequest([{}, { spanId: SPAN_B, parentSpanId: SPAN_A, name: 'child' }]),
    'application/x-protobuf',
  );
  assert.equal(res.status, 200);
  assert.equal(res.contentType, 'application/x-protobuf');
  assert.deepEqual(decodeResponse(res.body), {});
  await h.settled();
  assert.equal(h.spans.length, 2);
  const [a, b] = h.spans;
  assert.ok(a && b);
  assert.equal(a.traceId, TRACE_A);
  assert.equal(a.spanId, SPAN_A);
  assert.equal(a.kind, SpanKind.SERVER);
  assert.equal(a.serviceName, 'proto-svc');
  assert.equal(a.resource, b.resource, "a request's spans share its resource object, across threads too");
  assert.equal(a.endUnixNano - a.startUnixNano, 100_000_000n);
  assert.equal(b.parentSpanId, SPAN_A);
  assert.equal(b.name, 'child');

  // gzip-encoded body
  const gz = await post(
    h.httpPort,
    zlib.gzipSync(protoRequest([{ spanId: 'eee19b7ec3c1b176' }])),
    'application/x-protobuf',
    {
      'Content-Encoding': 'gzip',
    },
  );
  assert.equal(gz.status, 200);
  await h.settled();
  assert.equal(h.spans.length, 3);
});

test('HTTP JSON: hex ids in any case, enum names, snake_case, unknown fields, 64-bit strings', async (t) => {
  const h = await start(t);
  const body = {
    resourceSpans: [
      {
        resource: {
          attributes: [
            { key: 'service.name', value: { stringValue: 'py-svc' } },
            { key: 'process.pid', value: { intValue: '31337' } },
            { key: 'big', value: { intValue: '9007199254740993' } },
          ],
          someFutureField: { nested: true },
        },
        scope_spans: [
          {
            scope: { name: 'py' },
            spans: [
              {
                traceId: TRACE_A.toUpperCase(),
                spanId: SPAN_A.toUpperCase(),
                parentSpanId: '',
                name: 'POST /infer',
                kind: 'SPAN_KIND_SERVER',
                startTimeUnixNano: NOW_NS,
                endTimeUnixNano: 1700000000,
                attributes: [
                  { key: 'causeway.thread.tid', value: { intValue: 555 } },
                  { key: 'd', value: { doubleValue: 1.25 } },
                  { key: 'nan', value: { doubleValue: 'NaN' } },
                  { key: 'b', value: { boolValue: false } },
                  { key: 'raw', value: { bytesValue: Buffer.from([1, 2, 3]).toString('base64') } },
                  { key: 'kv', value: { kvlistValue: { values: [{ key: 'inner', value: { stringValue: 'v' } }] } } },
                  { key: 'arr', value: { arrayValue: { values: [{ intValue: '1' }, { stringValue: 's' }] } } },
                  { key: 'empty', value: {} },
                ],
                status: { code: 'STATUS_CODE_ERROR', message: 'boom' },
                unknownSpanField: [1, 2, 3],
              },
              {
                trace_id: TRACE_A,
                span_id: SPAN_B,
                parent_span_id: SPAN_A,
                name: 'child',
                kind: 3,
                start_time_unix_nano: NOW_NS,
                end_time_unix_nano: NOW_NS,
              },
            ],
          },
        ],
      },
    ],
    extraTopLevel: 'ignored',
  };
  const res = await post(h.httpPort, JSON.stringify(body), 'application/json; charset=utf-8');
  assert.equal(res.status, 200, res.body.toString());
  assert.equal(res.contentType, 'application/json');
  assert.deepEqual(JSON.parse(res.body.toString()), {});
  await h.settled();
  assert.equal(h.spans.length, 2);
  const [s, c] = h.spans;
  assert.ok(s && c);
  assert.equal(s.traceId, TRACE_A);
  assert.equal(s.spanId, SPAN_A);
  assert.equal(s.parentSpanId, undefined);
  assert.equal(s.kind, SpanKind.SERVER);
  assert.equal(s.startUnixNano, 1700000000123456789n);
  assert.equal(s.endUnixNano, 1700000000n);
  assert.equal(s.resource['process.pid'], 31337);
  assert.equal(s.resource.big, 9007199254740993n);
  assert.equal(s.serviceName, 'py-svc');
  assert.equal(s.attributes['causeway.thread.tid'], 555);
  assert.equal(s.attributes.d, 1.25);
  assert.ok(Number.isNaN(s.attributes.nan));
  assert.equal(s.attributes.b, false);
  assert.deepEqual(s.attributes.raw, new Uint8Array([1, 2, 3]));
  assert.deepEqual(s.attributes.kv, { inner: 'v' });
  assert.deepEqual(s.attributes.arr, [1, 's']);
  assert.equal('empty' in s.attributes, false);
  assert.deepEqual(s.status, { code: 2, message: 'boom' });
  assert.equal(c.parentSpanId, SPAN_A);
  assert.equal(c.kind, SpanKind.CLIENT);
});

type Answer = Awaited<ReturnType<typeof post>>;

/** A request to the HTTP receiver, the status and content type it gets, and what else must hold after it. */
interface HttpCase {
  name: string;
  body: Uint8Array | string;
  type: string;
  headers?: Record<string, string>;
  path?: string;
  method?: string;
  status: number;
  /** The answer's content type, where it matters. */
  answerType?: string;
  /** The receiver must not have inflated the body: its memory grew by less than this. */
  memoryBelow?: number;
  check?: (r: Answer) => void;
}

const PB = 'application/x-protobuf';
const JSON_CT = 'application/json';
const jsonMessage = (r: Answer) => (JSON.parse(r.body.toString()) as { message: string }).message;

test('HTTP bad-input suite: every bad request is refused cleanly and accepted data survives', async (t) => {
  const h = await start(t, { maxMessageBytes: 1024 * 1024 });

  // good data first
  assert.equal((await post(h.httpPort, protoRequest([{}]), PB)).status, 200);
  assert.equal((await post(h.httpPort, jsonRequest([{ spanId: SPAN_B }]), JSON_CT)).status, 200);
  await h.settled();
  assert.equal(h.spans.length, 2);

  // 50 MiB of zeros, about 50 KiB compressed: refused after at most 1 MiB inflated
  const bomb = zlib.gzipSync(Buffer.alloc(50 * 1024 * 1024));
  assert.ok(bomb.length < 1024 * 1024);
  const cases: HttpCase[] = [
    {
      name: 'malformed protobuf: 400, a google.rpc.Status body in protobuf',
      body: Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]),
      type: PB,
      status: 400,
      answerType: PB,
      check: (r) => {
        const st = decodeStatus(r.body);
        assert.equal(st.code, 3);
        assert.match(st.message, /protobuf/);
      },
    },
    { name: 'garbage bytes: 400', body: Buffer.from('this is not protobuf at all \xff\xfe'), type: PB, status: 400 },
    {
      name: 'malformed JSON: 400, a Status body in JSON',
      body: '{"resourceSpans": [',
      type: JSON_CT,
      status: 400,
      answerType: JSON_CT,
      check: (r) => {
        const js = JSON.parse(r.body.toString()) as { code: number; message: string; details: { '@type': string }[] };
        assert.equal(js.code, 3);
        assert.match(js.message, /JSON/);
        assert.equal(js.details[0]?.['@type'], 'type.googleapis.com/google.rpc.BadRequest');
      },
    },
    {
      name: 'JSON with resourceSpans not an array: 400',
      body: JSON.stringify({ resourceSpans: { not: 'an array' } }),
      type: JSON_CT,
      status: 400,
    },
    { name: 'JSON that is an array: 400', body: '[1,2,3]', type: JSON_CT, status: 400 },
    {
      name: 'JSON with base64 ids (the OTLP/JSON mistake): 400, saying ids are hex',
      body: jsonRequest([{ traceId: Buffer.from(TRACE_A, 'hex').toString('base64'), spanId: 'AAECAwQFBgc=' }]),
      type: JSON_CT,
      status: 400,
      check: (r) => {
        assert.match(jsonMessage(r), /hex/);
      },
    },
    {
      name: 'an unknown enum name: 400',
      body: jsonRequest([{}]).replace('SPAN_KIND_CLIENT', 'SPAN_KIND_BOGUS'),
      type: JSON_CT,
      status: 400,
    },
    {
      name: 'an oversize body: 413, a Status body in protobuf',
      body: protoRequest([{}], { key: 'pad', value: 'x'.repeat(2 * 1024 * 1024) }),
      type: PB,
      status: 413,
      answerType: PB,
      check: (r) => {
        assert.equal(decodeStatus(r.body).code, 3);
      },
    },
    {
      name: 'a gzip bomb as protobuf: 413, not inflated',
      body: bomb,
      type: PB,
      headers: { 'Content-Encoding': 'gzip' },
      status: 413,
      memoryBelow: 40 * 1024 * 1024,
    },
    {
      name: 'a gzip bomb as JSON: 413, answered in JSON',
      body: bomb,
      type: JSON_CT,
      headers: { 'Content-Encoding': 'gzip' },
      status: 413,
      answerType: JSON_CT,
    },
    {
      name: 'corrupt gzip: 400',
      body: Buffer.from('not gzip'),
      type: PB,
      headers: { 'Content-Encoding': 'gzip' },
      status: 400,
    },
    {
      name: 'an unknown content encoding: 415',
      body: protoRequest([{}]),
      type: PB,
      headers: { 'Content-Encoding': 'compress' },
      status: 415,
    },
    {
      name: 'zero and wrong-length ids in JSON: 200, a partial success that keeps the valid span',
      body: jsonRequest([
        { traceId: '0'.repeat(32) },
        { spanId: '0'.repeat(16) },
        { spanId: 'eee19b7ec3c1b177' },
        { traceId: 'abcdef' },
      ]),
      type: JSON_CT,
      status: 200,
      check: (r) => {
        const pj = JSON.parse(r.body.toString()) as { partialSuccess: { rejectedSpans: string; errorMessage: string } };
        assert.equal(pj.partialSuccess.rejectedSpans, '3');
        assert.match(pj.partialSuccess.errorMessage, /traceId is all zeros/);
      },
    },
    {
      name: 'a zero span id in protobuf: 200, a partial success',
      body: protoRequest([{ spanId: '0'.repeat(16) }]),
      type: PB,
      status: 200,
      check: (r) => {
        assert.equal(decodeResponse(r.body).partialSuccess?.rejectedSpans, '1');
        assert.equal(h.spans.length, 3);
      },
    },
    { name: 'a wrong content type: 415', body: '{}', type: 'text/plain', status: 415 },
    { name: 'a wrong path: 404', body: protoRequest([{}]), type: PB, path: '/v1/metrics', status: 404 },
    {
      name: 'a wrong method: 405, allowing POST',
      body: '',
      type: PB,
      method: 'GET',
      status: 405,
      check: (r) => {
        assert.equal(r.headers.get('allow'), 'POST');
      },
    },
    {
      name: 'an empty protobuf request: 200, an empty ExportTraceServiceResponse',
      body: new Uint8Array(0),
      type: PB,
      status: 200,
      answerType: PB,
      check: (r) => {
        assert.equal(r.body.length, 0);
      },
    },
    {
      name: 'an empty JSON body: 200, an empty response',
      body: '',
      type: JSON_CT,
      status: 200,
      check: (r) => {
        assert.deepEqual(JSON.parse(r.body.toString()), {});
      },
    },
    { name: 'an empty JSON object: 200', body: '{}', type: JSON_CT, status: 200 },
    {
      name: 'JSON with no spans: 200',
      body: '{"resourceSpans":[{"scopeSpans":[{"spans":[]}]}]}',
      type: JSON_CT,
      status: 200,
    },
  ];
  for (const c of cases)
    await t.test(c.name, async () => {
      const before = process.memoryUsage().arrayBuffers;
      const r = await post(h.httpPort, c.body, c.type, c.headers, c.path, c.method);
      assert.equal(r.status, c.status);
      if (c.answerType !== undefined) assert.equal(r.contentType, c.answerType);
      if (c.memoryBelow !== undefined)
        assert.ok(process.memoryUsage().arrayBuffers - before < c.memoryBelow, 'the body was not inflated');
      await h.settled();
      c.check?.(r);
    });

  // after all that, good requests still succeed and nothing accepted was lost
  assert.equal((await post(h.httpPort, protoRequest([{ spanId: 'eee19b7ec3c1b178' }]), PB)).status, 200);
  assert.equal((await grpcExport(h.grpcPort, protoRequest([{ spanId: 'eee19b7ec3c1b179' }]))).err, null);
  await h.settled();
  assert.deepEqual(
    h.spans.map((s) => s.spanId),
    [SPAN_A, SPAN_B, 'eee19b7ec3c1b177', 'eee19b7ec3c1b178', 'eee19b7ec3c1b179'],
  );
  const k = h.counters();
  assert.equal(k.spansAccepted, 5);
  assert.equal(k.spansDelivered, 5);
  assert.equal(k.spansRejected, 4);
  assert.equal(k.tooLarge, 3);
  assert.equal(k.badRequests, 15);
  assert.equal(k.pendingSpans, 0);
});

test('overload: a stalled onSpans fills the bounded queue; 503 + Retry-After / UNAVAILABLE, then recovery', async (t) => {
  const delivered: AppSpan[] = [];
  let release: () => void = () => undefined;
  let stalled = new Promise<void>((resolve) => {
    release = resolve;
  });
  const h = await start(t, {
    maxPendingSpans: 3,
    onSpans: async (s) => {
      await stalled;
      delivered.push(...s);
    },
  });

  assert.equal((await post(h.httpPort, protoRequest([{}, { spanId: SPAN_B }]), 'application/x-protobuf')).status, 200);
  assert.equal(h.counters().pendingSpans, 2);

  const r = await post(
    h.httpPort,
    protoRequest([{ spanId: 'eee19b7ec3c1b180' }, { spanId: 'eee19b7ec3c1b181' }]),
    'application/x-protobuf',
  );
  assert.equal(r.status, 503);
  assert.equal(r.headers.get('retry-after'), '1');
  assert.equal(decodeStatus(r.body).code, 14);
  const rj = await post(
    h.httpPort,
    jsonRequest([{ spanId: 'eee19b7ec3c1b182' }, { spanId: 'eee19b7ec3c1b183' }]),
    'application/json',
  );
  assert.equal(rj.status, 503);
  assert.equal((JSON.parse(rj.body.toString()) as { code: number }).code, 14);
  const g = await grpcExport(
    h.grpcPort,
    protoRequest([{ spanId: 'eee19b7ec3c1b184' }, { spanId: 'eee19b7ec3c1b185' }]),
  );
  assert.equal(g.err?.code, grpc.status.UNAVAILABLE);

  // one more span still fits (2 + 1 <= 3)
  assert.equal(
    (await post(h.httpPort, protoRequest([{ spanId: 'eee19b7ec3c1b186' }]), 'application/x-protobuf')).status,
    200,
  );
  let k = h.counters();
  assert.equal(k.requestsRefused, 3);
  assert.equal(k.spansRefused, 6);
  assert.equal(k.pendingSpans, 3);
  assert.equal(delivered.length, 0);

  release();
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(delivered.length, 3);
  assert.equal(h.counters().pendingSpans, 0);
  stalled = Promise.resolve();

  // the refused request, retried, is accepted now
  const retry = await grpcExport(
    h.grpcPort,
    protoRequest([{ spanId: 'eee19b7ec3c1b184' }, { spanId: 'eee19b7ec3c1b185' }]),
  );
  assert.equal(retry.err, null);
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(delivered.length, 5);
  k = h.counters();
  assert.equal(k.spansAccepted, 5);
  assert.equal(k.spansDelivered, 5);
});

test('close() drains pending spans, and an onSpans error is counted without losing later spans', async (t) => {
  const m = new TestMeter();
  t.after(() => m.close());
  const got: string[] = [];
  const errors: unknown[] = [];
  let first = true;
  const r = await startOtlpReceiver({
    grpc: false,
    http: { host: '127.0.0.1', port: 0 },
    onSpans: async (s) => {
      await new Promise((resolve) => setTimeout(resolve, 30));
      if (first) {
        first = false;
        throw new Error('consumer failed');
      }
      got.push(...s.map((x) => x.spanId));
    },
    onError: (e) => errors.push(e),
    meter: m.meter,
  });
  assert.equal(r.grpcPort, undefined);
  const port = r.httpPort ?? 0;
  assert.equal((await post(port, protoRequest([{}]), 'application/x-protobuf')).status, 200);
  assert.equal((await post(port, protoRequest([{ spanId: SPAN_B }]), 'application/x-protobuf')).status, 200);
  await r.close();
  assert.deepEqual(got, [SPAN_B]);
  assert.equal(errors.length, 1);
  const k = r.counters();
  assert.equal(k.deliveryErrors, 1);
  assert.equal(k.spansDelivered, 2);
  assert.equal(k.pendingSpans, 0);
  assert.equal(k.spansDropped, 0);
  assert.equal(await m.value('causeway_receiver_spans_accepted'), 2, 'the counters are instruments too');
  assert.equal(await m.value('causeway_receiver_requests_refused'), 0);
});
