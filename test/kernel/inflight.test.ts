import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Stream, beginCapture, capture, endCapture } from '../../src/kernel/inflight.js';

test('past the items kept one by one, older work is still counted, though not named', () => {
  const stream = new Stream(0x10n, 0);
  for (let i = 0; i < 100; i++) stream.launched(`k${i % 7}`);
  stream.copied(4096);
  const pending = stream.complete(stream.seq);
  assert.equal(pending.kernels, 100);
  assert.equal(pending.bytes, 4096);
  assert.deepEqual(new Set(pending.symbols), new Set(['k0', 'k1', 'k2', 'k3', 'k4', 'k5', 'k6']));
  assert.deepEqual(pending.streams, [0x10n]);
  assert.equal(stream.complete(stream.seq).kernels, 0, 'completed once');
  // The slots of completed work are filled again: what they held before is not counted twice.
  for (let i = 0; i < 3; i++) stream.launched('x');
  assert.deepEqual(stream.complete(stream.seq), {
    kernels: 3,
    symbols: ['x', 'x', 'x'],
    graphs: [],
    bytes: 0,
    streams: [0x10n],
  });
});

test("an event's work is what came before it: later work stays in flight", () => {
  const stream = new Stream(0x10n, 0);
  stream.launched('a');
  stream.launched('b');
  const event = stream.seq;
  stream.graphLaunched(0x70n, { symbols: ['g1', 'g2'], count: 2 });
  assert.deepEqual(stream.complete(event), { kernels: 2, symbols: ['a', 'b'], graphs: [], bytes: 0, streams: [0x10n] });
  assert.deepEqual(stream.complete(stream.seq), {
    kernels: 2,
    symbols: ['g1', 'g2'],
    graphs: [0x70n],
    bytes: 0,
    streams: [0x10n],
  });
});

test('a capture spans the streams that joined it, and ends on all of them at once', () => {
  const origin = new Stream(0x1n, 0);
  const side = new Stream(0x2n, 0);
  beginCapture(origin);
  const started = origin.capture;
  assert.ok(started);
  side.capture = started;
  started.streams.add(side);
  capture(started, ['x'], 1);
  capture(started, ['y', 'z'], 2);
  assert.deepEqual(endCapture(origin), { symbols: ['x', 'y', 'z'], count: 3 });
  assert.equal(side.capture, undefined);
  assert.equal(endCapture(side), undefined, 'nothing left to end');
});
