// `causeway doctor`: whether this machine can capture, one line per check.
import { execFileSync, spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { release } from 'node:os';
import { parseArgs } from 'node:util';
import { loaderPath } from '../install.js';
import { FrameReader } from '../kernel/frames.js';
import { GpuProcesses } from '../kernel/gpu-processes.js';
import { runningThreadDir } from '../kernel/processes.js';
import { parseMessage } from '../kernel/loader.js';
import { FrameType } from '../kernel/record.js';
import { definesFunction } from '../kernel/symbols.js';
import { positiveInteger } from './usage.js';

export const DOCTOR_HELP = `Usage: causeway doctor [--pid PID]... [--gpu]

Checks that this machine can capture kernel events, one line per check:
  privileges   root, or CAP_BPF and CAP_PERFMON in the effective set, or the loader
               alone privileged by its file capabilities (cap_bpf, cap_perfmon,
               cap_sys_admin, cap_sys_ptrace, cap_dac_read_search), the user's process
               holding none; names what keeps exec of the loader from granting them
               (no_new_privs, a bounding set without them, a nosuid mount)
  btf          /sys/kernel/btf/vmlinux (the kernel's type information, for CO-RE)
  tracefs      tracefs mounted at /sys/kernel/tracing (or under debugfs)
  ringbuf      BPF ring buffer support (bpftool feature probe, else kernel >= 5.8)
  cookies      bpf_get_attach_cookie for uprobes, which the CUDA probes read (bpftool
               feature probe, else kernel >= 5.15)
  loader       the built loader, bpf/build/causeway-loader
  pid PID      for each --pid: the CUDA libraries (libcudart.so*, libcuda.so*) it has
               mapped, or its executable defining cudaLaunchKernel (static runtime);
               a process without CUDA is a warning: its other kernel events are captured
  gpu          with --gpu: every process using CUDA now, found as capture finds them
               (a libcudart or libcuda mapped, or a static runtime), with the libraries
               each uses; at most 64 are listed

Each line starts with ok, warn or FAIL. Exit status 0 when capture can run, 1 otherwise.

Options:
  --pid PID    a process to check for CUDA libraries (repeatable)
  --gpu        list the processes using CUDA
  -h, --help   this help
`;

type Status = 'ok' | 'warn' | 'FAIL';
interface Check {
  name: string;
  status: Status;
  detail: string;
}

/**
 * What the loader needs to run as a user other than root, as its file capabilities: BPF and
 * PERFMON (programs, maps, tracing attachments), SYS_ADMIN (uprobes since CVE-2025-38466's fix),
 * SYS_PTRACE (other users' /proc/PID/maps, exe, root and mem) and DAC_READ_SEARCH (tracefs is
 * root's, mode 0700). The Node process then needs none.
 */
export const LOADER_FILE_CAPABILITIES = [
  'cap_bpf',
  'cap_perfmon',
  'cap_sys_admin',
  'cap_sys_ptrace',
  'cap_dac_read_search',
] as const;
/** Bit numbers of LOADER_FILE_CAPABILITIES, from linux/capability.h. */
export const CAPABILITY_BITS: Record<(typeof LOADER_FILE_CAPABILITIES)[number], bigint> = {
  cap_dac_read_search: 2n,
  cap_sys_ptrace: 19n,
  cap_sys_admin: 21n,
  cap_perfmon: 38n,
  cap_bpf: 39n,
};
const SETCAP = `setcap ${LOADER_FILE_CAPABILITIES.join(',')}+ep ${loaderPath}`;

/**
 * The loader's file capabilities with both e and p set, as getcap lists them from the file's
 * security.capability attribute; undefined when getcap itself is missing.
 */
function loaderFileCapabilities(): string[] | undefined {
  const run = spawnSync('getcap', [loaderPath], { encoding: 'utf8' });
  if (run.error !== undefined) return undefined;
  const [names, flags] = run.stdout.trim().split(' ').at(-1)?.split('=') ?? [];
  return flags?.includes('e') === true && flags.includes('p') ? (names ?? '').split(',') : [];
}

/** The mount holding `path` (the last mounted over the longest prefix), from /proc/self/mountinfo. */
function mountOf(path: string): { point: string; options: string[] } | undefined {
  const unescape = (field: string) =>
    field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
  let found: { point: string; options: string[] } | undefined;
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const fields = line.split(' ');
    if (fields.length < 6) continue;
    const point = unescape(fields[4] ?? '');
    const holds = point === '/' || path === point || path.startsWith(`${point}/`);
    if (holds && point.length >= (found?.point.length ?? 0)) found = { point, options: (fields[5] ?? '').split(',') };
  }
  return found;
}

