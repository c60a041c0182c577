// Public surface of the OTLP trace receiver.
export {
  startOtlpReceiver,
  DEFAULT_MAX_MESSAGE_BYTES,
  DEFAULT_MAX_PENDING_SPANS,
  DEFAULT_DRAIN_TIMEOUT_MS,
  type Endpoint,
  type OtlpReceiver,
  type OtlpReceiverOptions,
} from './receiver.js';
export type { OnSpans, ReceiverCounters } from './ingest.js';
export {
  SpanKind,
  decodeJsonRequest,
  decodeProtobufRequest,
  MalformedRequestError,
  type AppSpan,
  type AttrValue,
  type Attributes,
  type DecodedRequest,
} from './spans.js';
export { otlpTypes, TRACE_SERVICE_EXPORT_PATH, type OtlpTypes } from './protos.js';
export { TRACES_PATH } from './http.js';
