import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FrameError, FrameReader } from '../../src/kernel/frames.js';
import { FrameType } from '../../src/kernel/record.js';
import { frame, message } from './records.js';

const parts = [
  message({ level: 'info', msg: 'one' }),
  frame(FrameType.EVENTS, Buffer.alloc(320, 7)),
  frame(FrameType.EVENTS, Buffer.alloc(0)),
  message({ level: 'warn', msg: 'two' }),
];
const stream = Buffer.concat(parts);
const HEADER = 8;

function readAll(chunks: Buffer[]) {
  const reader = new FrameReader();
  const frames = chunks.flatMap((chunk) => reader.push(chunk));
  return { frames, pending: reader.pendingBytes };
}

test('frames are read whole whatever the chunking, down to one byte at a time', () => {
  const whole = readAll([stream]);
  assert.equal(whole.frames.length, 4);
  assert.deepEqual(
    whole.frames.map((f) => f.payload.length),
    parts.map((p) => p.length - HEADER),
  );
  assert.deepEqual(
    whole.frames.map((f) => f.type),
    [FrameType.MESSAGE, FrameType.EVENTS, FrameType.EVENTS, FrameType.MESSAGE],
  );
  const bytewise = readAll(Array.from(stream, (byte) => Buffer.from([byte])));
  assert.deepEqual(bytewise.frames, whole.frames);
  for (let cut = 1; cut < stream.length; cut += 7) {
    assert.deepEqual(readAll([stream.subarray(0, cut), stream.subarray(cut)]).frames, whole.frames, `cut at ${cut}`);
  }
});

test('a stream cut inside a frame leaves its bytes pending', () => {
  const { frames, pending } = readAll([stream.subarray(0, stream.length - 5)]);
  assert.equal(frames.length, 3);
  assert.equal(pending, (parts[3]?.length ?? 0) - 5);
});

test('an absurd frame size is refused, and the reader stays failed', () => {
  const reader = new FrameReader(1024);
  const header = Buffer.alloc(8);
  header.writeUInt32LE(FrameType.EVENTS, 0);
  header.writeUInt32LE(4096, 4);
  assert.throws(() => reader.push(header), { name: 'FrameError', message: /4096 bytes exceeds the 1024-byte limit/ });
  assert.throws(() => reader.push(message({ msg: 'later' })), FrameError);
});

test('an unknown frame type is refused as a corrupt stream', () => {
  const reader = new FrameReader();
  assert.throws(() => reader.push(frame(77, Buffer.alloc(4))), /unknown frame type 77/);
});
