// docker/Dockerfile built with podman and run for real, with the privileges README.md documents
// for containers: `causeway doctor`, a capture of a CUDA workload that another user runs on the
// host, and `causeway run` turning healthy and stopping cleanly, as the image's user: its Node
// process holds no capability, the loader exactly its file capabilities. The build is kept
// under a tag named after its inputs, so a run whose inputs did not change reuses it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { test, type TestContext } from 'node:test';
import { CAPABILITY_BITS, LOADER_FILE_CAPABILITIES } from '../../src/cli/doctor.js';
import * as A from '../../src/semconv/attributes.js';
import { Capture, kernelAvailable, privateGpu, settle, single, startWorkload } from '../bpf/session.js';
import { until } from '../cli/sidecar.js';
import { freePort } from '../e2e/backends.js';
import { daemonSet } from './manifests.js';
import { ROOT, installed, output, podman, run } from './tools.js';

const BASE = 'docker.io/library/debian:trixie-slim';
const REPOSITORY = 'localhost/causeway';
/** What the Dockerfile copies: a change to any of these makes a new image. */
const INPUTS = ['docker/Dockerfile', 'package.json', 'package-lock.json', 'tsconfig.json', 'src', 'bpf', 'bin'];
const BUILD_TIMEOUT_MS = 40 * 60_000;
/** The image's user and group. */
const USER = 10001;

/** The container privileges of README.md's "Deployment", as podman flags. */
const PRIVILEGES = [
  '--pid=host',
  '--cap-drop=ALL',
  '--cap-add=BPF,PERFMON,SYS_ADMIN,SYS_PTRACE,DAC_READ_SEARCH',
  '--security-opt=apparmor=unconfined',
  '--volume=/sys/kernel/tracing:/sys/kernel/tracing:ro',
];

/**
 * What podman needs on this project's VMs: runc, since crun refuses their hybrid cgroup layout
 * (a cgroup2 hierarchy with the hugetlb controller next to cgroup v1); and lower ulimits than
 * podman's defaults (RLIMIT_NOFILE 1048576), since raising a limit needs CAP_SYS_RESOURCE, which
 * root lacks here. 4096 processes are plenty for Causeway's containers.
 */
function runtimeFlags(): string[] {
  const nofile = spawnSync('bash', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).stdout.trim();
  return ['--runtime=runc', `--ulimit=nofile=${nofile}:${nofile}`, '--ulimit=nproc=4096:4096'];
}

function files(path: string): string[] {
  if (!statSync(path).isDirectory()) return [path];
  // bpf/build holds a local build; the Dockerfile copies only the sources.
  if (relative(ROOT, path) === join('bpf', 'build')) return [];
  return readdirSync(path)
    .sort()
    .flatMap((name) => files(join(path, name)));
}

/** The tag of the image built from the current inputs on the current base image. */
function inputsTag(): string {
  const hash = createHash('sha256');
  const base = run(podman, ['image', 'inspect', '--format', '{{.Id}}', BASE]);
  assert.equal(base.status, 0, `the base image ${BASE} (bash test/setup.sh makes it): ${output(base)}`);
  hash.update(base.stdout);
  for (const file of INPUTS.flatMap((input) => files(join(ROOT, input)))) {
    hash.update(relative(ROOT, file)).update('\0').update(readFileSync(file)).update('\0');
  }
  return `${REPOSITORY}:inputs-${hash.digest('hex').slice(0, 16)}`;
}

let image: string | undefined;

