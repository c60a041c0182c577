import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { packageRoot } from '../../src/install.js';
import * as A from '../../src/semconv/attributes.js';

test('the generated attribute constants and README table are up to date with registry.yaml', () => {
  const run = spawnSync(process.execPath, ['semconv/generate.mjs', '--check'], { cwd: packageRoot, encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
});

test('generated constants name the attributes of the shared contract', () => {
  assert.equal(A.ATTR_CAUSEWAY_CUDA_KERNEL, 'causeway.cuda.kernel');
  assert.equal(A.ATTR_CAUSEWAY_CUDA_SHARED_MEM_BYTES, 'causeway.cuda.shared_mem.bytes');
  assert.equal(A.CAUSEWAY_KIND_VALUE_TCP_RETRANSMIT, 'tcp.retransmit');
  assert.equal(A.ATTR_NETWORK_PEER_PORT, 'network.peer.port');
});
