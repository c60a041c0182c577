// The OTLP trace protos (src/otlp/proto/**/*.proto), parsed with protobufjs from
// the text embedded in proto-text.ts. tsc does not copy .proto files and the npm
// package ships only dist/src, so the text is embedded rather than read from disk;
// test/otlp/protos.test.ts fails when the embedded copy differs from the .proto files.

import protobuf from 'protobufjs';
import { PROTO_SOURCES } from './proto-text.js';

export const TRACE_SERVICE_EXPORT_PATH = '/opentelemetry.proto.collector.trace.v1.TraceService/Export';

export interface OtlpTypes {
  readonly root: protobuf.Root;
  readonly ExportTraceServiceRequest: protobuf.Type;
  readonly ExportTraceServiceResponse: protobuf.Type;
  readonly Status: protobuf.Type;
  readonly RetryInfo: protobuf.Type;
  readonly BadRequest: protobuf.Type;
}

let cached: OtlpTypes | undefined;

/** The parsed OTLP trace types (parsed once, on first use). */
export function otlpTypes(): OtlpTypes {
  if (cached) return cached;
  const root = new protobuf.Root();
  for (const source of PROTO_SOURCES) {
    // keepCase false: field names become lowerCamelCase, the OTLP/JSON key style.
    protobuf.parse(source.text, root, { keepCase: false });
  }
  root.resolveAll();
  cached = {
    root,
    ExportTraceServiceRequest: root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest'),
    ExportTraceServiceResponse: root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse'),
    Status: root.lookupType('google.rpc.Status'),
    RetryInfo: root.lookupType('google.rpc.RetryInfo'),
    BadRequest: root.lookupType('google.rpc.BadRequest'),
  };
  return cached;
}

/** gRPC status codes used by the receiver (same numbers as google.rpc.Code). */
export const RpcCode = {
  OK: 0,
  INVALID_ARGUMENT: 3,
  RESOURCE_EXHAUSTED: 8,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const;

export interface PartialSuccess {
  rejectedSpans: number;
  errorMessage: string;
}

/** Encodes an ExportTraceServiceResponse; partial_success is left unset on full success. */
export function encodeExportResponse(partial?: PartialSuccess): Uint8Array {
  const t = otlpTypes();
  const body = partial
    ? { partialSuccess: { rejectedSpans: partial.rejectedSpans, errorMessage: partial.errorMessage } }
    : {};
  return t.ExportTraceServiceResponse.encode(t.ExportTraceServiceResponse.fromObject(body)).finish();
}

/** The OTLP/JSON form of an ExportTraceServiceResponse (int64 as a decimal string). */
export function exportResponseJson(partial?: PartialSuccess): string {
  if (!partial) return '{}';
  return JSON.stringify({
    partialSuccess: { rejectedSpans: String(partial.rejectedSpans), errorMessage: partial.errorMessage },
  });
}

export interface StatusDetail {
  /** BadRequest field violation description (attached for INVALID_ARGUMENT). */
  badRequest?: string;
  /** RetryInfo.retry_delay in seconds (attached for UNAVAILABLE). */
  retryDelaySeconds?: number;
}

const BAD_REQUEST_URL = 'type.googleapis.com/google.rpc.BadRequest';
const RETRY_INFO_URL = 'type.googleapis.com/google.rpc.RetryInfo';

/** Encodes a google.rpc.Status, with BadRequest / RetryInfo details when asked. */
export function encodeStatus(code: number, message: string, detail: StatusDetail = {}): Uint8Array {
  const t = otlpTypes();
  const details: { typeUrl: string; value: Uint8Array }[] = [];
  if (detail.badRequest !== undefined) {
    const v = t.BadRequest.encode(
      t.BadRequest.fromObject({ fieldViolations: [{ field: '', description: detail.badRequest }] }),
    ).finish();
    details.push({ typeUrl: BAD_REQUEST_URL, value: v });
  }
  if (detail.retryDelaySeconds !== undefined) {
    const v = t.RetryInfo.encode(
      t.RetryInfo.fromObject({ retryDelay: { seconds: detail.retryDelaySeconds, nanos: 0 } }),
    ).finish();
    details.push({ typeUrl: RETRY_INFO_URL, value: v });
  }
  return t.Status.encode(t.Status.fromObject({ code, message, details })).finish();
}

/** The RetryInfo.retry_delay of an encoded google.rpc.Status, in ms; undefined when it has none or is not one. */
export function retryDelayMsOf(statusBytes: Uint8Array): number | undefined {
  const t = otlpTypes();
  try {
    const status = t.Status.toObject(t.Status.decode(statusBytes), { longs: Number }) as {
      details?: { typeUrl?: string; value?: Uint8Array }[];
    };
    const detail = status.details?.find((d) => d.typeUrl === RETRY_INFO_URL);
    if (detail?.value === undefined) return undefined;
    const info = t.RetryInfo.toObject(t.RetryInfo.decode(detail.value), { longs: Number }) as {
      retryDelay?: { seconds?: number; nanos?: number };
    };
    if (info.retryDelay === undefined) return undefined;
    return (info.retryDelay.seconds ?? 0) * 1000 + (info.retryDelay.nanos ?? 0) / 1e6;
  } catch {
    return undefined;
  }
}

/** The proto3 JSON form of a google.rpc.Status with the same details as encodeStatus. */
export function statusJson(code: number, message: string, detail: StatusDetail = {}): string {
  const details: Record<string, unknown>[] = [];
  if (detail.badRequest !== undefined) {
    details.push({ '@type': BAD_REQUEST_URL, fieldViolations: [{ field: '', description: detail.badRequest }] });
  }
  if (detail.retryDelaySeconds !== undefined) {
    details.push({ '@type': RETRY_INFO_URL, retryDelay: `${detail.retryDelaySeconds}s` });
  }
  return JSON.stringify(details.length > 0 ? { code, message, details } : { code, message });
}
