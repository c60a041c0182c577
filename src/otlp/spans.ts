// The decoded application-span model handed to the receiver's onSpans callback,
// and the two decoders (OTLP protobuf and OTLP/JSON) that produce it.
//
// Decoding is all-or-nothing per request: a request that cannot be decoded
// (bad protobuf, bad JSON, wrong JSON types, non-hex ids, unknown enum names)
// throws MalformedRequestError and is answered 400 / INVALID_ARGUMENT without
// delivering any of its spans. A request that decodes but holds invalid spans
// (all-zero or wrong-length trace / span ids) is a partial success: the valid
// spans are accepted and the invalid ones counted in `rejected` with a reason.

import protobuf from 'protobufjs';
import { otlpTypes } from './protos.js';

/**
 * An attribute value. int64 values become a `number` when they are safe
 * integers (so process.pid and causeway.thread.tid are plain numbers) and a
 * `bigint` only beyond 2^53; doubles are numbers; bytes are Uint8Array;
 * array and kvlist values nest. Attributes whose AnyValue is empty are omitted.
 */
export type AttrValue = string | number | boolean | bigint | Uint8Array | AttrValue[] | { [key: string]: AttrValue };

export type Attributes = Record<string, AttrValue>;

/** OTLP Span.SpanKind numbers. */
export const SpanKind = {
  UNSPECIFIED: 0,
  INTERNAL: 1,
  SERVER: 2,
  CLIENT: 3,
  PRODUCER: 4,
  CONSUMER: 5,
} as const;

export interface AppSpan {
  /** 32 lowercase hex digits, never all zeros. */
  traceId: string;
  /** 16 lowercase hex digits, never all zeros. */
  spanId: string;
  /** 16 lowercase hex digits; absent for a root span (empty or all-zero parent_span_id). */
  parentSpanId?: string;
  name: string;
  /** OTLP SpanKind number (see SpanKind). */
  kind: number;
  startUnixNano: bigint;
  endUnixNano: bigint;
  attributes: Attributes;
  /** The resource's attributes (shared object between spans of one ResourceSpans). */
  resource: Attributes;
  /** resource['service.name'] when it is a string. */
  serviceName?: string;
  /** W3C tracestate, when non-empty. */
  traceState?: string;
  /** The instrumentation scope, when it has a name. */
  scope?: { name: string; version?: string };
  /** Span status, when its code is not UNSET or it has a message (code: 0 unset, 1 ok, 2 error). */
  status?: { code: number; message?: string };
}

export interface DecodedRequest {
  spans: AppSpan[];
  /** Number of spans rejected by validation (partial success). */
  rejected: number;
  /** Up to a few human-readable reasons for the rejected spans. */
  rejectReasons: string[];
}

export class MalformedRequestError extends Error {
  override name = 'MalformedRequestError';
}

const MAX_REASONS = 3;
const MAX_ANY_VALUE_DEPTH = 32;
const HEX_RE = /^[0-9a-fA-F]*$/;
/** An enum's values by name, and the values themselves: looked up per span. */
interface OtlpEnum {
  names: Record<string, number>;
  values: ReadonlySet<number>;
}
const otlpEnum = (names: Record<string, number>): OtlpEnum => ({ names, values: new Set(Object.values(names)) });
const SPAN_KIND = otlpEnum({
  SPAN_KIND_UNSPECIFIED: 0,
  SPAN_KIND_INTERNAL: 1,
  SPAN_KIND_SERVER: 2,
  SPAN_KIND_CLIENT: 3,
  SPAN_KIND_PRODUCER: 4,
  SPAN_KIND_CONSUMER: 5,
});
const STATUS_CODE = otlpEnum({
  STATUS_CODE_UNSET: 0,
  STATUS_CODE_OK: 1,
  STATUS_CODE_ERROR: 2,
});

type Encoding = 'protobuf' | 'json';
type Obj = Record<string, unknown>;

// Looked up for every field a decoded span lacks (a protobuf request's defaults): converted once
// per name, not by a regular expression per span.
const SNAKE_NAMES = new Map<string, string>();

function snake(camel: string): string {
  let name = SNAKE_NAMES.get(camel);
  if (name === undefined) {
    name = camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    SNAKE_NAMES.set(camel, name);
  }
  return name;
}

