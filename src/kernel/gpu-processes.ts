// The GPU processes on the node, as the loader finds them: every process that maps a CUDA
// runtime or driver library, or whose program links the runtime statically, with the
// libraries each uses. Kept from the loader's MESSAGE frames (`gpu_process` when one is found
// using a library, `gpu_process_exit` when it exits or exec's another program), bounded.
import type { LoaderMessage } from './loader.js';

export interface GpuProcess {
  pid: number;
  comm: string;
  /** The CUDA libraries (or the executable, for a static runtime) it uses, as the process names them. */
  libraries: string[];
  /** `running`: found when capture started; `started`: seen mapping CUDA since. */
  since: string;
}

const DEFAULT_CAPACITY = 1024;

export class GpuProcesses {
  private readonly table = new Map<number, GpuProcess & { generation: number }>();
  private generation = 0;
  /** Found while the table was full: probed and followed, not listed. */
  private overflow = 0;

  constructor(private readonly capacity = DEFAULT_CAPACITY) {}

  /** A loader message: the ones about GPU processes update the table. */
  message(message: LoaderMessage): void {
    const { event, pid, comm, library, since } = message.fields;
    if (typeof pid !== 'number') return;
    if (event === 'gpu_process_exit') {
      this.table.delete(pid);
      return;
    }
    if (event !== 'gpu_process' || typeof library !== 'string') return;
    const known = this.table.get(pid);
    if (known !== undefined) {
      if (!known.libraries.includes(library)) known.libraries.push(library);
      known.generation = this.generation;
      return;
    }
    if (this.table.size >= this.capacity) {
      this.overflow++;
      return;
    }
    this.table.set(pid, {
      pid,
      comm: typeof comm === 'string' ? comm : '',
      libraries: [library],
      since: typeof since === 'string' ? since : 'running',
      generation: this.generation,
    });
  }

  /** A new loader starts: it reports every GPU process again as it scans. */
  restarted(): void {
    this.generation++;
  }

  /** Its scan is done: those it did not report again exited meanwhile. */
  scanned(): void {
    for (const [pid, p] of this.table) if (p.generation < this.generation) this.table.delete(pid);
  }

  /** How many are listed, and how many more were found past the table's capacity. */
  counts(): { listed: number; unlisted: number } {
    return { listed: this.table.size, unlisted: this.overflow };
  }

  /** The first `limit`, by pid. */
  list(limit: number): GpuProcess[] {
    return [...this.table.values()]
      .sort((a, b) => a.pid - b.pid)
      .slice(0, limit)
      .map(({ pid, comm, libraries, since }) => ({ pid, comm, libraries: [...libraries], since }));
  }
}