/**
 * Why exec of the loader by this process would not give it its file capabilities; none when
 * it would. The kernel grants them only within the bounding set, never under no_new_privs,
 * and ignores them on a nosuid mount.
 */
function fileCapabilityObstacles(status: string): string[] {
  const obstacles: string[] = [];
  const fileCaps = loaderFileCapabilities();
  const missing = LOADER_FILE_CAPABILITIES.filter((cap) => fileCaps?.includes(cap) !== true);
  if (fileCaps === undefined)
    obstacles.push(`getcap (libcap2-bin) is missing, so the loader's file capabilities cannot be read`);
  else if (missing.length > 0)
    obstacles.push(
      `the loader lacks the file capabilities ${missing.join(',')}: run as root (sudo), or, as root, ${SETCAP}`,
    );
  if (/^NoNewPrivs:\s*1$/m.test(status))
    obstacles.push(
      'no_new_privs is set (Kubernetes allowPrivilegeEscalation: false, docker --security-opt no-new-privileges, setpriv --no-new-privs), under which exec grants no file capability',
    );
  const bounding = /^CapBnd:\s*([0-9a-f]+)$/m.exec(status)?.[1] ?? '0';
  const unbounded = LOADER_FILE_CAPABILITIES.filter(
    (cap) => (BigInt(`0x${bounding}`) & (1n << CAPABILITY_BITS[cap])) === 0n,
  );
  if (unbounded.length > 0)
    obstacles.push(
      `the bounding set (CapBnd ${bounding}) lacks ${unbounded.join(',')}, and exec grants no capability beyond it (in a container: add them, --cap-add or capabilities.add)`,
    );
  let realLoader = loaderPath;
  try {
    realLoader = realpathSync(loaderPath);
  } catch {
    // A missing loader is the loader check's to report.
  }
  const mount = mountOf(realLoader);
  if (mount?.options.includes('nosuid') === true)
    obstacles.push(`the loader is on ${mount.point}, mounted nosuid, where file capabilities are ignored`);
  return obstacles;
}

function privileges(): Check {
  const status = readFileSync('/proc/self/status', 'utf8');
  const capEff = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1];
  const caps = capEff === undefined ? 0n : BigInt(`0x${capEff}`);
  const has = (cap: bigint) => (caps & (1n << cap)) !== 0n;
  const who = process.geteuid?.() === 0 ? 'root' : `uid ${process.geteuid?.() ?? '?'}`;
  if ((has(CAPABILITY_BITS.cap_bpf) && has(CAPABILITY_BITS.cap_perfmon)) || has(CAPABILITY_BITS.cap_sys_admin)) {
    return {
      name: 'privileges',
      status: 'ok',
      detail: `${who}, CapEff ${capEff ?? '?'} has ${has(CAPABILITY_BITS.cap_bpf) ? 'CAP_BPF and CAP_PERFMON' : 'CAP_SYS_ADMIN'} (the sidecar's Node process holds them too; to run it without any, as a user: ${SETCAP})`,
    };
  }
  const obstacles = fileCapabilityObstacles(status);
  if (obstacles.length === 0)
    return {
      name: 'privileges',
      status: 'ok',
      detail: `${who}, CapEff ${capEff ?? '?'}: the loader alone is privileged, by its file capabilities ${LOADER_FILE_CAPABILITIES.join(',')}`,
    };
  return {
    name: 'privileges',
    status: 'FAIL',
    detail: `${who}, CapEff ${capEff ?? '?'} lacks CAP_BPF and CAP_PERFMON, and exec of the loader would not grant its file capabilities: ${obstacles.join('; ')}`,
  };
}