/** A field by its lowerCamelCase name, or (JSON only) its snake_case name; null counts as absent. */
function field(o: Obj, camel: string): unknown {
  const v = o[camel];
  if (v !== undefined && v !== null) return v;
  const s = o[snake(camel)];
  return s === null ? undefined : s;
}

function asObj(v: unknown, what: string): Obj | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) {
    throw new MalformedRequestError(`${what}: expected an object`);
  }
  return v as Obj;
}

function asArray(v: unknown, what: string): unknown[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw new MalformedRequestError(`${what}: expected an array`);
  return v as unknown[];
}

function asString(v: unknown, what: string): string {
  if (v === undefined) return '';
  if (typeof v !== 'string') throw new MalformedRequestError(`${what}: expected a string`);
  return v;
}

/**
 * An int64 / fixed64 as a bigint: protobuf's Long, taken from its two 32-bit halves (through a
 * decimal string it cost a third of decoding a request), or from JSON a decimal string or an
 * integral number.
 */
function asBigInt(v: unknown, what: string): bigint {
  if (v === undefined) return 0n;
  if (v instanceof protobuf.util.Long) {
    const bits = (BigInt(v.high >>> 0) << 32n) | BigInt(v.low >>> 0);
    return v.unsigned ? bits : BigInt.asIntN(64, bits);
  }
  if (typeof v === 'string') {
    if (!/^-?[0-9]+$/.test(v))
      throw new MalformedRequestError(`${what}: expected an integer, got ${JSON.stringify(v.slice(0, 40))}`);
    return BigInt(v);
  }
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new MalformedRequestError(`${what}: expected an integer`);
    return BigInt(v);
  }
  throw new MalformedRequestError(`${what}: expected an integer`);
}

function asUnixNano(v: unknown, what: string): bigint {
  const n = asBigInt(v, what);
  if (n < 0n || n > 0xffffffffffffffffn) throw new MalformedRequestError(`${what}: out of range for fixed64`);
  return n;
}

/**
 * An enum's value. Protobuf enums are open: an integer this version does not know (a span kind
 * of 300) is valid on the wire, and reads as 0, the enum's unspecified or unset value, so that
 * every value kept is one the store's columns and the queries know.
 */
function asEnum(v: unknown, what: string, { names, values }: OtlpEnum): number {
  if (v === undefined) return 0;
  let n: number | undefined;
  if (typeof v === 'number' && Number.isInteger(v)) n = v;
  else if (typeof v === 'string') n = names[v] ?? (/^-?[0-9]+$/.test(v) ? Number(v) : undefined);
  if (n === undefined) throw new MalformedRequestError(`${what}: unknown enum value ${JSON.stringify(v)}`);
  return values.has(n) ? n : 0;
}

/** An id as lowercase hex: protobuf bytes, or a case-insensitive hex string in JSON. */
function idHex(v: unknown, what: string, enc: Encoding): string {
  if (v === undefined) return '';
  if (enc === 'protobuf') {
    if (!(v instanceof Uint8Array)) throw new MalformedRequestError(`${what}: expected bytes`);
    return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex');
  }
  if (typeof v !== 'string') throw new MalformedRequestError(`${what}: expected a hex string`);
  if (!HEX_RE.test(v) || v.length % 2 !== 0) {
    throw new MalformedRequestError(`${what}: not a hex string (OTLP/JSON ids are hex, not base64)`);
  }
  return v.toLowerCase();
}

function isAllZero(hex: string): boolean {
  return /^0*$/.test(hex);
}

function intAttr(n: bigint): number | bigint {
  return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
}

