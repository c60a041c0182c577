// Per-process CUDA state that gives raw records their meaning: which kernel a launch ran
// (names learned from __cudaRegisterFunction / cuModuleGetFunction records, else the
// symbol table), which kernels were still in flight on a stream when a sync began, and
// how many bytes a cudaFree released. Every table is bounded.
import type { Demangler } from './demangle.js';
import { Lru } from './lru.js';
import { CudaApi, Kind, type KernelRecord } from './record.js';
import type { SymbolResolver } from './symbols.js';

const MAX_INFLIGHT_NAMES = 5;

export interface KernelName {
  name: string;
  symbol: string;
}

export interface Inflight {
  count: number;
  kernels: string[];
}

interface StreamState {
  count: number;
  symbols: string[];
}

interface ProcessCuda {
  /** func (host stub or CUfunction) -> symbol; null when known to be unnamed. */
  symbols: Lru<bigint, string | null>;
  streams: Lru<bigint, StreamState>;
  allocations: Lru<bigint, number>;
}

export interface CudaLimits {
  processes: number;
  kernelsPerProcess: number;
  streamsPerProcess: number;
  allocationsPerProcess: number;
}

const DEFAULT_LIMITS: CudaLimits = {
  processes: 1024,
  kernelsPerProcess: 65536,
  streamsPerProcess: 4096,
  allocationsPerProcess: 65536,
};

export class CudaState {
  private readonly processes: Lru<number, ProcessCuda>;
  private readonly limits: CudaLimits;

  constructor(
    private readonly demangler: Demangler,
    private readonly symbols: SymbolResolver,
    limits: Partial<CudaLimits> = {},
  ) {
    this.limits = { ...DEFAULT_LIMITS, ...limits };
    this.processes = new Lru(this.limits.processes);
  }

  /**
   * Learns the kernel names a batch introduces, in order, and demangles them, so that
   * shaping the batch's events afterwards needs no I/O.
   */
  async learnNames(records: readonly KernelRecord[]): Promise<void> {
    const fresh: string[] = [];
    for (const record of records) {
      if (record.kind === Kind.CUDA_REGISTER) {
        this.process(record.pid).symbols.set(record.register.func, record.register.name);
        fresh.push(record.register.name);
      } else if (record.kind === Kind.PROC_EXEC) {
        // A new program: the old image's addresses and handles mean nothing now.
        this.processes.delete(record.pid);
      } else if (record.kind === Kind.CUDA_LAUNCH) {
        const { symbols } = this.process(record.pid);
        const func = record.launch.func;
        if (symbols.has(func)) continue;
        // Driver launches pass a CUfunction handle, not a code address: only
        // cuModuleGetFunction names those.
        const symbol = record.api === CudaApi.cuLaunchKernel ? undefined : this.symbols.resolve(record.pid, func);
        symbols.set(func, symbol ?? null);
        if (symbol !== undefined) fresh.push(symbol);
      }
    }
    await this.demangler.demangleAll(fresh);
  }

  /** The kernel a launch's func names, if known. */
  kernel(pid: number, func: bigint): KernelName | undefined {
    const symbol = this.processes.get(pid)?.symbols.get(func);
    if (symbol === undefined || symbol === null) return undefined;
    return { symbol, name: this.demangler.cached(symbol) ?? symbol };
  }

  /** A successful launch: one more kernel in flight on its stream. */
  launched(pid: number, stream: bigint, kernel: KernelName | undefined): void {
    const { streams } = this.process(pid);
    let state = streams.get(stream);
    if (state === undefined) {
      state = { count: 0, symbols: [] };
      streams.set(stream, state);
    }
    state.count++;
    if (kernel !== undefined && state.symbols.length < MAX_INFLIGHT_NAMES && !state.symbols.includes(kernel.symbol)) {
      state.symbols.push(kernel.symbol);
    }
  }

  /**
   * A sync began: what was in flight on the streams it waits for, which are then drained.
   * Undefined for an event sync, whose stream the probes do not know.
   */
  synced(pid: number, api: number, handle: bigint): Inflight | undefined {
    const { streams } = this.process(pid);
    let drained: StreamState[];
    if (api === CudaApi.cudaStreamSynchronize || api === CudaApi.cuStreamSynchronize) {
      const state = streams.get(handle);
      streams.delete(handle);
      drained = state === undefined ? [] : [state];
    } else if (api === CudaApi.cudaDeviceSynchronize || api === CudaApi.cuCtxSynchronize) {
      drained = Array.from(streams.values());
      streams.clear();
    } else {
      return undefined;
    }
    const symbols = new Set(drained.flatMap((s) => s.symbols));
    return {
      count: drained.reduce((sum, s) => sum + s.count, 0),
      kernels: Array.from(symbols, (symbol) => this.demangler.cached(symbol) ?? symbol).slice(0, MAX_INFLIGHT_NAMES),
    };
  }

  allocated(pid: number, ptr: bigint, bytes: number): void {
    this.process(pid).allocations.set(ptr, bytes);
  }

  /** Bytes of the allocation a free releases, if its cudaMalloc was seen. */
  freed(pid: number, ptr: bigint): number | undefined {
    const { allocations } = this.process(pid);
    const bytes = allocations.get(ptr);
    allocations.delete(ptr);
    return bytes;
  }

  private process(pid: number): ProcessCuda {
    let state = this.processes.get(pid);
    if (state === undefined) {
      state = {
        symbols: new Lru(this.limits.kernelsPerProcess),
        streams: new Lru(this.limits.streamsPerProcess),
        allocations: new Lru(this.limits.allocationsPerProcess),
      };
      this.processes.set(pid, state);
    }
    return state;
  }
}
