// An error a worker thread sends to the main thread (the OTLP servers' and the MCP server's, when
// their server cannot start): postMessage's clone of an Error keeps its message, not the fields
// that say what failed (code, syscall, address, port), so they travel beside it.

/** The error's own string and number fields, to send beside it. */
export function errorFields(error: unknown): Record<string, string | number> {
  const fields = Object.entries(error instanceof Error ? error : {}).filter(
    (entry): entry is [string, string | number] => typeof entry[1] === 'string' || typeof entry[1] === 'number',
  );
  return Object.fromEntries(fields);
}

/** The error as received, its fields put back. */
export const withFields = (error: unknown, fields: Record<string, unknown>): Error =>
  Object.assign(error instanceof Error ? error : new Error(String(error)), fields);
