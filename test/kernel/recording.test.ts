import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { FrameReader, type Frame } from '../../src/kernel/frames.js';
import type { LoaderMessage } from '../../src/kernel/loader.js';
import { FrameType } from '../../src/kernel/record.js';
import { Recording, Replay } from '../../src/kernel/recording.js';
import { frame, hello, message } from './records.js';

function scratch(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'causeway-recording-'));
  t.after(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

/** The live lookups a recording wraps: fixed answers, each counted. */
function liveHost() {
  const asked: string[] = [];
  return {
    asked,
    host: {
      processes: {
        get: (pid: number) => (asked.push(`process ${pid}`), { pid, executable: `/bin/p${pid}` }),
        forget: () => undefined,
      },
      devices: { name: (dev: number) => (asked.push(`device ${dev}`), 'vda') },
    },
  };
}

async function replayAll(path: string) {
  const frames: Frame[] = [];
  const messages: LoaderMessage[] = [];
  const replay = new Replay(path).connect({
    onFrame: (f) => void frames.push(f),
    onMessage: (m) => void messages.push(m),
  });
  replay.start();
  return { replay, frames, messages, end: await replay.ended };
}

test('a recording writes what each EVENTS frame was shaped with before it, and a replay answers from it alone', async (t) => {
  const path = join(scratch(t), 'capture.bin');
  const recording = new Recording(path);
  const { host, asked } = liveHost();
  const lookups = recording.lookups(host);
  recording.frame(FrameType.MESSAGE, Buffer.from('{"level":"info","msg":"hi"}'));
  lookups.processes.get(7);
  lookups.processes.get(7);
  lookups.devices.name(0x800001);
  recording.self(4242);
  recording.frame(FrameType.EVENTS, Buffer.alloc(0));
  recording.close();
  recording.close();

  const kinds = new FrameReader().push(readFileSync(path)).map((f) => f.type);
  // Causeway's own pid at the start, the MESSAGE, then the context of the batch before it.
  assert.deepEqual(kinds, [
    FrameType.CONTEXT,
    FrameType.MESSAGE,
    ...new Array<number>(3).fill(FrameType.CONTEXT),
    FrameType.EVENTS,
  ]);
  assert.equal(asked.filter((a) => a === 'process 7').length, 2, 'the live table answers every time');

  const { replay, frames, messages, end } = await replayAll(path);
  assert.equal(end.failure, null);
  assert.deepEqual(
    frames.map((f) => f.type),
    [FrameType.EVENTS],
  );
  assert.equal(messages[0]?.msg, 'hi');
  assert.deepEqual(replay.host.processes.get(7), { pid: 7, executable: '/bin/p7' });
  assert.deepEqual(replay.host.processes.get(8), { pid: 8 }, 'never recorded: the pid alone');
  assert.equal(replay.host.devices.name(0x800001), 'vda');
  assert.equal(replay.host.devices.name(0x800002), '8:2');
  assert.ok(replay.host.self.has(4242) && replay.host.self.has(process.pid));
  assert.ok(!replay.host.self.has(0), 'the idle task is nobody');
});

test('a file that ends inside a frame replays what it holds, then fails with the reason', async (t) => {
  const path = join(scratch(t), 'cut.bin');
  const whole = Buffer.concat([
    hello(),
    message({ level: 'warn', msg: 'x' }),
    frame(FrameType.EVENTS, Buffer.alloc(160)),
  ]);
  writeFileSync(path, whole.subarray(0, whole.length - 10));
  const { frames, messages, end } = await replayAll(path);
  assert.deepEqual(
    frames.map((f) => f.type),
    [FrameType.HELLO],
  );
  assert.match(end.failure ?? '', /ends inside a frame \(158 bytes left\)/);
  assert.equal(messages.at(-1)?.level, 'error');
});
