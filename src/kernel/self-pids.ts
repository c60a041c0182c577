// Causeway's own processes: this one and the loaders it started. A run-queue wait behind one of
// them is the tracer's own cost, told apart from the application's contention.
//
// The latest few loaders are kept, not just the running one: a record decoded now may name a
// loader that has since been restarted.
const MAX_LOADERS = 7;

export class SelfPids {
  private readonly loaders: number[] = [];

  constructor(private readonly own = process.pid) {}

  has(pid: number): boolean {
    return pid === this.own || this.loaders.includes(pid);
  }

  /** A loader just started: remembered, the oldest beyond the last few forgotten. */
  addLoader(pid: number): void {
    if (this.loaders.includes(pid)) return;
    this.loaders.push(pid);
    if (this.loaders.length > MAX_LOADERS) this.loaders.shift();
  }
}
