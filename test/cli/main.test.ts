import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { packageRoot } from '../../src/install.js';

// The installed command (package.json "bin"): its exit status and output are node's own.
const causeway = (...args: string[]) => spawnSync(`${packageRoot}bin/causeway`, args, { encoding: 'utf8' });

/** `causeway doctor` where `bpftool feature probe` lists these helpers for kprobe programs. */
function doctorWithKprobeHelpers(t: TestContext, helpers: string[]) {
  const bin = mkdtempSync(join(tmpdir(), 'causeway-bpftool-'));
  t.after(() => {
    rmSync(bin, { recursive: true, force: true });
  });
  const probe = [
    'eBPF map_type ringbuf is available',
    'eBPF helpers supported for program type kprobe:',
    ...helpers.map((helper) => `\t- ${helper}`),
    '',
    'eBPF helpers supported for program type sched_cls:',
    '\t- bpf_get_attach_cookie',
  ].join('\n');
  writeFileSync(join(bin, 'bpftool'), `#!/bin/sh\nprintf '%s\\n' '${probe}'\n`);
  chmodSync(join(bin, 'bpftool'), 0o755);
  return spawnSync(`${packageRoot}bin/causeway`, ['doctor'], {
    encoding: 'utf8',
    env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}` },
  });
}

test('--help lists the commands', () => {
  const run = causeway('--help');
  assert.equal(run.status, 0);
  assert.match(run.stdout, /doctor +check that this machine can capture/);
  assert.match(run.stdout, /capture +print kernel events/);
});

test('each command has its own --help, also reachable as `help COMMAND`', () => {
  for (const command of ['doctor', 'capture']) {
    const run = causeway(command, '--help');
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, new RegExp(`^Usage: causeway ${command}`));
    assert.equal(causeway('help', command).stdout, run.stdout);
  }
  assert.match(causeway('capture', '--help').stdout, /--min-duration-us N/);
});

test('bad arguments fail with exit code 2, one clear line and a pointer to --help', () => {
  const cases: [string[], RegExp][] = [
    [['capture', '--pid', 'abc'], /^causeway capture: --pid expects a positive integer, got "abc"$/m],
    [['capture', '--duration=-1'], /--duration expects a positive number, got "-1"/],
    [['capture', '--duration', '0'], /--duration expects a positive number/],
    [['capture', '--min-duration-us', '1.5'], /--min-duration-us expects a non-negative integer/],
    [['capture', '--lib', '/nonexistent/libcudart.so'], /--lib \/nonexistent\/libcudart.so: no such file/],
    [['capture', '--frobnicate'], /Unknown option '--frobnicate'/],
    [['doctor', '--pid', '0'], /--pid expects a positive integer/],
    [['launch'], /^causeway: no command "launch"; commands: doctor, capture, demo, run, mcp$/m],
  ];
  for (const [args, message] of cases) {
    const run = causeway(...args);
    assert.equal(run.status, 2, args.join(' '));
    assert.match(run.stderr, message);
    assert.match(run.stderr, /--help` for usage/);
    assert.equal(run.stdout, '');
  }
});

test('doctor fails a kernel whose kprobe programs lack bpf_get_attach_cookie, which the CUDA probes read', (t) => {
  const without = doctorWithKprobeHelpers(t, ['bpf_map_lookup_elem', 'bpf_ringbuf_reserve']);
  assert.equal(without.status, 1, without.stdout);
  assert.match(
    without.stdout,
    /^FAIL cookies +bpftool: kprobe programs have no bpf_get_attach_cookie \(Linux 5\.15\)/m,
  );
  const withIt = doctorWithKprobeHelpers(t, ['bpf_map_lookup_elem', 'bpf_get_attach_cookie']);
  assert.match(withIt.stdout, /^ok +cookies +bpftool: kprobe programs have bpf_get_attach_cookie$/m);
});

test('doctor reports one line per check, and a missing pid as a failure', () => {
  const run = causeway('doctor', '--pid', '1073741823');
  assert.equal(run.status, 1);
  const lines = run.stdout.trimEnd().split('\n');
  assert.deepEqual(
    lines.map((line) => line.split(/\s+/)[1]),
    ['privileges', 'btf', 'tracefs', 'ringbuf', 'cookies', 'loader', 'pid'],
  );
  assert.match(lines[6] ?? '', /^FAIL pid 1073741823 +cannot read \/proc\/1073741823\/maps: ENOENT/);
});
