// The servers' side of the ingest queue (src/otlp/ingest.ts): the gate admits against the bound in
// shared counters, and once closed (the servers stopped) refuses what a late request brings.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IngestGate, SharedCounters } from '../../src/otlp/ingest.js';
import { decodeProtobufRequest } from '../../src/otlp/spans.js';
import { otlpRequest } from '../bench/pipeline.js';

test('a closed gate refuses every request, so nothing is accepted after the servers stopped', () => {
  const counters = new SharedCounters();
  const sent: number[] = [];
  const gate = new IngestGate(counters, 10, (spans) => sent.push(spans.length));
  const { spans } = decodeProtobufRequest(otlpRequest(2, { pid: process.pid, durationNs: 1_000_000n }).body);
  assert.equal(spans.length, 2);

  assert.ok(gate.hasRoomFor(spans.length));
  gate.accept(spans);
  assert.deepEqual(sent, [2]);
  assert.equal(counters.get('pendingSpans'), 2);

  gate.close();
  assert.equal(gate.hasRoomFor(0), false);
  assert.equal(gate.hasRoomFor(spans.length), false);
  assert.deepEqual(sent, [2]);
  assert.equal(counters.get('spansAccepted'), 2);
});
