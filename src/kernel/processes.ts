// Metadata of the processes that events come from, read from /proc once per pid and kept
// in a bounded cache. A process may have exited by the time its events are decoded: then
// whatever could not be read is left out.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { Lru } from './lru.js';

export interface ProcessInfo {
  pid: number;
  comm?: string;
  executable?: string;
  /** The 64-hex id of the container (docker, containerd, cri-o, podman) the process runs in. */
  containerId?: string;
  /** The pid in each pid namespace, outermost first: [host pid, ..., pid as the process sees it]. */
  nspid?: number[];
}

// A cgroup path component naming a container: `<id>`, `docker-<id>.scope`,
// `cri-containerd-<id>.scope`, `crio-<id>.scope`, `libpod-<id>.scope`.
const CONTAINER_SEGMENT = /^(?:(?:docker|cri-containerd|crio|libpod)-)?([0-9a-f]{64})(?:\.scope)?$/;

/** The container id in /proc/PID/cgroup text (cgroup v1 or v2), if the process is in one. */
export function parseContainerId(cgroup: string): string | undefined {
  for (const line of cgroup.split('\n')) {
    // hierarchy-id:controllers:path; the path itself may contain ':'.
    const path = line.split(':').slice(2).join(':');
    const segments = path.split('/').reverse();
    for (const segment of segments) {
      const match = CONTAINER_SEGMENT.exec(segment);
      if (match?.[1] !== undefined) return match[1];
    }
  }
  return undefined;
}

/** The NSpid line of /proc/PID/status. */
export function parseNsPid(status: string): number[] | undefined {
  const line = /^NSpid:\s*(.*)$/m.exec(status)?.[1];
  if (line === undefined) return undefined;
  const pids = line.trim().split(/\s+/).map(Number);
  return pids.every((pid) => Number.isInteger(pid) && pid > 0) ? pids : undefined;
}

function readOr<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // Exited (ENOENT, ESRCH) or not ours to read (EACCES, for some kernel threads).
    if (code === 'ENOENT' || code === 'ESRCH' || code === 'EACCES' || code === 'EPERM') return undefined;
    throw error;
  }
}

/** The fields of a /proc stat line after the command's name (which may itself hold parentheses): the state first. */
export function statFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/**
 * The /proc directory of a running thread of the process whose directory is `dir`: a process
 * whose main thread ended first (pthread_exit) lives on in its other threads, while its own
 * maps and exe went with the main thread.
 */
export function runningThreadDir(dir: string): string | undefined {
  for (const tid of readOr(() => readdirSync(`${dir}/task`)) ?? []) {
    const stat = readOr(() => readFileSync(`${dir}/task/${tid}/stat`, 'latin1'));
    const state = stat === undefined ? undefined : statFields(stat)[0];
    if (state !== undefined && state !== 'Z' && state !== 'X') return `${dir}/task/${tid}`;
  }
  return undefined;
}

/** The executable as a running thread of the process sees it, its own exe link gone with its main thread. */
function threadExecutable(dir: string): string | undefined {
  const thread = runningThreadDir(dir);
  return thread === undefined ? undefined : readOr(() => readlinkSync(`${thread}/exe`));
}

export class ProcessTable {
  private readonly cache: Lru<number, ProcessInfo>;

  constructor(
    capacity = 4096,
    private readonly procRoot = '/proc',
  ) {
    this.cache = new Lru(capacity);
  }

  get(pid: number): ProcessInfo {
    let info = this.cache.get(pid);
    if (info === undefined) {
      info = this.read(pid);
      this.cache.set(pid, info);
    }
    return info;
  }

  /** Drops what is known of a pid: it exec'd a new program, or exited. */
  forget(pid: number): void {
    this.cache.delete(pid);
  }

  private read(pid: number): ProcessInfo {
    const dir = `${this.procRoot}/${pid}`;
    const info: ProcessInfo = { pid };
    const comm = readOr(() => readFileSync(`${dir}/comm`, 'utf8').trimEnd());
    if (comm !== undefined) info.comm = comm;
    const executable = readOr(() => readlinkSync(`${dir}/exe`)) ?? threadExecutable(dir);
    if (executable !== undefined) info.executable = executable;
    const cgroup = readOr(() => readFileSync(`${dir}/cgroup`, 'utf8'));
    const containerId = cgroup === undefined ? undefined : parseContainerId(cgroup);
    if (containerId !== undefined) info.containerId = containerId;
    const status = readOr(() => readFileSync(`${dir}/status`, 'utf8'));
    const nspid = status === undefined ? undefined : parseNsPid(status);
    if (nspid !== undefined) info.nspid = nspid;
    return info;
  }
}
