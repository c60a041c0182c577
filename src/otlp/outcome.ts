// Shared wording for the receiver's answers.

import type { PartialSuccess } from './protos.js';
import type { DecodedRequest } from './spans.js';

export const RETRY_AFTER_SECONDS = 1;
export const OVERLOAD_MESSAGE = 'causeway ingest queue is full; retry later';

/** The partial_success for a decoded request, or undefined on full success. */
export function partialSuccessOf(d: DecodedRequest): PartialSuccess | undefined {
  if (d.rejected === 0) return undefined;
  return {
    rejectedSpans: d.rejected,
    errorMessage: `rejected ${d.rejected} invalid span(s): ${d.rejectReasons.join('; ')}${d.rejected > d.rejectReasons.length ? '; ...' : ''}`,
  };
}
