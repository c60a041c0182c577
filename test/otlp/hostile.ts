// Hostile OTLP requests, generated deterministically from a few valid ones with a seeded PRNG:
// protobuf bodies with flipped bits, truncated, with bytes inserted, their length fields
// corrupted, huge and overlong varints, wrong wire types, invalid UTF-8 and deeply nested
// values; OTLP/JSON bodies with the same byte damage, values of the wrong type, hostile keys,
// huge numbers and deep nesting; both sent plain and gzip- or deflate-compressed, compressed
// bombs within and past the size limit, and bodies that claim an encoding they do not have.
import { deflateSync, gzipSync } from 'node:zlib';
import { otlpTypes } from '../../src/otlp/index.js';

export type Media = 'protobuf' | 'json';

export interface HostileRequest {
  /** The mutation, for a failure message. */
  kind: string;
  media: Media;
  /** HTTP Content-Encoding (gRPC compresses at its own layer). */
  encoding?: 'gzip' | 'deflate';
  body: Buffer;
}

/** mulberry32: a small, fast PRNG whose sequence is fixed by its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Random = ReturnType<typeof prng>;
const below = (random: Random, n: number) => Math.floor(random() * n);
const pick = <T>(random: Random, items: readonly T[]): T => items[below(random, items.length)] as T;

const hex = (random: Random, bytes: number) =>
  Array.from({ length: bytes }, () => below(random, 256).toString(16).padStart(2, '0')).join('');

/** A valid request as OTLP/JSON would write it: every AnyValue kind, events, links, status. */
function validJson(random: Random, spans: number): Record<string, unknown> {
  const traceId = hex(random, 16);
  const value = (depth: number): Record<string, unknown> =>
    depth === 0
      ? pick(random, [{ stringValue: 'v' }, { intValue: '42' }, { doubleValue: 1.5 }, { boolValue: true }])
      : pick(random, [
          { arrayValue: { values: [value(depth - 1), { stringValue: 'é✓' }] } },
          { kvlistValue: { values: [{ key: 'inner', value: value(depth - 1) }] } },
          { bytesValue: 'AAEC' },
        ]);
  return {
    resourceSpans: [
      {
        resource: {
          attributes: [
            { key: 'service.name', value: { stringValue: 'hostile' } },
            { key: 'process.pid', value: { intValue: String(1000 + below(random, 1000)) } },
          ],
        },
        scopeSpans: [
          {
            scope: { name: 'fuzz', version: '1' },
            spans: Array.from({ length: spans }, (_, i) => ({
              traceId,
              spanId: hex(random, 8),
              ...(i > 0 ? { parentSpanId: hex(random, 8) } : {}),
              name: `op-${String(i)}`,
              kind: 1 + below(random, 5),
              startTimeUnixNano: '1700000000000000000',
              endTimeUnixNano: '1700000000100000000',
              attributes: [
                { key: 'causeway.thread.tid', value: { intValue: String(below(random, 1 << 22)) } },
                { key: 'nested', value: value(3) },
              ],
              events: [{ timeUnixNano: '1700000000050000000', name: 'ev', attributes: [] }],
              links: [{ traceId: hex(random, 16), spanId: hex(random, 8) }],
              status: { code: below(random, 3), message: 'ok' },
            })),
          },
        ],
      },
    ],
  };
}

/** OTLP/JSON ids are hex, protobuf ids bytes: the same request, as protobuf. */
function toProtobuf(request: Record<string, unknown>): Buffer {
  const type = otlpTypes().ExportTraceServiceRequest;
  const withBytes = JSON.parse(JSON.stringify(request), (key, value: unknown) =>
    ['traceId', 'spanId', 'parentSpanId'].includes(key) && typeof value === 'string'
      ? Buffer.from(value, 'hex')
      : key === 'bytesValue' && typeof value === 'string'
        ? Buffer.from(value, 'base64')
        : value,
  ) as Record<string, unknown>;
  return Buffer.from(type.encode(type.fromObject(withBytes)).finish());
}

// ---- protobuf ----------------------------------------------------------------------

function varint(value: bigint): Buffer {
  const bytes: number[] = [];
  let v = BigInt.asUintN(64, value);
  do {
    const byte = Number(v & 0x7fn);
    v >>= 7n;
    bytes.push(v > 0n ? byte | 0x80 : byte);
  } while (v > 0n);
  return Buffer.from(bytes);
}

