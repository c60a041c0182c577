// Spans name their process and thread as the app sees them. In its own pid namespace (a
// container, `unshare --pid`) those are namespace ids: the host's are found through the
// container id in the process's cgroup and the NSpid lines of /proc/PID/status and
// /proc/PID/task/TID/status, whose last entry is the id as the process sees it.
import { readdirSync, readFileSync } from 'node:fs';
import { parseNsPid, type ProcessTable } from '../kernel/processes.js';
import { Lru } from '../kernel/lru.js';

export class HostIds {
  private readonly pids = new Lru<string, number | null>(4096);
  private readonly tids = new Lru<string, number | null>(65536);

  constructor(
    private readonly processes: ProcessTable,
    private readonly procRoot = '/proc',
  ) {}

  /** The host pid of a process that calls itself `pid`, inside `containerId` if given. */
  pid(pid: number, containerId: string | undefined): number | undefined {
    if (containerId === undefined) return pid;
    const key = `${containerId}/${pid}`;
    let host = this.pids.get(key);
    if (host === undefined) {
      host = this.findInContainer(pid, containerId) ?? null;
      // A miss is not cached: the process may not have started its spans' exporter yet.
      if (host !== null) this.pids.set(key, host);
    }
    return host ?? undefined;
  }

  /** The host tid of a thread that calls itself `tid` in the process with host pid `hostPid`. */
  tid(hostPid: number, tid: number): number | undefined {
    const nspid = this.processes.get(hostPid).nspid;
    if (nspid === undefined || nspid.length < 2) return tid; // same namespace: ids are the host's
    const key = `${hostPid}/${tid}`;
    let host = this.tids.get(key);
    if (host === undefined) {
      host = this.findThread(hostPid, tid) ?? null;
      if (host !== null) this.tids.set(key, host);
    }
    return host ?? undefined;
  }

  private findInContainer(pid: number, containerId: string): number | undefined {
    for (const entry of this.listDir(this.procRoot)) {
      const candidate = Number(entry);
      if (!Number.isInteger(candidate) || candidate <= 0) continue;
      const info = this.processes.get(candidate);
      if (info.containerId === containerId && info.nspid?.at(-1) === pid) return candidate;
    }
    return undefined;
  }

  private findThread(hostPid: number, tid: number): number | undefined {
    for (const entry of this.listDir(`${this.procRoot}/${hostPid}/task`)) {
      try {
        if (parseNsPid(readFileSync(`${this.procRoot}/${hostPid}/task/${entry}/status`, 'utf8'))?.at(-1) === tid)
          return Number(entry);
      } catch {
        // The thread exited while we looked.
      }
    }
    return undefined;
  }

  private listDir(path: string): string[] {
    try {
      return readdirSync(path);
    } catch {
      return [];
    }
  }
}
