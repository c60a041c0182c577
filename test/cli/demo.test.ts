// The README's main job: `causeway demo` captures its workloads with the real probes.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT, kernelAvailable } from '../bpf/session.js';

test('the demo shows the GPU sync stretched by the other GPU user, the lock held across a GPU wait, and the MCP answer for a traced request', (t) => {
  if (!kernelAvailable(t)) return;
  const run = spawnSync(process.execPath, [join(ROOT, 'dist', 'src', 'cli', 'main.js'), 'demo'], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(run.status, 0, run.stderr);
  const sync =
    /cuda\.sync\s+gpu_sync \d+\/\d+\s+([\d.]+)\s+cudaStreamSynchronize \S+ inflight=1 \[matmul_big\(float\*, float\*, float\*, int\)\]/.exec(
      run.stdout,
    );
  assert.ok(sync, run.stdout);
  assert.ok(
    Number(sync[1]) > 250,
    `gpu_sync waited ${sync[1]} ms: the hog's kernels should have delayed its 200 ms kernel`,
  );
  assert.match(run.stdout, /futex\.wait\s+waiter \d+\/\d+\s+[\d.]+\s+FUTEX_WAIT\S* \S+, woken by holder/);
  assert.match(run.stdout, /causeway: drops: none/);
  // Part 3, the whole pipeline: the MCP answer follows the lock to the GPU wait in the worker.
  assert.match(
    run.stdout,
    /Root cause: cuda\.sync, [\d.]+ ms \(\d+%\), caused by kernel "matmul_big\(float\*, float\*, float\*, int\)" launched by pid \d+ tid \d+ "lock-holder"\. Chain: futex\.wait in tid \d+ \([\d.]+ ms\) -> cuda\.sync in tid \d+/,
  );
});
