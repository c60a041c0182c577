// Demangles C++ (Itanium ABI, `_Z...`) names through one long-lived `c++filt` (binutils),
// which answers one line per line and flushes each. Results are cached, bounded.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { Lru } from './lru.js';

const isMangled = (name: string) => name.startsWith('_Z') && !name.includes('\n');

export class Demangler {
  private child: ChildProcessWithoutNullStreams | null = null;
  private readonly waiting: { name: string; resolve: (demangled: string) => void }[] = [];
  private partial = '';
  private failure: string | null = null;
  private readonly cache: Lru<string, string>;

  /** `onError` hears, once, why demangling stopped; names then pass through unchanged. */
  constructor(
    private readonly onError: (message: string) => void,
    capacity = 65536,
  ) {
    this.cache = new Lru(capacity);
  }

  /** The demangled name if known now: names that are not mangled are their own. */
  cached(name: string): string | undefined {
    return isMangled(name) ? this.cache.get(name) : name;
  }

  demangle(name: string): Promise<string> {
    const known = this.cached(name);
    if (known !== undefined) return Promise.resolve(known);
    if (this.failure !== null) return Promise.resolve(name);
    const child = this.start();
    return new Promise((resolve) => {
      this.waiting.push({ name, resolve });
      child.stdin.write(`${name}\n`);
    });
  }

  async demangleAll(names: Iterable<string>): Promise<void> {
    await Promise.all(Array.from(new Set(names), (name) => this.demangle(name)));
  }

  close(): void {
    this.child?.stdin.end();
    this.child = null;
  }

  private start(): ChildProcessWithoutNullStreams {
    if (this.child !== null) return this.child;
    const child = spawn('c++filt', [], { stdio: ['pipe', 'pipe', 'pipe'] });
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (text: string) => {
      const lines = (this.partial + text).split('\n');
      this.partial = lines.pop() ?? '';
      for (const line of lines) this.answer(line);
    });
    child.on('error', (error) => {
      this.fail(`cannot run c++filt (install binutils): ${error.message}`);
    });
    child.on('exit', (code, signal) => {
      if (this.child === child) this.fail(`c++filt exited (${signal ?? `code ${code}`})`);
    });
    child.stdin.on('error', () => {
      // EPIPE when c++filt died: reported by the 'exit' or 'error' handler.
    });
    this.child = child;
    return child;
  }

  private answer(line: string): void {
    const request = this.waiting.shift();
    if (request === undefined) return;
    this.cache.set(request.name, line);
    request.resolve(line);
  }

  private fail(message: string): void {
    if (this.failure !== null) return;
    this.failure = message;
    this.child = null;
    this.onError(`${message}; C++ kernel names stay mangled`);
    for (const request of this.waiting.splice(0)) request.resolve(request.name);
  }
}
