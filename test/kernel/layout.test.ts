import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { packageRoot } from '../../src/install.js';
import {
  ABI_VERSION,
  API_PER_THREAD,
  COMM_LEN,
  CudaApi,
  DEVICE_UNKNOWN,
  FrameType,
  GpuProcess,
  Kind,
  LAUNCH_FUNCS,
  LAYOUT,
  MESSAGE_PIPE,
  MemcpyDirection,
  NAME_LEN,
  RUNQUEUE_HOLDERS,
} from '../../src/kernel/record.js';

interface CLayout {
  structs: unknown;
  constants: Record<string, number>;
  kinds: Record<string, number>;
  apis: Record<string, number>;
  gpu_processes: Record<string, number>;
  directions: Record<string, number>;
  frames: Record<string, number>;
}

function compileLayout(): CLayout {
  const dir = mkdtempSync(join(tmpdir(), 'causeway-layout-'));
  try {
    const binary = join(dir, 'layout');
    execFileSync('gcc', ['-Wall', '-Werror', '-o', binary, join(packageRoot, 'test/kernel/layout.c')]);
    return JSON.parse(execFileSync(binary, { encoding: 'utf8' })) as CLayout;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const withoutPrefix = (values: Record<string, number>, prefix: string) =>
  Object.fromEntries(Object.entries(values).map(([name, value]) => [name.slice(prefix.length), value]));

test('the decoder offset table matches every struct of bpf/causeway.h as gcc lays it out', () => {
  const c = compileLayout();
  assert.deepEqual(LAYOUT, c.structs);
  assert.deepEqual(
    {
      CW_ABI_VERSION: ABI_VERSION,
      CW_COMM_LEN: COMM_LEN,
      CW_NAME_LEN: NAME_LEN,
      CW_RUNQUEUE_HOLDERS: RUNQUEUE_HOLDERS,
      CW_API_PER_THREAD: API_PER_THREAD,
      CW_DEVICE_UNKNOWN: DEVICE_UNKNOWN,
      CW_MESSAGE_PIPE: MESSAGE_PIPE,
      CW_LAUNCH_FUNCS: LAUNCH_FUNCS,
    },
    c.constants,
  );
});

test('the decoder enums match the header enums name for name', () => {
  const c = compileLayout();
  assert.deepEqual({ ...Kind }, withoutPrefix(c.kinds, 'CW_KIND_'));
  assert.deepEqual({ ...CudaApi }, withoutPrefix(c.apis, 'CW_API_'));
  assert.deepEqual({ ...GpuProcess }, withoutPrefix(c.gpu_processes, 'CW_GPU_'));
  assert.deepEqual({ ...MemcpyDirection }, withoutPrefix(c.directions, 'CW_MEMCPY_'));
  assert.deepEqual({ ...FrameType }, withoutPrefix(c.frames, 'CW_FRAME_'));
});