function btf(): Check {
  const path = '/sys/kernel/btf/vmlinux';
  return existsSync(path)
    ? { name: 'btf', status: 'ok', detail: path }
    : { name: 'btf', status: 'FAIL', detail: `${path} is missing: the kernel needs CONFIG_DEBUG_INFO_BTF=y` };
}

function tracefs(): Check {
  const mounts = readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((line) => line.split(' '));
  const tracefsAt = mounts.find(([, where, type]) => type === 'tracefs' && where === '/sys/kernel/tracing')?.[1];
  if (tracefsAt !== undefined) return { name: 'tracefs', status: 'ok', detail: `mounted at ${tracefsAt}` };
  const debugfs = mounts.find(([, , type]) => type === 'debugfs')?.[1];
  if (debugfs !== undefined && existsSync(`${debugfs}/tracing/events`))
    return { name: 'tracefs', status: 'ok', detail: `under debugfs at ${debugfs}/tracing` };
  return { name: 'tracefs', status: 'FAIL', detail: 'not mounted: mount -t tracefs tracefs /sys/kernel/tracing' };
}

/** `bpftool feature probe kernel`; undefined without bpftool or the right to probe. */
function featureProbe(): string | undefined {
  try {
    return execFileSync('bpftool', ['feature', 'probe', 'kernel'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 10_000,
    });
  } catch {
    return undefined;
  }
}

/** Judged by the kernel's version where bpftool could not say. */
function byVersion(name: string, major: number, minor: number, need: string): Check {
  const [releaseMajor = 0, releaseMinor = 0] = release().split(/[.-]/).map(Number);
  const ok = releaseMajor > major || (releaseMajor === major && releaseMinor >= minor);
  return {
    name,
    status: ok ? 'ok' : 'FAIL',
    detail: `kernel ${release()}${ok ? '' : `: ${need} Linux ${String(major)}.${String(minor)} or later`}`,
  };
}

function ringbuf(probe: string | undefined): Check {
  const line = probe === undefined ? null : /^eBPF map_type ringbuf is (NOT )?available$/m.exec(probe);
  if (line === null) return byVersion('ringbuf', 5, 8, 'BPF ring buffers need');
  return line[1] === undefined
    ? { name: 'ringbuf', status: 'ok', detail: 'bpftool: map_type ringbuf is available' }
    : { name: 'ringbuf', status: 'FAIL', detail: 'bpftool: map_type ringbuf is NOT available' };
}

/** The CUDA probes learn which entry point fired from their uprobe's attach cookie; the loader stops without them. */
function cookies(probe: string | undefined): Check {
  const helpers =
    probe === undefined ? null : /^eBPF helpers supported for program type kprobe:\n((?:\t- .*\n)+)/m.exec(probe);
  if (helpers === null) return byVersion('cookies', 5, 15, 'uprobe attach cookies (the CUDA probes) need');
  return helpers[1]?.includes('\t- bpf_get_attach_cookie\n') === true
    ? { name: 'cookies', status: 'ok', detail: 'bpftool: kprobe programs have bpf_get_attach_cookie' }
    : {
        name: 'cookies',
        status: 'FAIL',
        detail: 'bpftool: kprobe programs have no bpf_get_attach_cookie (Linux 5.15): the CUDA probes cannot load',
      };
}

function loader(): Check {
  try {
    accessSync(loaderPath, constants.X_OK);
    return { name: 'loader', status: 'ok', detail: loaderPath };
  } catch {
    return {
      name: 'loader',
      status: 'FAIL',
      detail: `${loaderPath} is missing or not executable: run \`npm run build\``,
    };
  }
}

const CUDA_LIBRARY = /\/(libcudart\.so[^/]*|libcuda\.so[^/]*)$/;

