import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readlinkSync, realpathSync } from 'node:fs';
import { test } from 'node:test';
import { packageRoot } from '../../src/install.js';
import { ProcessTable, parseContainerId, parseNsPid } from '../../src/kernel/processes.js';
import { untilZombie } from '../bpf/session.js';

const ID = 'a'.repeat(12) + '0123456789abcdef'.repeat(3) + 'b'.repeat(4);

test('this process is described from /proc: comm, executable, NSpid', () => {
  const info = new ProcessTable().get(process.pid);
  assert.equal(info.comm, readlinkSync('/proc/self/exe').split('/').pop()?.slice(0, 15));
  assert.equal(info.executable, process.execPath);
  assert.equal(info.nspid?.[0], process.pid);
});

test("a process whose main thread ended first is described by its other threads' executable", async (t) => {
  const program = realpathSync(`${packageRoot}test/fixtures/build/workloads/cpu_victim`);
  const victim = spawn(program, ['--leader-exits', '--seconds', '3'], { stdio: 'ignore' });
  t.after(() => victim.kill());
  await untilZombie(victim.pid ?? 0);
  assert.equal(new ProcessTable().get(victim.pid ?? 0).executable, program);
});

test('an exited process is described by its pid alone', () => {
  const info = new ProcessTable().get(0x3fffffff);
  assert.deepEqual(info, { pid: 0x3fffffff });
});

test('the table stays within its capacity', () => {
  const table = new ProcessTable(2);
  for (const pid of [process.pid, process.ppid, 1]) table.get(pid);
  assert.throws(() => new ProcessTable(0), RangeError);
});

test('container ids are found in docker, containerd, cri-o and podman cgroup paths', () => {
  assert.equal(ID.length, 64);
  const samples = [
    `12:memory:/docker/${ID}`,
    `0::/system.slice/docker-${ID}.scope`,
    `0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234.slice/cri-containerd-${ID}.scope`,
    `11:pids:/kubepods/besteffort/pod0b9e-11/${ID}`,
    `0::/kubepods.slice/kubepods-pod1.slice/crio-${ID}.scope`,
    `0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-${ID}.scope/container`,
  ];
  for (const cgroup of samples) assert.equal(parseContainerId(`5:cpuset:/\n${cgroup}\n`), ID, cgroup);
});

test('hosts, conmon and short ids are not containers', () => {
  assert.equal(parseContainerId('0::/user.slice/user-1000.slice/session-2.scope\n'), undefined);
  assert.equal(parseContainerId(`0::/machine.slice/libpod-conmon-${ID}.scope\n`), undefined);
  assert.equal(parseContainerId('4:memory:/process_api/0c4a050a30c17648280f20061ca44b9b\n'), undefined);
});

test('NSpid lists the pid in each namespace, outermost first', () => {
  assert.deepEqual(parseNsPid('Name:\tpython3\nNSpid:\t4242\t7\t1\nTgid:\t4242\n'), [4242, 7, 1]);
  assert.deepEqual(parseNsPid('NSpid:\t31\n'), [31]);
  assert.equal(parseNsPid('Name:\tx\n'), undefined);
});