const field = (number: number, payload: Buffer) =>
  Buffer.concat([varint(BigInt((number << 3) | 2)), varint(BigInt(payload.length)), payload]);
const text = (s: string) => Buffer.from(s, 'utf8');

/** Where a length-delimited field's length is, in a message and (when they parse) the messages inside it. */
function lengthFields(buf: Buffer, start = 0, end = buf.length, found: [number, number, bigint][] = []) {
  let at = start;
  const readVarint = (): [bigint, number] | undefined => {
    let value = 0n;
    for (let i = 0; i < 10 && at + i < end; i++) {
      const byte = buf[at + i] ?? 0;
      value |= BigInt(byte & 0x7f) << BigInt(7 * i);
      if ((byte & 0x80) === 0) return [value, i + 1];
    }
    return undefined;
  };
  while (at < end) {
    const tag = readVarint();
    if (tag === undefined) return found;
    at += tag[1];
    const wire = Number(tag[0] & 7n);
    if (wire === 0) {
      const v = readVarint();
      if (v === undefined) return found;
      at += v[1];
    } else if (wire === 1) at += 8;
    else if (wire === 5) at += 4;
    else if (wire === 2) {
      const length = readVarint();
      if (length === undefined || at + length[1] + Number(length[0]) > end) return found;
      found.push([at, length[1], length[0]]);
      at += length[1];
      lengthFields(buf, at, at + Number(length[0]), found);
      at += Number(length[0]);
    } else return found;
  }
  return found;
}

/** An AnyValue nested `depth` kvlists deep, in a span of a request, written by hand (no recursion limit of ours). */
const deepProtobuf = memoized((depth: number): Buffer => {
  // Each level is AnyValue{kvlist_value: KeyValueList{values: [KeyValue{key: "k", value: <the level below>}]}}:
  // its bytes are a prefix and then the level below, so the lengths are counted from the leaf up.
  const leaf = field(1, text('leaf'));
  const prefixes: Buffer[] = [];
  let inner = leaf.length;
  for (let i = 0; i < depth; i++) {
    const keyValue = Buffer.concat([field(1, text('k')), varint((2n << 3n) | 2n), varint(BigInt(inner))]);
    const keyValueLength = keyValue.length + inner;
    const list = Buffer.concat([varint((1n << 3n) | 2n), varint(BigInt(keyValueLength))]);
    const value = Buffer.concat([varint((6n << 3n) | 2n), varint(BigInt(list.length + keyValueLength))]);
    const prefix = Buffer.concat([value, list, keyValue]);
    prefixes.push(prefix);
    inner += prefix.length;
  }
  const nested = Buffer.concat([...prefixes.reverse(), leaf]);
  const span = Buffer.concat([
    field(1, Buffer.alloc(16, 7)),
    field(2, Buffer.alloc(8, 9)),
    field(5, text('deep')),
    field(9, Buffer.concat([field(1, text('attr')), field(2, nested)])),
  ]);
  return field(1, field(2, field(2, span)));
});

function memoized<K, V>(make: (key: K) => V): (key: K) => V {
  const made = new Map<K, V>();
  return (key) => {
    if (!made.has(key)) made.set(key, make(key));
    return made.get(key) as V;
  };
}

