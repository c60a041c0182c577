// Block I/O probes, for real: fsync of dirty data is written by the fsync'ing thread, and
// each request says whether that thread submitted it or only issued it.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import * as A from '../../src/semconv/attributes.js';
import { kernelAvailable, runWorkload, settle, startCapture } from './session.js';

const MIB = 1 << 20;

test("fsync of 64 MiB of dirty data gives block.io writes on the fsync thread, on the file's disk", async (t) => {
  if (!kernelAvailable(t)) return;
  const capture = await startCapture(t, ['--comm', 'fsync_writer']);
  const truth = (await runWorkload('fsync_writer', ['--dir', '/var/tmp', '--mib', '64', '--start-delay-ms', '50'])) as {
    pid: number;
    tid: number;
    dev: string;
    bytes: number;
  };
  await settle(500);
  await capture.stop();

  const ios = capture.of('block.io', (e) => e.pid === truth.pid);
  const writes = ios.filter((e) => e.attributes[A.ATTR_CAUSEWAY_BLOCK_OP] === 'write');
  const written = writes
    .filter((e) => e.tid === truth.tid)
    .reduce((sum, e) => sum + Number(e.attributes[A.ATTR_CAUSEWAY_BLOCK_BYTES]), 0);
  assert.ok(written >= 64 * MIB, `the fsync thread wrote ${written / MIB} MiB`);
  assert.ok(
    ios.every((e) => ['submitter', 'issuer'].includes(String(e.attributes[A.ATTR_CAUSEWAY_BLOCK_ATTRIBUTION]))),
  );
  assert.ok(writes.some((e) => e.attributes[A.ATTR_CAUSEWAY_BLOCK_ATTRIBUTION] === 'submitter'));
  const disk = /DEVNAME=(\S+)/.exec(readFileSync(`/sys/dev/block/${truth.dev}/uevent`, 'utf8'))?.[1];
  assert.ok(disk);
  assert.ok(
    writes.every((e) => e.attributes[A.ATTR_CAUSEWAY_BLOCK_DEVICE] === disk),
    `writes not all on ${disk}`,
  );
});
