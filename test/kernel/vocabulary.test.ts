import assert from 'node:assert/strict';
import { test } from 'node:test';
import { blockOp, futexOp, ipAddress, memcpyDirection, taskState, tcpState } from '../../src/kernel/vocabulary.js';

test('futex ops read as strace prints them', () => {
  assert.equal(futexOp(0), 'FUTEX_WAIT');
  assert.equal(futexOp(128), 'FUTEX_WAIT_PRIVATE');
  assert.equal(futexOp(9 | 128 | 256), 'FUTEX_WAIT_BITSET_PRIVATE|FUTEX_CLOCK_REALTIME');
  assert.equal(futexOp(60), 'FUTEX_OP_60');
});

test('task states read as ps prints them', () => {
  assert.equal(taskState(0), 'R');
  assert.equal(taskState(1), 'S');
  assert.equal(taskState(2), 'D');
  assert.equal(taskState(0x402), 'I');
  assert.equal(taskState(0x102), 'D'); // TASK_KILLABLE
  assert.equal(taskState(0x20), 'Z');
});

test('rwbs flags give the block operation, a leading preflush F included', () => {
  assert.equal(blockOp('R'), 'read');
  assert.equal(blockOp('RA'), 'read');
  assert.equal(blockOp('WS'), 'write');
  assert.equal(blockOp('FWS'), 'write');
  assert.equal(blockOp('FF'), 'flush');
  assert.equal(blockOp('F'), 'flush');
  assert.equal(blockOp('DS'), 'discard');
  assert.equal(blockOp('N'), 'other');
});

test('tcp states and memcpy kinds are named, unknown values shown as numbers', () => {
  assert.equal(tcpState(1), 'ESTABLISHED');
  assert.equal(tcpState(2), 'SYN_SENT');
  assert.equal(tcpState(99), 'STATE_99');
  assert.equal(memcpyDirection(1), 'HtoD');
  assert.equal(memcpyDirection(4), 'default');
  assert.equal(memcpyDirection(9), 'kind(9)');
});

test('addresses format as IPv4, compressed IPv6 and v4-mapped IPv6', () => {
  const bytes = (...b: number[]) => Uint8Array.from([...b, ...new Array<number>(16 - b.length).fill(0)]);
  assert.deepEqual(ipAddress(2, bytes(127, 0, 0, 1)), { type: 'ipv4', address: '127.0.0.1' });
  assert.deepEqual(ipAddress(10, bytes(...new Array<number>(15).fill(0), 1)), { type: 'ipv6', address: '::1' });
  assert.deepEqual(ipAddress(10, bytes(0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1)), {
    type: 'ipv6',
    address: '2001:db8::1',
  });
  assert.deepEqual(ipAddress(10, bytes(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1)), {
    type: 'ipv6',
    address: '::ffff:10.0.0.1',
  });
  assert.equal(ipAddress(1, bytes()), undefined);
});