function anyValue(v: unknown, what: string, enc: Encoding, depth: number): AttrValue | undefined {
  if (depth > MAX_ANY_VALUE_DEPTH) throw new MalformedRequestError(`${what}: attribute values nested too deeply`);
  const o = asObj(v, what);
  if (!o) return undefined;
  let x = field(o, 'stringValue');
  if (x !== undefined) return asString(x, what);
  x = field(o, 'boolValue');
  if (x !== undefined) {
    if (typeof x !== 'boolean') throw new MalformedRequestError(`${what}: expected a boolean`);
    return x;
  }
  x = field(o, 'intValue');
  if (x !== undefined) return intAttr(asBigInt(x, what));
  x = field(o, 'doubleValue');
  if (x !== undefined) {
    if (typeof x === 'number') return x;
    if (x === 'NaN') return NaN;
    if (x === 'Infinity') return Infinity;
    if (x === '-Infinity') return -Infinity;
    if (typeof x === 'string' && x.trim() !== '' && Number.isFinite(Number(x))) return Number(x);
    throw new MalformedRequestError(`${what}: expected a double`);
  }
  x = field(o, 'arrayValue');
  if (x !== undefined) {
    const arr = asObj(x, what);
    const out: AttrValue[] = [];
    for (const item of asArray(arr ? field(arr, 'values') : undefined, what)) {
      const iv = anyValue(item, what, enc, depth + 1);
      if (iv !== undefined) out.push(iv);
    }
    return out;
  }
  x = field(o, 'kvlistValue');
  if (x !== undefined) {
    const kv = asObj(x, what);
    return keyValues(kv ? field(kv, 'values') : undefined, what, enc, depth + 1);
  }
  x = field(o, 'bytesValue');
  if (x !== undefined) {
    if (x instanceof Uint8Array) return x;
    if (typeof x === 'string' && /^[A-Za-z0-9+/_-]*={0,2}$/.test(x)) return new Uint8Array(Buffer.from(x, 'base64'));
    throw new MalformedRequestError(`${what}: expected base64 bytes`);
  }
  return undefined;
}

function keyValues(list: unknown, what: string, enc: Encoding, depth = 0): Attributes {
  const out: Attributes = {};
  for (const item of asArray(list, what)) {
    const kv = asObj(item, what);
    if (!kv) continue;
    const key = asString(field(kv, 'key'), `${what} key`);
    // The key is written into an error only, not made into JSON for every attribute of every span.
    let value: AttrValue | undefined;
    try {
      value = anyValue(field(kv, 'value'), '', enc, depth);
    } catch (e) {
      throw e instanceof MalformedRequestError
        ? new MalformedRequestError(`${what} ${JSON.stringify(key)}${e.message}`)
        : e;
    }
    if (value !== undefined) out[key] = value;
  }
  return out;
}

/**
 * One span, with its resource's and scope's fields; or why it is rejected. Errors and reasons name
 * where in the span they are ('.traceId: ...'): the caller puts the span's place before them.
 */
function decodeSpan(
  spv: unknown,
  enc: Encoding,
  { resource, serviceName, scope }: Pick<AppSpan, 'resource' | 'serviceName' | 'scope'>,
): AppSpan | string | undefined {
  const sp = asObj(spv, '');
  if (!sp) return undefined;
  const traceId = idHex(field(sp, 'traceId'), '.traceId', enc);
  const spanId = idHex(field(sp, 'spanId'), '.spanId', enc);
  const parent = idHex(field(sp, 'parentSpanId'), '.parentSpanId', enc);
  const name = asString(field(sp, 'name'), '.name');
  const kind = asEnum(field(sp, 'kind'), '.kind', SPAN_KIND);
  const startUnixNano = asUnixNano(field(sp, 'startTimeUnixNano'), '.startTimeUnixNano');
  const endUnixNano = asUnixNano(field(sp, 'endTimeUnixNano'), '.endTimeUnixNano');
  const attributes = keyValues(field(sp, 'attributes'), '.attributes', enc);
  const traceState = asString(field(sp, 'traceState'), '.traceState');
  const st = asObj(field(sp, 'status'), '.status');
  let status: AppSpan['status'];
  if (st) {
    const code = asEnum(field(st, 'code'), '.status.code', STATUS_CODE);
    const message = asString(field(st, 'message'), '.status.message');
    if (code !== 0 || message !== '') status = message !== '' ? { code, message } : { code };
  }
  // Validation (partial success): ids must have the right length and not be all zeros.
  if (traceId.length !== 32) return `: traceId must be 16 bytes, got ${traceId.length / 2}`;
  if (isAllZero(traceId)) return ': traceId is all zeros';
  if (spanId.length !== 16) return `: spanId must be 8 bytes, got ${spanId.length / 2}`;
  if (isAllZero(spanId)) return ': spanId is all zeros';
  if (parent.length !== 0 && parent.length !== 16)
    return `: parentSpanId must be empty or 8 bytes, got ${parent.length / 2}`;
  const span: AppSpan = { traceId, spanId, name, kind, startUnixNano, endUnixNano, attributes, resource };
  if (parent.length === 16 && !isAllZero(parent)) span.parentSpanId = parent;
  if (serviceName !== undefined) span.serviceName = serviceName;
  if (traceState !== '') span.traceState = traceState;
  if (scope) span.scope = scope;
  if (status) span.status = status;
  return span;
}

