// Socket and pipe messages, for real: a TCP echo pair on loopback sends and receives through
// sock_sendmsg / sock_recvmsg, a pipe echo pair writes and reads through the kernel's pipe
// functions (or the read and write syscalls), and both ends name the connection the same way.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import * as A from '../../src/semconv/attributes.js';
import { kernelAvailable, settle, startCapture, startWorkload, type CapturedEvent } from './session.js';

const PORT = 47313;
/**
 * What each echo client sends: 20 messages of 300 bytes, the first 300 ms after it starts (it is
 * followed by name from its exec record on: by then the loader has read that record).
 */
const MESSAGES = ['--count', '20', '--size', '300', '--start-delay-ms', '300'];

test('each send and receive of a TCP echo pair is an ipc.message, with the same connection at both ends', async (t) => {
  if (!kernelAvailable(t)) return;
  const capture = await startCapture(t, ['--comm', 'tcp_echo']);
  const server = startWorkload('tcp_echo', ['--server', '--port', String(PORT), '--seconds', '10']);
  const client = startWorkload('tcp_echo', ['--port', String(PORT), ...MESSAGES]);
  const truth = (await client.truth) as { pid: number; tid: number; echoed: number };
  const serverTruth = (await server.truth) as { pid: number; tid: number };
  await settle();
  await capture.stop();

  const of = (pid: number, direction: string) =>
    capture.of('ipc.message', (e) => e.pid === pid && e.attributes[A.ATTR_CAUSEWAY_IPC_DIRECTION] === direction);
  // The server receives only on the TCP connection (its stdout, a socket to this test, it only writes).
  const served = of(serverTruth.pid, 'recv');
  assert.ok(served.length > 0, capture.stderr);
  const connection = served[0]?.attributes[A.ATTR_CAUSEWAY_IPC_CONNECTION];
  assert.match(String(connection), /^0x[0-9a-f]+-0x[0-9a-f]+$/);
  for (const m of served) assert.equal(m.attributes[A.ATTR_CAUSEWAY_IPC_CONNECTION], connection);
  const on = (ms: typeof served) => ms.filter((m) => m.attributes[A.ATTR_CAUSEWAY_IPC_CONNECTION] === connection);
  const sent = on(of(truth.pid, 'send'));
  assert.equal(truth.echoed, 20);
  // Each message is one send of 300 bytes; the server may read a message in more than one call.
  assert.equal(sent.length, 20, capture.stderr);
  for (const m of sent) {
    assert.equal(m.tid, truth.tid);
    assert.equal(m.attributes[A.ATTR_CAUSEWAY_IPC_BYTES], 300);
  }
  const bytes = (ms: typeof served) => ms.reduce((sum, m) => sum + Number(m.attributes[A.ATTR_CAUSEWAY_IPC_BYTES]), 0);
  assert.equal(bytes(served), 20 * 300);
  assert.equal(bytes(on(of(truth.pid, 'recv'))), 20 * 300, 'the echoes, on the same connection as the client sees it');
  assert.equal(bytes(on(of(serverTruth.pid, 'send'))), 20 * 300);
});

/** The pipe functions this kernel has, by its symbols: anon_pipe_read and anon_pipe_write since Linux 6.16. */
function pipeFunctions(): [string, string] {
  return /\sanon_pipe_read$/m.test(readFileSync('/proc/kallsyms', 'utf8'))
    ? ['anon_pipe_read', 'anon_pipe_write']
    : ['pipe_read', 'pipe_write'];
}

for (const fifo of [false, true])
  test(`each write and read on a ${fifo ? 'FIFO' : 'pipe'} pair is one ipc.message, the pipe named alike at both ends`, async (t) => {
    if (!kernelAvailable(t)) return;
    const dir = mkdtempSync(join(tmpdir(), 'causeway-pipes-'));
    t.after(() => {
      rmSync(dir, { recursive: true, force: true });
    });
    const capture = await startCapture(t, ['--comm', 'pipe_echo']);
    // Its child is followed from its fork.
    const echo = startWorkload('pipe_echo', [...MESSAGES, ...(fifo ? ['--fifo', dir] : [])]);
    const truth = (await echo.truth) as { pid: number; tid: number; child_pid: number; echoed: number };
    await settle();
    await capture.stop();

    // The loader says how it probes pipes: at this kernel's pipe functions, or at the syscalls where it refuses fexit.
    const [read, write] = pipeFunctions();
    assert.match(
      capture.stderr,
      new RegExp(
        `probing pipes at (${read} and ${write}|the read, readv, write and writev syscalls: .*${read} and ${write})`,
      ),
    );
    assert.equal(truth.echoed, 20);
    const of = (pid: number, direction: string) =>
      capture.of(
        'ipc.message',
        (e) =>
          e.pid === pid &&
          e.attributes[A.ATTR_CAUSEWAY_IPC_DIRECTION] === direction &&
          String(e.attributes[A.ATTR_CAUSEWAY_IPC_CONNECTION]).startsWith('pipe:'),
      );
    /** The one pipe all of `messages` went through. */
    const pipe = (messages: CapturedEvent[]) => {
      const pipes = new Set(messages.map((m) => m.attributes[A.ATTR_CAUSEWAY_IPC_CONNECTION]));
      assert.equal(pipes.size, 1, `${[...pipes].join(', ')}\n${capture.stderr}`);
      return [...pipes][0];
    };
    const on = (messages: CapturedEvent[], connection: unknown) =>
      messages.filter((m) => m.attributes[A.ATTR_CAUSEWAY_IPC_CONNECTION] === connection);
    // The child reads only requests and writes only replies; each message is one call of 300 bytes, seen once.
    const requests = of(truth.child_pid, 'recv');
    const replies = of(truth.child_pid, 'send');
    const [requestPipe, replyPipe] = [pipe(requests), pipe(replies)];
    assert.notEqual(requestPipe, replyPipe, 'two one-way pipes');
    for (const [messages, tid] of [
      [on(of(truth.pid, 'send'), requestPipe), truth.tid],
      [requests, truth.child_pid],
      [replies, truth.child_pid],
      [on(of(truth.pid, 'recv'), replyPipe), truth.tid],
    ] as const) {
      assert.deepEqual(
        messages.map((m) => [m.tid, m.attributes[A.ATTR_CAUSEWAY_IPC_BYTES]]),
        Array.from({ length: 20 }, () => [tid, 300]),
      );
    }
  });
