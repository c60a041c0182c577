import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeOverFloor, describeRatio, roundOrder, spread, withinNoise } from './rounds.js';

test('over four rounds each configuration goes first once and follows every other once', () => {
  const configurations = ['without', 'causeway', 'bpftrace', 'floor'];
  const orders = [0, 1, 2, 3].map((round) => roundOrder(configurations, round));
  assert.deepEqual(orders.map((order) => order[0]).sort(), [...configurations].sort());
  for (const order of orders) assert.deepEqual([...order].sort(), [...configurations].sort());
  const pairs = orders.flatMap((order) => order.slice(1).map((c, i) => `${order[i] ?? ''}>${c}`));
  assert.equal(new Set(pairs).size, configurations.length * (configurations.length - 1));
  assert.deepEqual(roundOrder(configurations, 4), orders[0]);
});

test('the spread of five rounds is the median and the 2nd and 4th of the sorted ratios', () => {
  assert.deepEqual(spread([1.5, 1.1, 1.3, 1.2, 1.4]), { median: 1.3, low: 1.2, high: 1.4 });
});

test('an even number of rounds interpolates the median and quartiles', () => {
  const s = spread([1, 2, 3, 4]);
  assert.equal(s.median, 2.5);
  assert.equal(s.low, 1.75);
  assert.equal(s.high, 3.25);
});

test('one round is its own median, with no spread', () => {
  assert.deepEqual(spread([1.2]), { median: 1.2, low: 1.2, high: 1.2 });
});

test('no rounds, or a ratio that is not a number, is an error', () => {
  assert.throws(() => spread([]), /at least one round/);
  assert.throws(() => spread([1, Infinity]), /not a finite number/);
});

test('a spread holding 1 is within noise, and so is one wider than the effect', () => {
  assert.equal(withinNoise({ median: 1.02, low: 0.98, high: 1.05 }), true);
  assert.equal(withinNoise({ median: 1.05, low: 1.01, high: 1.2 }), true);
  assert.equal(withinNoise({ median: 0.9, low: 0.7, high: 0.95 }), true);
});

test('an effect too small to print is within noise, however narrow the spread', () => {
  assert.equal(withinNoise({ median: 1.000003, low: 1.000002, high: 1.000004 }), true);
  assert.equal(withinNoise({ median: 1.002, low: 1.0019, high: 1.0021 }), false);
});

test('a narrow spread away from 1 is an effect, above or below', () => {
  assert.equal(withinNoise({ median: 1.47, low: 1.41, high: 1.52 }), false);
  assert.equal(withinNoise({ median: 0.65, low: 0.6, high: 0.7 }), false);
});

test('a ratio is printed with its spread, or as within noise instead of a ratio', () => {
  assert.equal(describeRatio({ median: 1.47, low: 1.41, high: 1.52 }), '1.470 (1.410–1.520)');
  assert.equal(describeRatio({ median: 1.43, low: 0.7, high: 1.5 }), 'within noise (0.700–1.500)');
  assert.equal(describeRatio({ median: 1, low: 1, high: 1 }), 'within noise (1.000–1.000)');
});

test("Causeway's added CPU over the floor's is taken round by round and held to the target", () => {
  const floorRatio = { median: 1.3, low: 1.25, high: 1.35 };
  const met = describeOverFloor([3.6, 3.3, 3, 3.9, 3.3], [3, 3, 3, 3, 3], floorRatio, 1.3);
  assert.equal(met, '1.100 (1.100–1.200), target met');
  const notMet = describeOverFloor([6, 6.3, 5.7, 6, 6], [3, 3, 3, 3, 3], floorRatio, 1.3);
  assert.equal(notMet, '2.000 (2.000–2.000), target not met');
  const unclear = describeOverFloor([3, 3.9, 6, 4.5, 2.4], [3, 3, 3, 3, 3], floorRatio, 1.3);
  assert.equal(unclear, 'within noise (1.000–1.500)');
});

test('no ratio over the floor where the floor itself is within noise or adds nothing in a round', () => {
  const clear = { median: 1.3, low: 1.25, high: 1.35 };
  assert.equal(
    describeOverFloor([3, 3], [0.1, 0.2], { median: 1.01, low: 0.99, high: 1.02 }, 1.3),
    'floor within noise',
  );
  assert.equal(describeOverFloor([3, 3], [2, -0.1], clear, 1.3), 'floor within noise');
});