const PROTOBUF_MUTATIONS: Record<string, (random: Random, body: Buffer) => Buffer> = {
  'bit flips': (random, body) => {
    const out = Buffer.from(body);
    for (let i = 1 + below(random, 4); i > 0; i--) {
      const at = below(random, out.length);
      out[at] = (out[at] ?? 0) ^ (1 << below(random, 8));
    }
    return out;
  },
  'random bytes': (random, body) => {
    const out = Buffer.from(body);
    for (let i = 1 + below(random, 8); i > 0; i--) out[below(random, out.length)] = below(random, 256);
    return out;
  },
  truncated: (random, body) => body.subarray(0, below(random, body.length)),
  'bytes inserted': (random, body) => {
    const at = below(random, body.length);
    const junk = Buffer.from(Array.from({ length: 1 + below(random, 16) }, () => below(random, 256)));
    return Buffer.concat([body.subarray(0, at), junk, body.subarray(at)]);
  },
  'length field corrupted': (random, body) => {
    const fields = lengthFields(body);
    if (fields.length === 0) return body;
    const [at, size, length] = pick(random, fields);
    const lengths = [
      0n,
      length - 1n,
      length + 1n,
      length * 2n,
      2n ** 31n - 1n,
      2n ** 32n + 5n,
      2n ** 63n,
      2n ** 64n - 1n,
    ];
    return Buffer.concat([body.subarray(0, at), varint(pick(random, lengths)), body.subarray(at + size)]);
  },
  'huge varint': (random, body) => {
    // Field 3 (trace_state in a span, unknown elsewhere) as a varint: 10 bytes, or overlong.
    const huge = pick(random, [
      Buffer.concat([varint(3n << 3n), varint(2n ** 64n - 1n)]),
      Buffer.concat([varint(3n << 3n), Buffer.alloc(11, 0xff)]),
      Buffer.alloc(12, 0x80),
    ]);
    const at = below(random, body.length + 1);
    return Buffer.concat([body.subarray(0, at), huge, body.subarray(at)]);
  },
  'wrong wire type': (random, body) => {
    const out = Buffer.from(body);
    const fields = lengthFields(out);
    // The byte before a length is the end of its tag: change the tag's wire type.
    const [at] = fields.length > 0 ? pick(random, fields) : [1];
    const tagEnd = at - 1;
    out[tagEnd] = ((out[tagEnd] ?? 0) & ~7) | pick(random, [0, 1, 3, 4, 5, 6, 7]);
    return out;
  },
  'invalid UTF-8': (random, body) => {
    const out = Buffer.from(body);
    const name = out.indexOf('op-');
    if (name >= 0)
      out.set(
        pick(random, [
          [0xff, 0xfe],
          [0xc3, 0x28],
          [0xed, 0xa0, 0x80],
        ]),
        name,
      );
    return out;
  },
  'deeply nested value': (random) => deepProtobuf(pick(random, [33, 100, 1000, 10_000])),
  'messages concatenated': (random, body) => Buffer.concat(Array.from({ length: 2 + below(random, 7) }, () => body)),
};

// ---- JSON ----------------------------------------------------------------------------

const WRONG_VALUES: readonly unknown[] = [
  null,
  true,
  0,
  -1,
  1.5,
  1e308,
  -0,
  '',
  'x',
  'NaN',
  'Infinity',
  '-9223372036854775809',
  '18446744073709551616',
  'ZZZZ',
  '\u0000',
  '\ud800',
  'A'.repeat(10_000),
  [],
  [1, 'a', null],
  {},
  { a: 1 },
  { __proto__: { polluted: true } },
];
const HOSTILE_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', '', 'resource_spans'];

/** Every object or array inside `root`, with the key or index that holds it. */
function places(root: unknown, found: [Record<string, unknown> | unknown[], string | number][] = []) {
  if (Array.isArray(root))
    root.forEach((item, i) => {
      found.push([root, i]);
      places(item, found);
    });
  else if (root !== null && typeof root === 'object')
    for (const [key, value] of Object.entries(root)) {
      found.push([root as Record<string, unknown>, key]);
      places(value, found);
    }
  return found;
}

function deepJson(random: Random): string {
  const depth = pick(random, [33, 1000, 10_000]);
  if (random() < 0.5) return `{"resourceSpans":${'['.repeat(depth)}${']'.repeat(depth)}}`;
  const open = '{"kvlistValue":{"values":[{"key":"k","value":'.repeat(depth);
  const close = '}]}}'.repeat(depth);
  const span = `{"traceId":"${hex(random, 16)}","spanId":"${hex(random, 8)}","attributes":[{"key":"a","value":${open}{"stringValue":"x"}${close}}]}`;
  return `{"resourceSpans":[{"scopeSpans":[{"spans":[${span}]}]}]}`;
}

interface Base {
  request: Record<string, unknown>;
  json: Buffer;
  protobuf: Buffer;
}

