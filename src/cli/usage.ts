// Command-line errors: printed as one line with a pointer to --help, exit code 2.
export class UsageError extends Error {
  override name = 'UsageError';
}

export function positiveInteger(option: string, value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n <= 0)
    throw new UsageError(`${option} expects a positive integer, got ${JSON.stringify(value)}`);
  return n;
}

export function nonNegativeInteger(option: string, value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n))
    throw new UsageError(`${option} expects a non-negative integer, got ${JSON.stringify(value)}`);
  return n;
}

export function positiveNumber(option: string, value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0)
    throw new UsageError(`${option} expects a positive number, got ${JSON.stringify(value)}`);
  return n;
}
