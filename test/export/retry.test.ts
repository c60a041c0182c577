// Which export failures are sent again, by the OTLP specification's gRPC rules, and the delay a
// collector asks for in RetryInfo.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Metadata, status } from '@grpc/grpc-js';
import { exportVerdict } from '../../src/export/retry.js';
import { RpcCode, encodeStatus } from '../../src/otlp/protos.js';

function grpcError(code: status, statusDetails?: Uint8Array): Error {
  const metadata = new Metadata();
  if (statusDetails !== undefined) metadata.set('grpc-status-details-bin', Buffer.from(statusDetails));
  return Object.assign(new Error(`${String(code)} ${status[code]}: test`), { code, metadata });
}

const RETRYABLE = ['CANCELLED', 'DEADLINE_EXCEEDED', 'ABORTED', 'OUT_OF_RANGE', 'UNAVAILABLE', 'DATA_LOSS'];

test('the gRPC codes the OTLP specification calls retryable are retried, and no other', () => {
  for (const [name, code] of Object.entries(status).filter(([, v]) => typeof v === 'number') as [string, status][]) {
    if (code === status.OK) continue;
    const verdict = exportVerdict(grpcError(code));
    assert.equal(verdict.retry, RETRYABLE.includes(name), name);
    assert.equal(verdict.reason, `${String(code)} ${name}: test`);
  }
});

test('RESOURCE_EXHAUSTED is retried only with RetryInfo, whose delay is given', () => {
  assert.equal(exportVerdict(grpcError(status.RESOURCE_EXHAUSTED)).retry, false);
  const throttled = encodeStatus(RpcCode.RESOURCE_EXHAUSTED, 'slow down', { retryDelaySeconds: 3 });
  assert.deepEqual(exportVerdict(grpcError(status.RESOURCE_EXHAUSTED, throttled)), {
    retry: true,
    delayMs: 3000,
    reason: '8 RESOURCE_EXHAUSTED: test',
  });
  const unavailable = encodeStatus(RpcCode.UNAVAILABLE, 'busy', { retryDelaySeconds: 2 });
  assert.equal(exportVerdict(grpcError(status.UNAVAILABLE, unavailable)).delayMs, 2000);
  const garbage = new Uint8Array([0xff, 0xff, 0xff]);
  assert.deepEqual(exportVerdict(grpcError(status.UNAVAILABLE, garbage)).delayMs, undefined);
});

test('a connection that failed below gRPC is retried; an error without a code is not', () => {
  const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:4317'), { code: 'ECONNREFUSED' });
  assert.equal(exportVerdict(refused).retry, true);
  assert.deepEqual(exportVerdict(new Error('Nothing to send')), { retry: false, reason: 'Nothing to send' });
  assert.equal(exportVerdict(undefined).retry, false);
});