function cudaOf(pid: number): Check {
  const name = `pid ${pid}`;
  // A process whose main thread ended has no maps or exe of its own: a running thread has them.
  let dir = `/proc/${pid}`;
  let maps: string;
  try {
    maps = readFileSync(`${dir}/maps`, 'utf8');
    const thread = maps === '' ? runningThreadDir(dir) : undefined;
    if (thread !== undefined) {
      dir = thread;
      maps = readFileSync(`${dir}/maps`, 'utf8');
    }
  } catch (error) {
    return {
      name,
      status: 'FAIL',
      detail: `cannot read ${dir}/maps: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
    };
  }
  const libraries = new Set(
    maps
      .split('\n')
      .map((line) => /\s(\/\S.*)$/.exec(line)?.[1])
      .filter((path) => path !== undefined && CUDA_LIBRARY.test(path)),
  );
  if (libraries.size > 0) return { name, status: 'ok', detail: `CUDA libraries: ${Array.from(libraries).join(', ')}` };
  let exe: string;
  let linksStatically: boolean;
  try {
    exe = readlinkSync(`${dir}/exe`);
    linksStatically = definesFunction(`${dir}/exe`, 'cudaLaunchKernel');
  } catch (error) {
    return {
      name,
      status: 'warn',
      detail: `no CUDA library mapped, and its executable is unreadable (${(error as NodeJS.ErrnoException).code ?? String(error)})`,
    };
  }
  if (linksStatically) return { name, status: 'ok', detail: `${exe} defines cudaLaunchKernel (static CUDA runtime)` };
  return {
    name,
    status: 'warn',
    detail: `no CUDA runtime in ${exe} or its libraries: CUDA probes will not see it, other kinds will`,
  };
}

/** GPU processes listed; the count says how many more there are. */
const MAX_GPU_LISTED = 64;

/** The processes using CUDA, from the loader's own scan (--list-gpu: it loads nothing). */
function gpuProcesses(): Check[] {
  if (!existsSync(loaderPath)) return [{ name: 'gpu', status: 'FAIL', detail: `${loaderPath} is missing` }];
  const scan = spawnSync(loaderPath, ['--list-gpu'], { timeout: 60_000 });
  if (scan.status !== 0)
    return [{ name: 'gpu', status: 'FAIL', detail: `the loader's scan failed: ${scan.stderr.toString().trim()}` }];
  const messages = new FrameReader()
    .push(scan.stdout)
    .filter((frame) => frame.type === FrameType.MESSAGE)
    .map((frame) => parseMessage(frame.payload));
  const table = new GpuProcesses();
  for (const message of messages) table.message(message);
  const summary = messages.find((m) => m.fields.event === 'scan')?.fields ?? {};
  const { listed } = table.counts();
  const shown = table.list(MAX_GPU_LISTED);
  const unreadable = process.geteuid?.() === 0 ? '' : '; not root: only the processes this user may read were scanned';
  return [
    {
      name: 'gpu',
      status: 'ok',
      detail: `${listed} processes use CUDA (${String(summary.processes)} scanned in ${String(summary.ms)} ms)${unreadable}`,
    },
    ...shown.map((p): Check => ({
      name: `gpu ${p.pid}`,
      status: 'ok',
      detail: `${p.comm}: ${p.libraries.join(', ')}`,
    })),
    ...(listed > shown.length
      ? [{ name: 'gpu', status: 'ok' as const, detail: `and ${listed - shown.length} more` }]
      : []),
  ];
}

export function doctor(argv: string[]): number {
  const { values } = parseArgs({
    args: argv,
    options: {
      pid: { type: 'string', multiple: true },
      gpu: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help === true) {
    process.stdout.write(DOCTOR_HELP);
    return 0;
  }
  const pids = (values.pid ?? []).map((pid) => positiveInteger('--pid', pid));
  const probe = featureProbe();
  const checks = [
    privileges(),
    btf(),
    tracefs(),
    ringbuf(probe),
    cookies(probe),
    loader(),
    ...pids.map(cudaOf),
    ...(values.gpu === true ? gpuProcesses() : []),
  ];
  const width = Math.max(...checks.map((c) => c.name.length));
  for (const check of checks)
    process.stdout.write(`${check.status.padEnd(4)} ${check.name.padEnd(width)}  ${check.detail}\n`);
  return checks.some((c) => c.status === 'FAIL') ? 1 : 0;
}
