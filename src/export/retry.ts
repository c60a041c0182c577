// Whether a failed export may succeed if sent again, by the OTLP specification's rules for
// gRPC: CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE and DATA_LOSS are
// retryable, RESOURCE_EXHAUSTED only when the server attached RetryInfo, everything else is
// not (the data itself is refused, and sending it again would be refused again). A server's
// RetryInfo.retry_delay says how long to wait. A connection that failed below gRPC (a Node
// system error: refused, reset, timed out) is retryable: the server may come back.
import type { Metadata } from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import { retryDelayMsOf } from '../otlp/protos.js';

export interface ExportVerdict {
  retry: boolean;
  /** The server's own RetryInfo delay, when it gave one. */
  delayMs?: number;
  /** What went wrong, for a person: the gRPC status name and message, or the error's. */
  reason: string;
}

const RETRYABLE = new Set<number>([
  status.CANCELLED,
  status.DEADLINE_EXCEEDED,
  status.ABORTED,
  status.OUT_OF_RANGE,
  status.UNAVAILABLE,
  status.DATA_LOSS,
]);
const RESOURCE_EXHAUSTED: number = status.RESOURCE_EXHAUSTED;

const message = (error: unknown) => (error instanceof Error ? error.message : String(error));

export function exportVerdict(error: unknown): ExportVerdict {
  const e = (error ?? {}) as { code?: unknown; metadata?: Metadata };
  if (typeof e.code === 'string') return { retry: true, reason: message(error) };
  if (typeof e.code !== 'number' || status[e.code] === undefined) return { retry: false, reason: message(error) };
  const details = e.metadata?.get('grpc-status-details-bin')[0];
  const delayMs = details instanceof Buffer ? retryDelayMsOf(details) : undefined;
  const retry = RETRYABLE.has(e.code) || (e.code === RESOURCE_EXHAUSTED && delayMs !== undefined);
  // grpc-js's message already starts with the status: "14 UNAVAILABLE: No connection established ...".
  return { retry, ...(delayMs === undefined ? {} : { delayMs }), reason: message(error) };
}
