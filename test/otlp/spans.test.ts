// A protobuf request and its OTLP/JSON form decode to the same spans: protobufjs's decoded
// message holds every field's default (a oneof's members too), and a field that was not on the
// wire must read as absent, not as its default.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeJsonRequest, decodeProtobufRequest, otlpTypes } from '../../src/otlp/index.js';

const TRACE = '5b8efff798038103d269b633813fc60c';
const SPAN = 'eee19b7ec3c1b171';
const PARENT = 'eee19b7ec3c1b172';

/** One resource, one scope, two spans: one with every AnyValue kind, one with nearly every field absent. */
function request(id: (hex: string) => unknown): Record<string, unknown> {
  return {
    resourceSpans: [
      {
        resource: { attributes: [{ key: 'service.name', value: { stringValue: 'svc' } }] },
        scopeSpans: [
          {
            scope: { name: 'lib' },
            spans: [
              {
                traceId: id(TRACE),
                spanId: id(SPAN),
                parentSpanId: id(PARENT),
                name: 'full',
                kind: 3,
                startTimeUnixNano: '1000',
                endTimeUnixNano: '2000',
                traceState: 'a=b',
                status: { message: 'no code' },
                attributes: [
                  { key: 's', value: { stringValue: 'v' } },
                  { key: 'empty string', value: { stringValue: '' } },
                  { key: 'b', value: { boolValue: false } },
                  { key: 'i', value: { intValue: '-9007199254740993' } },
                  { key: 'zero', value: { intValue: '0' } },
                  { key: 'd', value: { doubleValue: 1.5 } },
                  { key: 'bytes', value: { bytesValue: 'AAEC' } },
                  { key: 'array', value: { arrayValue: { values: [{ intValue: '7' }, {}, { stringValue: 'x' }] } } },
                  { key: 'kv', value: { kvlistValue: { values: [{ key: 'inner', value: { boolValue: true } }] } } },
                  { key: 'unset', value: {} },
                  { key: 'no value' },
                ],
              },
              { traceId: id(TRACE), spanId: id(PARENT), kind: 0 },
            ],
          },
        ],
      },
    ],
  };
}

test('a protobuf request decodes to the spans of its OTLP/JSON form: fields not on the wire are absent, not their defaults', () => {
  const type = otlpTypes().ExportTraceServiceRequest;
  const body = type.encode(type.fromObject(request((hex) => Buffer.from(hex, 'hex')))).finish();
  const fromProtobuf = decodeProtobufRequest(body);
  const fromJson = decodeJsonRequest(JSON.stringify(request((hex) => hex)));

  const [full, bare] = fromProtobuf.spans;
  assert.ok(full && bare);
  assert.equal(fromProtobuf.spans.length, 2);
  assert.equal(fromProtobuf.rejected, 0);
  const { bytes, ...attributes } = full.attributes;
  assert.deepEqual(attributes, {
    s: 'v',
    'empty string': '',
    b: false,
    i: -9007199254740993n,
    zero: 0,
    d: 1.5,
    array: [7, 'x'],
    kv: { inner: true },
  });
  assert.ok(bytes instanceof Uint8Array);
  assert.deepEqual([...bytes], [0, 1, 2]);
  assert.deepEqual(
    { ...full, attributes: undefined },
    {
      traceId: TRACE,
      spanId: SPAN,
      parentSpanId: PARENT,
      name: 'full',
      kind: 3,
      startUnixNano: 1000n,
      endUnixNano: 2000n,
      attributes: undefined,
      resource: { 'service.name': 'svc' },
      serviceName: 'svc',
      traceState: 'a=b',
      scope: { name: 'lib' },
      status: { code: 0, message: 'no code' },
    },
  );
  assert.deepEqual(bare, {
    traceId: TRACE,
    spanId: PARENT,
    name: '',
    kind: 0,
    startUnixNano: 0n,
    endUnixNano: 0n,
    attributes: {},
    resource: { 'service.name': 'svc' },
    serviceName: 'svc',
    scope: { name: 'lib' },
  });

  // The JSON form gives the same, but for the bytes' type (a Uint8Array, not the body's Buffer).
  const [jsonFull, jsonBare] = fromJson.spans;
  assert.ok(jsonFull && jsonBare);
  assert.deepEqual(
    { ...jsonFull, attributes: { ...jsonFull.attributes, bytes: undefined } },
    {
      ...full,
      attributes: { ...full.attributes, bytes: undefined },
    },
  );
  assert.deepEqual(jsonBare, bare);
});

test('a span kind or status code this version does not know reads as unspecified, in both encodings; a name it does not know is an error', () => {
  const body = (kind: unknown, code: unknown) => ({
    resourceSpans: [
      { scopeSpans: [{ spans: [{ traceId: TRACE, spanId: SPAN, name: 'open', kind, status: { code } }] }] },
    ],
  });
  const fromJson = decodeJsonRequest(JSON.stringify(body(300, '7'))).spans[0];
  const types = otlpTypes();
  const message = types.ExportTraceServiceRequest.fromObject(body(300, 7)) as unknown as {
    resourceSpans: { scopeSpans: { spans: { traceId: unknown; spanId: unknown }[] }[] }[];
  };
  const span = message.resourceSpans[0]?.scopeSpans[0]?.spans[0];
  assert.ok(span);
  span.traceId = Buffer.from(TRACE, 'hex');
  span.spanId = Buffer.from(SPAN, 'hex');
  const fromProtobuf = decodeProtobufRequest(types.ExportTraceServiceRequest.encode(message).finish()).spans[0];
  for (const decoded of [fromJson, fromProtobuf]) {
    assert.ok(decoded);
    assert.equal(decoded.kind, 0);
    assert.equal(decoded.status, undefined, 'an unknown code with no message is unset');
  }
  assert.throws(() => decodeJsonRequest(JSON.stringify(body('SPAN_KIND_SIDEWAYS', 0))), /kind: unknown enum value/);
});

test('an error names the span and the attribute it is in, and a rejected span its place, as deep as they are', () => {
  const span = (extra: Record<string, unknown>) => ({ traceId: TRACE, spanId: SPAN, name: 'x', ...extra });
  const body = (third: Record<string, unknown>) =>
    JSON.stringify({
      resourceSpans: [
        { scopeSpans: [{ spans: [span({})] }] },
        { scopeSpans: [{ spans: [span({}), span({}), third] }] },
      ],
    });
  const nested = {
    attributes: [
      { key: 'ok', value: { stringValue: 'v' } },
      { key: 'outer', value: { kvlistValue: { values: [{ key: 'inner', value: { boolValue: 'yes' } }] } } },
    ],
  };
  assert.throws(
    () => decodeJsonRequest(body(span(nested))),
    (e: Error) =>
      e.message === 'resourceSpans[1].scopeSpans[0].spans[2].attributes "outer" "inner": expected a boolean',
  );
  assert.throws(
    () => decodeJsonRequest(body(span({ endTimeUnixNano: 'soon' }))),
    (e: Error) => e.message.startsWith('resourceSpans[1].scopeSpans[0].spans[2].endTimeUnixNano: expected an integer'),
  );
  assert.throws(
    () => decodeJsonRequest(body('not a span' as unknown as Record<string, unknown>)),
    (e: Error) => e.message === 'resourceSpans[1].scopeSpans[0].spans[2]: expected an object',
  );
  const partial = decodeJsonRequest(body(span({ spanId: '0000000000000000' })));
  assert.equal(partial.spans.length, 3);
  assert.deepEqual(partial.rejectReasons, ['resourceSpans[1].scopeSpans[0].spans[2]: spanId is all zeros']);
});
