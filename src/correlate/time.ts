// Unix-nanosecond times are bigints: how they compare and clamp, said once.
export const byTime = (a: bigint, b: bigint) => (a < b ? -1 : a > b ? 1 : 0);
export const earlier = (a: bigint, b: bigint) => (a < b ? a : b);
export const later = (a: bigint, b: bigint) => (a > b ? a : b);
/** Nanoseconds in a millisecond. */
export const MS = 1_000_000n;
export const nowUnixNano = () => BigInt(Date.now()) * MS;
/** Nanoseconds as (fractional) milliseconds. */
export const toMs = (ns: bigint) => Number(ns) / 1e6;
