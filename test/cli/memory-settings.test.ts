// The installed `causeway` command (bin/causeway) starts the sidecar with bounded memory settings,
// unless the user set their own: read from the running sidecar's /proc/PID.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { COMMAND, childrenOf, kernelAvailable } from '../bpf/session.js';
import { RUN_HELP, SIDECAR_YOUNG_GENERATION } from '../../src/cli/run.js';
import { startSidecar, until } from './sidecar.js';

/** The process's environment and command line, as the kernel holds them. */
function processOf(pid: number): { environment: string[]; argv: string[]; executable: string } {
  const nulSeparated = (file: string) => readFileSync(`/proc/${String(pid)}/${file}`, 'utf8').split('\0');
  return {
    environment: nulSeparated('environ'),
    argv: nulSeparated('cmdline'),
    executable: readlinkSync(`/proc/${String(pid)}/exe`),
  };
}

/** The command through a symlink elsewhere, as npm's bin link and the image's /usr/local/bin/causeway are. */
function linkedCommand(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'causeway-bin-'));
  t.after(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  const link = join(dir, 'causeway');
  symlinkSync(COMMAND, link);
  return link;
}

test('`causeway run` runs node itself, with MALLOC_ARENA_MAX=2 and a bounded young generation, as --help says', async (t) => {
  if (!kernelAvailable(t)) return;
  const sidecar = await startSidecar(
    'http://127.0.0.1:9',
    '127.0.0.1:0',
    [],
    ['env', '-u', 'MALLOC_ARENA_MAX', '-u', 'NODE_OPTIONS', linkedCommand(t)],
  );
  t.after(() => sidecar.stop());
  const { environment, argv, executable } = processOf(sidecar.pid);
  // The command execs node: the pid started is the sidecar's, the loader its child.
  assert.equal(executable, process.execPath);
  assert.ok(argv.includes('run') && argv.some((arg) => arg.endsWith('/dist/src/cli/main.js')), argv.join(' '));
  await until('the loader to start', 15_000, () => (childrenOf(sidecar.pid).length > 0 ? true : undefined));
  assert.ok(environment.includes('MALLOC_ARENA_MAX=2'), environment.join(' '));
  // The flag the bench measures the sidecar's code under (test/bench/main.ts), and --help names.
  assert.ok(argv.includes(SIDECAR_YOUNG_GENERATION), argv.join(' '));
  assert.ok(
    RUN_HELP.includes(SIDECAR_YOUNG_GENERATION) && RUN_HELP.includes('MALLOC_ARENA_MAX=2'),
    'run --help says what is set',
  );
  assert.equal(await sidecar.stop(), 0);
});

test("the user's own MALLOC_ARENA_MAX and NODE_OPTIONS' --max-semi-space-size win over the command's", async (t) => {
  if (!kernelAvailable(t)) return;
  const sidecar = await startSidecar(
    'http://127.0.0.1:9',
    '127.0.0.1:0',
    [],
    ['env', 'MALLOC_ARENA_MAX=4', 'NODE_OPTIONS=--max-semi-space-size=16', linkedCommand(t)],
  );
  t.after(() => sidecar.stop());
  const { environment, argv } = processOf(sidecar.pid);
  assert.ok(environment.includes('MALLOC_ARENA_MAX=4'), environment.join(' '));
  assert.ok(!environment.includes('MALLOC_ARENA_MAX=2'));
  assert.deepEqual(
    argv.filter((arg) => arg.includes('semi-space')),
    [],
    'no flag on the command line to override NODE_OPTIONS',
  );
  assert.equal(await sidecar.stop(), 0);
});
