import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GpuProcesses } from '../../src/kernel/gpu-processes.js';
import type { LoaderMessage } from '../../src/kernel/loader.js';

const found = (pid: number, library: string, since = 'running'): LoaderMessage => ({
  level: 'info',
  msg: '',
  source: 'loader',
  fields: { event: 'gpu_process', pid, comm: `p${pid}`, library, since },
});
const exited = (pid: number): LoaderMessage => ({
  level: 'info',
  msg: '',
  source: 'loader',
  fields: { event: 'gpu_process_exit', pid, reason: 'exit' },
});

test('a GPU process is listed with each library it uses, and leaves the list when it exits', () => {
  const table = new GpuProcesses();
  table.message(found(20, '/lib/libcudart.so.12'));
  table.message(found(10, '/lib/libcuda.so.1', 'started'));
  table.message(found(20, '/lib/libcuda.so.1'));
  table.message(found(20, '/lib/libcuda.so.1'));
  assert.deepEqual(table.list(10), [
    { pid: 10, comm: 'p10', libraries: ['/lib/libcuda.so.1'], since: 'started' },
    { pid: 20, comm: 'p20', libraries: ['/lib/libcudart.so.12', '/lib/libcuda.so.1'], since: 'running' },
  ]);
  table.message(exited(20));
  assert.deepEqual(
    table.list(10).map((p) => p.pid),
    [10],
  );
  assert.deepEqual(table.list(0), [], 'the list is as long as asked, at most');
});

test('after a loader restart, a process its scan does not report again has exited meanwhile', () => {
  const table = new GpuProcesses();
  table.message(found(1, '/lib/libcudart.so.12'));
  table.message(found(2, '/lib/libcudart.so.12'));
  table.restarted();
  table.message(found(2, '/lib/libcudart.so.12'));
  table.scanned();
  assert.deepEqual(
    table.list(10).map((p) => p.pid),
    [2],
  );
});

test('past its capacity the table counts the processes it cannot list', () => {
  const table = new GpuProcesses(2);
  for (const pid of [1, 2, 3, 4]) table.message(found(pid, '/lib/libcudart.so.12'));
  assert.deepEqual(table.counts(), { listed: 2, unlisted: 2 });
});