const JSON_MUTATIONS: Record<string, (random: Random, base: Base) => Buffer> = {
  'value of the wrong type': (random, { request }) => {
    const copy = structuredClone(request);
    for (let i = 1 + below(random, 3); i > 0; i--) {
      const [holder, key] = pick(random, places(copy));
      (holder as Record<string | number, unknown>)[key] = structuredClone(pick(random, WRONG_VALUES));
    }
    return text(JSON.stringify(copy));
  },
  'key removed or hostile key added': (random, { request }) => {
    const copy = structuredClone(request);
    const objects = places(copy)
      .map(([holder, key]) => (holder as Record<string | number, unknown>)[key])
      .filter((v): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v));
    const target = pick(random, objects);
    const keys = Object.keys(target);
    if (random() < 0.5 && keys.length > 0) Reflect.deleteProperty(target, pick(random, keys));
    else
      Object.defineProperty(target, pick(random, HOSTILE_KEYS), {
        value: pick(random, WRONG_VALUES),
        enumerable: true,
      });
    return text(JSON.stringify(copy));
  },
  'bytes damaged': (random, { json }) => PROTOBUF_MUTATIONS['random bytes']?.(random, json) ?? json,
  'bit flips': (random, { json }) => PROTOBUF_MUTATIONS['bit flips']?.(random, json) ?? json,
  truncated: (random, { json }) => PROTOBUF_MUTATIONS.truncated?.(random, json) ?? json,
  'invalid UTF-8': (random, { json }) => {
    const out = Buffer.from(json);
    out.set(
      pick(random, [[0xff], [0xc3, 0x28], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80]]),
      below(random, out.length),
    );
    return out;
  },
  'deeply nested': (random) => text(deepJson(random)),
  'not an object': (random) => text(pick(random, ['[]', '"resourceSpans"', '42', 'null', 'true', '{', '', ' '])),
};

// ---- the corpus ----------------------------------------------------------------------

/** Over the limit once inflated; and just under it (then not OTLP: zeros). */
function bombs(maxMessageBytes: number): Buffer[] {
  return [gzipSync(Buffer.alloc(maxMessageBytes * 8)), gzipSync(Buffer.alloc(maxMessageBytes - 1024))];
}

/** `count` hostile requests from `seed` (and a few bombs), every mutation in turn, a third compressed or claiming to be. */
export function* hostileRequests(seed: number, count: number, maxMessageBytes: number): Generator<HostileRequest> {
  const random = prng(seed);
  const bases = Array.from({ length: 8 }, (_, i): Base => {
    const request = validJson(random, 1 + i * 3);
    return { request, json: text(JSON.stringify(request)), protobuf: toProtobuf(request) };
  });
  const kinds = [
    ...Object.keys(PROTOBUF_MUTATIONS).map((name) => ['protobuf', name] as const),
    ...Object.keys(JSON_MUTATIONS).map((name) => ['json', name] as const),
  ];
  const [bigBomb, smallBomb] = bombs(maxMessageBytes);
  for (let i = 0; i < count; i++) {
    const [media, name] = kinds[i % kinds.length] ?? ['json', 'not an object'];
    const base = pick(random, bases);
    const body =
      media === 'protobuf'
        ? (PROTOBUF_MUTATIONS[name]?.(random, base.protobuf) ?? base.protobuf)
        : (JSON_MUTATIONS[name]?.(random, base) ?? base.json);
    const packing = below(random, 9);
    if (packing === 0) yield { kind: `${name}, gzip`, media, encoding: 'gzip', body: gzipSync(body) };
    else if (packing === 1) yield { kind: `${name}, deflate`, media, encoding: 'deflate', body: deflateSync(body) };
    else if (packing === 2) yield { kind: `${name}, claims gzip`, media, encoding: 'gzip', body };
    else yield { kind: name, media, body };
    if (i % 997 === 0 && bigBomb !== undefined && smallBomb !== undefined) {
      yield { kind: 'gzip bomb past the limit', media, encoding: 'gzip', body: bigBomb };
      yield { kind: 'gzip bomb within the limit', media, encoding: 'gzip', body: smallBomb };
    }
  }
}

/** A valid request of `spans` spans, in the given encoding. */
export function validRequest(seed: number, media: Media, spans = 3): Buffer {
  const request = validJson(prng(seed), spans);
  return media === 'protobuf' ? toProtobuf(request) : text(JSON.stringify(request));
}
