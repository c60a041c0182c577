// The overhead table's method (main.ts): every configuration runs once per round, back to back,
// in an order rotated from round to round; a ratio is taken within a round (configuration over
// the run without probes of the same round), and across rounds a ratio is reported as its
// median and interquartile range, or as "within noise" when that range cannot tell it from 1.

/** A ratio over rounds: its median and interquartile range. */
export interface Spread {
  median: number;
  /** First quartile. */
  low: number;
  /** Third quartile. */
  high: number;
}

/**
 * The order the configurations run in, in round `round` (from 0): a Williams design, so that over
 * n rounds (n even) each configuration goes first once and follows every other one once. What a
 * run leaves behind (a tracer's teardown in the kernel, warm or cold caches) then falls on each
 * configuration in turn, not always on the same one.
 */
export function roundOrder<T>(configurations: readonly T[], round: number): T[] {
  const n = configurations.length;
  // The first round's order is 0, 1, n-1, 2, n-2, ...; each later round adds 1 to every index.
  const first = Array.from({ length: n }, (_, j) => (j % 2 === 1 ? (j + 1) / 2 : (n - j / 2) % n));
  return first.map((index) => configurations[(index + round) % n] as T);
}

/** The q-quantile (0 to 1) of sorted values, interpolated between the two nearest. */
function quantile(sorted: readonly number[], q: number): number {
  const at = (sorted.length - 1) * q;
  const below = sorted[Math.floor(at)] ?? NaN;
  const above = sorted[Math.ceil(at)] ?? NaN;
  return below + (above - below) * (at - Math.floor(at));
}

/** Median and quartiles; with 5 rounds the quartiles are the 2nd and 4th of the sorted values. */
export function spread(values: readonly number[]): Spread {
  if (values.length === 0) throw new Error('a spread needs at least one round');
  if (!values.every(Number.isFinite)) throw new Error(`a ratio that is not a finite number: ${values.join(', ')}`);
  const sorted = [...values].sort((a, b) => a - b);
  return { median: quantile(sorted, 0.5), low: quantile(sorted, 0.25), high: quantile(sorted, 0.75) };
}

/** The smallest effect reported: ratios are printed to 3 decimals, and a rate set by the workload moves in the 6th. */
const RESOLUTION = 0.0005;

/**
 * Whether the rounds cannot tell the ratio from `reference`: their interquartile range holds it,
 * or is wider than the median's distance from it (the effect), or that distance is below what
 * is printed.
 */
export function withinNoise(s: Spread, reference = 1): boolean {
  const effect = Math.abs(s.median - reference);
  return (s.low <= reference && reference <= s.high) || s.high - s.low > effect || effect < RESOLUTION;
}

const range = (s: Spread) => `${s.low.toFixed(3)}–${s.high.toFixed(3)}`;

/** A ratio: "1.470 (1.410–1.520)", or "within noise (0.970–1.040)" where the rounds cannot tell it from `reference`. */
export function describeRatio(s: Spread, reference = 1): string {
  return withinNoise(s, reference) ? `within noise (${range(s)})` : `${s.median.toFixed(3)} (${range(s)})`;
}

/**
 * Causeway's added CPU per operation over the floor's (added: a configuration's CPU per
 * operation less that of the run without probes, same round), against a target. Only where the
 * floor adds something in every round and its own ratio to the run without is not noise; "within
 * noise" where the rounds cannot tell the ratio from the target.
 */
export function describeOverFloor(
  causewayAdded: readonly number[],
  floorAdded: readonly number[],
  floorRatio: Spread,
  target: number,
): string {
  if (withinNoise(floorRatio) || floorAdded.some((added) => added <= 0)) return 'floor within noise';
  const s = spread(causewayAdded.map((added, round) => added / (floorAdded[round] ?? NaN)));
  const verdict = withinNoise(s, target) ? '' : s.median <= target ? ', target met' : ', target not met';
  return `${describeRatio(s, target)}${verdict}`;
}
