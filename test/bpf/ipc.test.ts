// Socket messages, for real: a TCP echo pair on loopback sends and receives through
// sock_sendmsg / sock_recvmsg, and both ends name the connection the same way.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as A from '../../src/semconv/attributes.js';
import { kernelAvailable, settle, startCapture, startWorkload } from './session.js';

const PORT = 47313;

test('each send and receive of a TCP echo pair is an ipc.message, with the same connection at both ends', async (t) => {
  if (!kernelAvailable(t)) return;
  const capture = await startCapture(t, ['--comm', 'tcp_echo']);
  const server = startWorkload('tcp_echo', ['--server', '--port', String(PORT), '--seconds', '10']);
  // Followed by name from its exec record on: its first send waits until the loader has read it.
  const client = startWorkload('tcp_echo', [
    '--port',
    String(PORT),
    '--count',
    '20',
    '--size',
    '300',
    '--start-delay-ms',
    '300',
  ]);
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
