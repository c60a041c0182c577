import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EpochClock } from '../../src/kernel/clock.js';

test('before any STATS pair, monotonic time converts to about now', () => {
  const clock = new EpochClock();
  const now = BigInt(Date.now()) * 1_000_000n;
  const converted = clock.toUnixNano(process.hrtime.bigint());
  assert.ok(converted - now < 50_000_000n && now - converted < 50_000_000n, `off by ${converted - now} ns`);
});

test('every STATS pair replaces the offset', () => {
  const clock = new EpochClock();
  clock.update(1_000n, 1_700_000_000_000_000_000n);
  assert.equal(clock.toUnixNano(1_500n), 1_700_000_000_000_000_500n);
  clock.update(2_000n, 1_700_000_000_000_002_010n); // the wall clock was stepped 10 ns ahead
  assert.equal(clock.toUnixNano(2_500n), 1_700_000_000_000_002_510n);
});
