// Converts the records' CLOCK_MONOTONIC nanoseconds to Unix epoch nanoseconds.
// The offset between the two clocks drifts (NTP slewing, settimeofday), so it is taken
// from every STATS frame's (mono_ns, real_ns) pair, sampled together by the loader.
// Until the first STATS frame it is sampled here: on Linux, process.hrtime is
// CLOCK_MONOTONIC and performance.timeOrigin + performance.now() is the wall clock.
import { performance } from 'node:perf_hooks';

/** The wall clock now, in Unix ns, below the millisecond (Date.now() gives whole milliseconds). */
export const wallClockUnixNano = () => BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6));

/** CLOCK_MONOTONIC to Unix ns, as sampled here now. */
export function sampleOffset(): bigint {
  const mono = process.hrtime.bigint();
  return wallClockUnixNano() - mono;
}

export class EpochClock {
  private offset = sampleOffset();

  /** Adopts the loader's latest pair of clock readings. */
  update(monoNs: bigint, realNs: bigint): void {
    this.offset = realNs - monoNs;
  }

  toUnixNano(monoNs: bigint): bigint {
    return monoNs + this.offset;
  }
}
