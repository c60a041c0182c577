// A pid used again, for real, under `causeway run`: a process followed from its spans exits, a
// late span of it does not put its pid back in the followed table, and a new process given its
// pid (test/fixtures as_pid, as the kernel does once pids wrap around) is followed when its own
// spans name it. The sidecar learns of the exit from the kernel's record of it; before, it took
// the pid as still followed and never followed the new process.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { kernelAvailable, startWorkload, WORKLOADS } from '../bpf/session.js';
import { startSidecarExportingNowhere, statusTool, until } from './sidecar.js';

test('a new process given the pid of a followed one that exited is followed from its spans', async (t) => {
  if (!kernelAvailable(t)) return;
  const sidecar = await startSidecarExportingNowhere(t);
  const status = await statusTool(t, sidecar, 'pid-reuse');
  const followed = (count: number) => async () => ((await status()).capture.followed === count ? true : undefined);

  const first = startWorkload('switch_pingpong', ['--rate', '1000', '--seconds', '1']);
  const pid = first.pid;
  assert.equal((await sidecar.postSpans(pid)).status, 200);
  await until('the first process followed', 20_000, followed(1));
  await first.truth; // exited, and reaped: its pid is free
  await until('its exit to empty the followed table', 20_000, followed(0));

  // A late span of it, then one of a process that runs: the loader takes commands in order, so
  // the table holding one process means the first pid was not followed again.
  assert.equal((await sidecar.postSpans(pid)).status, 200);
  const running = spawn('sleep', ['30']);
  t.after(() => running.kill());
  assert.equal((await sidecar.postSpans(running.pid ?? 0)).status, 200);
  const table = await until('the running process followed', 20_000, async () => {
    const s = await status();
    return s.capture.followed > 0 ? s.capture.followed : undefined;
  });
  assert.equal(table, 1, 'the exited process was followed again from its late span');
  running.kill();
  await until('the running process gone from the table', 20_000, followed(0));

  const second = startWorkload('switch_pingpong', ['--rate', '1000', '--seconds', '1', '--wait-for-go'], {}, [
    join(WORKLOADS, 'as_pid'),
    String(pid),
  ]);
  t.after(() => {
    second.truth.catch(() => undefined); // killed before its end
    second.child.kill();
  });
  // Its spans name the pid until it is followed: the exit's record may be read after the table emptied.
  const before = await until('the new process with that pid followed from its spans', 20_000, async () => {
    assert.equal((await sidecar.postSpans(pid)).status, 200);
    const s = await status();
    return s.capture.followed === 1 ? s : undefined;
  });
  second.child.stdin.end('go\n');
  const truth = (await second.truth) as { pid: number; futex_waits: number[] };
  assert.equal(truth.pid, pid, "the new process had the first one's pid");
  // Covered: a summary of short waits counts as the waits it sums.
  const waits = truth.futex_waits.reduce((a, b) => a + b, 0);
  await until("every wait of the new process's delivered", 20_000, async () =>
    ((await status()).capture.covered['futex.wait'] ?? 0) >= (before.capture.covered['futex.wait'] ?? 0) + waits
      ? true
      : undefined,
  );
});
