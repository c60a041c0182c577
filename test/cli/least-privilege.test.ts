// `causeway run` as a user other than root holding no capability, installed as an administrator
// would: the loader alone carries the file capabilities `causeway doctor` names. The sidecar
// still captures (a root process's CUDA calls through the library's probes, a followed process's
// futex waits) and answers MCP; the process serving MCP holds no capability (CapEff 0), and
// the loader exactly those. Where exec of the loader would not grant them (no_new_privs, a
// bounding set without one, a nosuid mount, no file capabilities), the doctor says which.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CAPABILITY_BITS, LOADER_FILE_CAPABILITIES } from '../../src/cli/doctor.js';
import type { LoaderReport } from '../../src/kernel/capture.js';
import {
  AS_USER,
  USER,
  credentials,
  installForUser,
  kernelAvailable,
  privateGpu,
  startWorkload,
  temporaryDir,
} from '../bpf/session.js';
import { startSidecar, until } from './sidecar.js';

test('the sidecar runs as a user without capabilities, the loader alone holding its file capabilities', async (t) => {
  if (!kernelAvailable(t)) return;
  const root = installForUser(t);
  const cli = join(root, 'dist', 'src', 'cli', 'main.js');
  const store = temporaryDir(t, 'causeway-store-');
  chownSync(store, USER, USER);

  const doctor = spawnSync(AS_USER[0] as string, [...AS_USER.slice(1), process.execPath, cli, 'doctor'], {
    encoding: 'utf8',
  });
  assert.match(
    doctor.stdout,
    new RegExp(
      `^ok +privileges +uid ${String(USER)}, CapEff 0+: the loader alone is privileged, by its file capabilities ${LOADER_FILE_CAPABILITIES.join(',')}$`,
      'm',
    ),
    doctor.stdout + doctor.stderr,
  );

  const sidecar = await startSidecar(
    'http://127.0.0.1:9',
    '127.0.0.1:0',
    ['--store-path', join(store, 'store.duckdb')],
    [...AS_USER, process.execPath, cli],
  );
  t.after(() => sidecar.stop());
  const gpu = startWorkload('launch_storm', ['--rate', '200', '--seconds', '600'], privateGpu(t));
  const plain = startWorkload('switch_pingpong', ['--rate', '1000', '--seconds', '600'], {}, AS_USER);
  t.after(() => {
    for (const workload of [gpu, plain]) {
      workload.truth.catch(() => undefined); // killed before its end
      workload.child.kill();
    }
  });
  assert.equal((await sidecar.postSpans(plain.pid)).status, 200);

  const mcp = new Client({ name: 'least-privilege', version: '1' });
  await mcp.connect(new StreamableHTTPClientTransport(new URL(sidecar.mcpUrl)));
  t.after(() => mcp.close());
  for (const [pid, kind] of [
    [gpu.pid, 'cuda.launch'],
    [plain.pid, 'futex.wait'],
  ] as const)
    await until(`${kind} events of pid ${String(pid)} in the store`, 20_000, async () => {
      const sql = `SELECT count(*) FROM kernel_events WHERE pid = ${String(pid)} AND kind LIKE '${kind}%'`;
      const result = await mcp.callTool({ name: 'query_sql', arguments: { sql } });
      return Number((result.structuredContent as { rows: unknown[][] }).rows[0]?.[0]) > 0 ? true : undefined;
    });

  // The process listening on the MCP port, as the kernel says.
  const port = new URL(sidecar.mcpUrl).port;
  const listening = execFileSync('ss', ['-Hltnp', `sport = :${port}`], { encoding: 'utf8' });
  const mcpPid = Number(/pid=(\d+)/.exec(listening)?.[1]);
  assert.equal(mcpPid, sidecar.pid, listening);
  assert.deepEqual(credentials(mcpPid), { uid: USER, effective: 0n, permitted: 0n });

  const status = await mcp.callTool({ name: 'status', arguments: {} });
  const loaderPid = (status.structuredContent as { loader: LoaderReport }).loader.pid ?? 0;
  const expected = Object.values(CAPABILITY_BITS).reduce((mask, bit) => mask | (1n << bit), 0n);
  assert.deepEqual(credentials(loaderPid), { uid: USER, effective: expected, permitted: expected });
});

test('causeway doctor names what keeps exec of the loader from granting its file capabilities', (t) => {
  if (!kernelAvailable(t)) return;
  const root = installForUser(t);
  const cli = join(root, 'dist', 'src', 'cli', 'main.js');
  /** The doctor's privileges line run as the user, `prefix` before setpriv and `confine` after its user options. */
  const privileges = (confine: string[], prefix: string[] = []) => {
    const argv = [...prefix, ...AS_USER, ...confine, process.execPath, cli, 'doctor'];
    const doctor = spawnSync(argv[0] as string, argv.slice(1), { encoding: 'utf8' });
    assert.equal(doctor.status, 1, doctor.stdout + doctor.stderr);
    return /^(\S+) +privileges +(.*)$/m.exec(doctor.stdout)?.slice(1);
  };
  const failing = (obstacle: string) => [
    'FAIL',
    `uid ${String(USER)}, CapEff 0000000000000000 lacks CAP_BPF and CAP_PERFMON, and exec of the loader would not grant its file capabilities: ${obstacle}`,
  ];

  assert.deepEqual(
    privileges(['--no-new-privs']),
    failing(
      'no_new_privs is set (Kubernetes allowPrivilegeEscalation: false, docker --security-opt no-new-privileges, setpriv --no-new-privs), under which exec grants no file capability',
    ),
  );

  const bounding = /^CapBnd:\s*([0-9a-f]+)$/m.exec(
    execFileSync(
      AS_USER[0] as string,
      [...AS_USER.slice(1), '--bounding-set=-sys_ptrace', 'cat', '/proc/self/status'],
      {
        encoding: 'utf8',
      },
    ),
  )?.[1];
  assert.deepEqual(
    privileges(['--bounding-set=-sys_ptrace']),
    failing(
      `the bounding set (CapBnd ${bounding ?? '?'}) lacks cap_sys_ptrace, and exec grants no capability beyond it (in a container: add them, --cap-add or capabilities.add)`,
    ),
  );

  // The installation bind-mounted nosuid onto itself, in a mount namespace of the doctor's own.
  const nosuid = [
    'unshare',
    '--mount',
    '--propagation=private',
    'sh',
    '-c',
    'mount --bind "$0" "$0" && mount -o remount,bind,nosuid "$0" "$0" && exec "$@"',
    root,
  ];
  assert.deepEqual(
    privileges([], nosuid),
    failing(`the loader is on ${root}, mounted nosuid, where file capabilities are ignored`),
  );

  const loader = join(root, 'bpf', 'build', 'causeway-loader');
  execFileSync('setcap', ['-r', loader]);
  assert.deepEqual(
    privileges([]),
    failing(
      `the loader lacks the file capabilities ${LOADER_FILE_CAPABILITIES.join(',')}: run as root (sudo), or, as root, setcap ${LOADER_FILE_CAPABILITIES.join(',')}+ep ${loader}`,
    ),
  );
});
