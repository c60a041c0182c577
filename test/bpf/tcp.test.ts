// TCP probes, for real: packet loss on loopback (nftables `numgen random`) makes the sender
// retransmit (dropped on input: a drop on output is no retransmit, the segment was never
// sent), and each retransmit carries the connection's ports and the sending process.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import * as A from '../../src/semconv/attributes.js';
import { kernelAvailable, settle, startCapture, startWorkload } from './session.js';

const PORT = 47311;

test("packet loss on loopback gives tcp.retransmit with the connection's ports and the sender", async (t) => {
  if (!kernelAvailable(t)) return;
  const table = `causeway_test_${process.pid}`;
  const nft = (...args: string[]) => execFileSync('nft', args);
  nft('add', 'table', 'inet', table);
  t.after(() => nft('delete', 'table', 'inet', table));
  nft('add', 'chain', 'inet', table, 'in', '{ type filter hook input priority 0; }');
  nft(
    'add',
    'rule',
    'inet',
    table,
    'in',
    'tcp',
    'dport',
    String(PORT),
    'numgen',
    'random',
    'mod',
    '100',
    '<',
    '10',
    'drop',
  );

  const capture = await startCapture(t, ['--comm', 'tcp_echo']);
  const server = startWorkload('tcp_echo', ['--server', '--port', String(PORT), '--seconds', '15']);
  const client = startWorkload('tcp_echo', [
    '--port',
    String(PORT),
    '--count',
    '100',
    '--size',
    '512',
    '--seconds',
    '12',
  ]);
  const truth = (await client.truth) as { pid: number; tid: number; local_port: number; peer_port: number };
  await server.truth;
  await settle();
  await capture.stop();

  const retransmits = capture.of('tcp.retransmit', (e) => e.pid === truth.pid);
  assert.ok(retransmits.length > 0, `no retransmit captured; ${capture.stderr}`);
  for (const r of retransmits) {
    assert.equal(r.tid, truth.tid);
    assert.equal(r.attributes[A.ATTR_NETWORK_LOCAL_PORT], truth.local_port);
    assert.equal(r.attributes[A.ATTR_NETWORK_PEER_PORT], PORT);
    assert.equal(r.attributes[A.ATTR_NETWORK_PEER_ADDRESS], '127.0.0.1');
    assert.equal(r.attributes[A.ATTR_CAUSEWAY_TCP_OWNER_KNOWN], true);
    assert.equal(r.start_unix_nano, r.end_unix_nano);
  }
});