/** Builds the image unless one from the same inputs exists. */
function builtImage(t: TestContext): string {
  image ??= (() => {
    const tag = inputsTag();
    if (run(podman, ['image', 'exists', tag]).status === 0) {
      t.diagnostic(`reusing ${tag}: its inputs did not change`);
      return tag;
    }
    const started = Date.now();
    // Behind a TLS-intercepting proxy, npm in the build needs this machine's CA bundle.
    const ca = '/etc/ssl/certs/ca-certificates.crt';
    const secret = existsSync(ca) ? [`--secret=id=ca-certificates,src=${ca}`] : [];
    const build = run(
      podman,
      [
        'build',
        ...runtimeFlags(),
        '--network=host',
        '--format=docker', // the OCI format has no HEALTHCHECK
        ...secret,
        '--ignorefile=docker/Dockerfile.dockerignore',
        '--file=docker/Dockerfile',
        `--tag=${tag}`,
        '.',
      ],
      {},
      BUILD_TIMEOUT_MS,
    );
    assert.equal(build.status, 0, output(build).slice(-8000));
    t.diagnostic(`built ${tag} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    const older = run(podman, ['images', '--format', '{{.Repository}}:{{.Tag}}', REPOSITORY]).stdout.split('\n');
    // Older builds lose their tag; their layers stay a week as the cache of the next builds
    // (a change to src/ then rebuilds only from `COPY src`).
    // The name twice: `untag NAME` alone removes every name of its image, this build's too when the
    // build reproduced an older image (inputs that change nothing in it).
    for (const old of older.filter((name) => name.startsWith(`${REPOSITORY}:inputs-`) && name !== tag))
      run(podman, ['untag', old, old]);
    run(podman, ['image', 'prune', '--force', '--filter=until=168h']);
    return tag;
  })();
  return image;
}

/** A process's uid and capability sets, from /proc/PID/status. */
function credentials(pid: number) {
  const status = readFileSync(`/proc/${String(pid)}/status`, 'utf8');
  const field = (name: string) => new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(status)?.[1] ?? '';
  const caps = (name: string) => BigInt(`0x${field(name)}`);
  return {
    uid: Number(field('Uid').split(/\s+/)[0]),
    effective: caps('CapEff'),
    permitted: caps('CapPrm'),
    inheritable: caps('CapInh'),
    ambient: caps('CapAmb'),
  };
}

/** The processes whose parent is `pid` and whose command is `comm`. */
function children(pid: number, comm: string): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((entry) => {
      try {
        const status = readFileSync(`/proc/${entry}/status`, 'utf8');
        return status.includes(`\nPPid:\t${String(pid)}\n`) && status.startsWith(`Name:\t${comm}\n`);
      } catch {
        return false; // exited meanwhile
      }
    })
    .map(Number);
}

function ready(t: TestContext): boolean {
  return kernelAvailable(t) && installed(t, podman);
}

test(
  'the image runs `causeway run` by default as its own user, clearing ambient capabilities, has a HEALTHCHECK, and no build tools',
  { timeout: BUILD_TIMEOUT_MS },
  (t) => {
    if (!ready(t)) return;
    const tag = builtImage(t);
    const inspect = run(podman, ['image', 'inspect', tag]);
    assert.equal(inspect.status, 0, output(inspect));
    // podman keeps the HEALTHCHECK beside Config (Docker keeps it inside).
    const [{ Config: config, Healthcheck: healthcheck }] = JSON.parse(inspect.stdout) as [
      { Config: { Entrypoint: string[]; Cmd: string[]; User: string }; Healthcheck?: { Test: string[] } },
    ];
    const clearAmbient = ['setpriv', '--ambient-caps=-all', '--inh-caps=-all', '--'];
    assert.deepEqual([...config.Entrypoint, ...config.Cmd], [...clearAmbient, 'causeway', 'run']);
    assert.equal(config.User, `${String(USER)}:${String(USER)}`);
    assert.deepEqual(healthcheck?.Test.slice(0, 2 + clearAmbient.length), ['CMD', ...clearAmbient, 'node']);
    assert.match(healthcheck.Test.join(' '), /CAUSEWAY_HEALTH_URL/);
    const tools = run(podman, [
      'run',
      '--rm',
      ...runtimeFlags(),
      '--entrypoint=sh',
      tag,
      '-c',
      'command -v clang gcc make npm tsc',
    ]);
    assert.equal(tools.stdout, '', `build tools in the runtime image: ${tools.stdout}`);
    // A new named volume (Compose's store) starts as a copy of the image's directory: the user's.
    const volume = `causeway-test-store-${String(process.pid)}`;
    t.after(() => run(podman, ['volume', 'rm', '--force', volume]));
    const owner = run(podman, [
      'run',
      '--rm',
      ...runtimeFlags(),
      `--volume=${volume}:/var/lib/causeway`,
      '--entrypoint=stat',
      tag,
      '--format=%u:%g %a',
      '/var/lib/causeway',
    ]);
    assert.equal(owner.stdout, `${String(USER)}:${String(USER)} 750\n`, output(owner));
  },
);

test('causeway doctor passes in the image with the documented privileges', { timeout: BUILD_TIMEOUT_MS }, (t) => {
  if (!ready(t)) return;
  const tag = builtImage(t);
  const doctor = run(podman, ['run', '--rm', '--no-healthcheck', ...runtimeFlags(), ...PRIVILEGES, tag, 'doctor']);
  assert.equal(doctor.status, 0, output(doctor));
  for (const check of ['privileges', 'btf', 'tracefs', 'ringbuf', 'cookies', 'loader'])
    assert.match(doctor.stdout, new RegExp(`^ok +${check} `, 'm'));
  assert.match(
    doctor.stdout,
    new RegExp(
      `^ok +privileges +uid ${String(USER)}, CapEff 0+: the loader alone is privileged, by its file capabilities ${LOADER_FILE_CAPABILITIES.join(',')}$`,
      'm',
    ),
  );
  // Under no_new_privs exec of the loader grants nothing, and the doctor says why.
  const confined = run(podman, [
    'run',
    '--rm',
    '--no-healthcheck',
    ...runtimeFlags(),
    ...PRIVILEGES,
    '--security-opt=no-new-privileges',
    tag,
    'doctor',
  ]);
  assert.equal(confined.status, 1, output(confined));
  assert.match(confined.stdout, /^FAIL privileges .*: no_new_privs is set /m);
});

test(
  'a capture in the image sees the CUDA sync and the scheduling of a process another user runs on the host',
  { timeout: BUILD_TIMEOUT_MS },
  async (t) => {
    if (!ready(t)) return;
    const tag = builtImage(t);
    const inImage = [podman, 'run', '--rm', '--no-healthcheck', ...runtimeFlags(), ...PRIVILEGES, tag];
    const capture = new Capture(['--comm', 'gpu_sync'], inImage);
    t.after(() => capture.stop());
    await capture.ready(60_000);
    // nobody's process: reading its /proc/PID/maps and root takes CAP_SYS_PTRACE.
    const nobody = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];
    const workload = startWorkload('gpu_sync', ['--kernel-ms', '200', '--start-delay-ms', '50'], privateGpu(t), nobody);
    const truth = await workload.truth;
    await settle();
    await capture.stop();

    const sync = single(
      capture.of('cuda.sync', (e) => e.pid === truth.pid),
      'cuda.sync',
    );
    // Demangled by c++filt, which the image carries.
    assert.deepEqual(sync.attributes[A.ATTR_CAUSEWAY_CUDA_INFLIGHT_KERNELS], [
      'matmul_big(float*, float*, float*, int)',
    ]);
    assert.ok(capture.of('sched.blocked', (e) => e.pid === truth.pid).length > 0, capture.stderr);
  },
);

test('causeway run in the image turns healthy and exits 0 on SIGTERM', { timeout: BUILD_TIMEOUT_MS }, async (t) => {
  if (!ready(t)) return;
  const tag = builtImage(t);
  const name = `causeway-test-${process.pid}`;
  const [grpc, http, mcp, metrics] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  t.after(() => run(podman, ['rm', '--force', name]));
  // The store on a host directory as the kubelet creates a hostPath (root's, 0755), given to the
  // image's user by the DaemonSet's init container, run with its command and securityContext.
  const store = mkdtempSync(join(tmpdir(), 'causeway-image-store-'));
  t.after(() => {
    rmSync(store, { recursive: true, force: true });
  });
  chmodSync(store, 0o755);
  const init = daemonSet()?.initContainers[0];
  assert.ok(init?.command !== undefined);
  const [command, ...args] = init.command as [string, ...string[]];
  const owned = run(podman, [
    'run',
    '--rm',
    ...runtimeFlags(),
    `--user=${String(init.securityContext.runAsUser)}`,
    ...init.securityContext.capabilities.drop.map((cap) => `--cap-drop=${cap}`),
    ...init.securityContext.capabilities.add.map((cap) => `--cap-add=${cap}`),
    ...(init.securityContext.allowPrivilegeEscalation === false ? ['--security-opt=no-new-privileges'] : []),
    `--volume=${store}:${init.volumeMounts[0]?.mountPath ?? ''}`,
    `--entrypoint=${command}`,
    tag,
    ...args,
  ]);
  assert.equal(owned.status, 0, output(owned));
  const started = run(podman, [
    'run',
    '--detach',
    `--name=${name}`,
    '--network=host',
    ...runtimeFlags(),
    ...PRIVILEGES,
    `--volume=${store}:/var/lib/causeway`,
    `--env=CAUSEWAY_HEALTH_URL=http://127.0.0.1:${metrics}/metrics`,
    tag,
    'run',
    `--otlp-grpc=127.0.0.1:${grpc}`,
    `--otlp-http=127.0.0.1:${http}`,
    `--mcp=127.0.0.1:${mcp}`,
    `--metrics=127.0.0.1:${metrics}`,
  ]);
  assert.equal(started.status, 0, output(started));
  // The image's own HEALTHCHECK, run the way the engine runs it.
  await until('the container to turn healthy', 60_000, () =>
    run(podman, ['healthcheck', 'run', name]).status === 0 ? true : undefined,
  );
  // The container's first process is Node (setpriv and env exec it): no capability in any set,
  // although podman hands the user the added ones as ambient capabilities.
  const node = Number(run(podman, ['inspect', '--format', '{{.State.Pid}}', name]).stdout);
  const none = { uid: USER, effective: 0n, permitted: 0n, inheritable: 0n, ambient: 0n };
  assert.deepEqual(credentials(node), none);
  const [loader, ...others] = children(node, 'causeway-loader');
  assert.ok(
    loader !== undefined && others.length === 0,
    `loaders of ${String(node)}: ${String(loader)} ${others.join()}`,
  );
  const fileCapabilities = Object.values(CAPABILITY_BITS).reduce((mask, bit) => mask | (1n << bit), 0n);
  assert.deepEqual(credentials(loader), { ...none, effective: fileCapabilities, permitted: fileCapabilities });
  const stop = run(podman, ['stop', '--time=20', name]);
  assert.equal(stop.status, 0, output(stop));
  const state = run(podman, ['inspect', '--format', '{{.State.ExitCode}}', name]);
  assert.equal(state.stdout.trim(), '0', run(podman, ['logs', name]).stderr);
  const written = statSync(join(store, 'store.duckdb'));
  assert.deepEqual([written.uid, written.gid], [USER, USER]);
});
