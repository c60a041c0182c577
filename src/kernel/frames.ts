// Splits the loader's stdout, which arrives in chunks cut anywhere, into frames:
// struct cw_frame { u32 type; u32 size; } then `size` bytes of payload.
import { FrameType, LAYOUT } from './record.js';

export interface Frame {
  type: number;
  payload: Buffer;
}

const HEADER = LAYOUT.cw_frame;
const KNOWN_TYPES = new Set<number>(Object.values(FrameType));

/** Larger than any batch the loader writes; a bigger size means the stream is corrupt. */
export const MAX_FRAME_BYTES = 64 * 1024 * 1024;

export class FrameError extends Error {
  override name = 'FrameError';
}

export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private header: { type: number; size: number } | null = null;
  private failed = false;

  constructor(private readonly maxFrameBytes = MAX_FRAME_BYTES) {}

  /** Adds bytes; returns the frames they complete. Throws FrameError on a corrupt stream. */
  push(chunk: Buffer): Frame[] {
    if (this.failed) throw new FrameError('the frame stream is corrupt; no further frames can be read');
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const frames: Frame[] = [];
    for (;;) {
      if (this.header === null) {
        if (this.buffered < HEADER.size) break;
        const bytes = this.take(HEADER.size);
        this.header = { type: bytes.readUInt32LE(HEADER.fields.type), size: bytes.readUInt32LE(HEADER.fields.size) };
        this.check(this.header);
      }
      if (this.buffered < this.header.size) break;
      frames.push({ type: this.header.type, payload: this.take(this.header.size) });
      this.header = null;
    }
    return frames;
  }

  /** Bytes received that do not yet form a whole frame (non-zero when a stream ends mid-frame). */
  get pendingBytes(): number {
    return this.buffered + (this.header === null ? 0 : HEADER.size);
  }

  private check({ type, size }: { type: number; size: number }): void {
    if (!KNOWN_TYPES.has(type)) {
      this.failed = true;
      throw new FrameError(`unknown frame type ${type} (size ${size}): the loader's output is not causeway frames`);
    }
    if (size > this.maxFrameBytes) {
      this.failed = true;
      throw new FrameError(`a frame of ${size} bytes exceeds the ${this.maxFrameBytes}-byte limit`);
    }
  }

  /** Removes the first n buffered bytes, copying only when they span chunks. */
  private take(n: number): Buffer {
    const first = this.chunks[0];
    if (first !== undefined && first.length >= n) {
      const out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      this.buffered -= n;
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.chunks[0];
      if (chunk === undefined) throw new Error('FrameReader.take beyond the buffered bytes');
      const used = Math.min(chunk.length, n - filled);
      chunk.copy(out, filled, 0, used);
      filled += used;
      if (used === chunk.length) this.chunks.shift();
      else this.chunks[0] = chunk.subarray(used);
    }
    this.buffered -= n;
    return out;
  }
}