const spanPlace = (ri: number, si: number, pi: number) => `resourceSpans[${ri}].scopeSpans[${si}].spans[${pi}]`;

function decodeRequestObject(req: Obj, enc: Encoding): DecodedRequest {
  const result: DecodedRequest = { spans: [], rejected: 0, rejectReasons: [] };
  const reject = (reason: string): void => {
    result.rejected++;
    if (result.rejectReasons.length < MAX_REASONS) result.rejectReasons.push(reason);
  };
  const resourceSpans = asArray(field(req, 'resourceSpans'), 'resourceSpans');
  resourceSpans.forEach((rsv, ri) => {
    const rs = asObj(rsv, `resourceSpans[${ri}]`);
    if (!rs) return;
    const res = asObj(field(rs, 'resource'), `resourceSpans[${ri}].resource`);
    const resource = res ? keyValues(field(res, 'attributes'), `resourceSpans[${ri}].resource.attributes`, enc) : {};
    const svc = resource['service.name'];
    const serviceName = typeof svc === 'string' ? svc : undefined;
    const scopeSpans = asArray(field(rs, 'scopeSpans'), `resourceSpans[${ri}].scopeSpans`);
    scopeSpans.forEach((ssv, si) => {
      const ss = asObj(ssv, `resourceSpans[${ri}].scopeSpans[${si}]`);
      if (!ss) return;
      const sc = asObj(field(ss, 'scope'), `resourceSpans[${ri}].scopeSpans[${si}].scope`);
      let scope: AppSpan['scope'];
      if (sc) {
        const name = asString(field(sc, 'name'), 'scope.name');
        const version = asString(field(sc, 'version'), 'scope.version');
        if (name !== '') scope = version !== '' ? { name, version } : { name };
      }
      const spans = asArray(field(ss, 'spans'), `resourceSpans[${ri}].scopeSpans[${si}].spans`);
      const shared = { resource, serviceName, scope };
      spans.forEach((spv, pi) => {
        // A span's place is written only into an error or a rejection: made for every span, it
        // was a fifth of decoding a request (issue 11).
        let span: AppSpan | string | undefined;
        try {
          span = decodeSpan(spv, enc, shared);
        } catch (e) {
          if (e instanceof MalformedRequestError)
            throw new MalformedRequestError(`${spanPlace(ri, si, pi)}${e.message}`);
          throw e;
        }
        if (typeof span === 'string') reject(`${spanPlace(ri, si, pi)}${span}`);
        else if (span !== undefined) result.spans.push(span);
      });
    });
  });
  return result;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Decodes a binary ExportTraceServiceRequest. Throws MalformedRequestError. */
export function decodeProtobufRequest(body: Uint8Array): DecodedRequest {
  const type = otlpTypes().ExportTraceServiceRequest;
  let obj: Obj;
  try {
    const msg = type.decode(body);
    // 64-bit integers stay Longs: asBigInt reads them.
    obj = type.toObject(msg, { enums: Number, defaults: false, oneofs: false });
  } catch (e) {
    throw new MalformedRequestError(`invalid protobuf ExportTraceServiceRequest: ${errorText(e)}`);
  }
  return decodeRequestObject(obj, 'protobuf');
}

/**
 * Decodes an OTLP/JSON ExportTraceServiceRequest: hex ids (any case), lowerCamelCase
 * keys (snake_case accepted too), unknown fields ignored, enums as integers or names,
 * 64-bit integers as decimal strings or numbers. Throws MalformedRequestError.
 */
export function decodeJsonRequest(text: string): DecodedRequest {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new MalformedRequestError(`invalid JSON: ${errorText(e)}`);
  }
  const obj = asObj(parsed, 'request');
  if (!obj) throw new MalformedRequestError('request: expected an object');
  try {
    return decodeRequestObject(obj, 'json');
  } catch (e) {
    if (e instanceof MalformedRequestError) throw e;
    throw new MalformedRequestError(`invalid OTLP/JSON request: ${errorText(e)}`);
  }
}
