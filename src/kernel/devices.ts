// Names block devices as the kernel does (DEVNAME in /sys/dev/block/MAJ:MIN/uevent).
import { readFileSync } from 'node:fs';
import { Lru } from './lru.js';

/** Splits a dev_t as the kernel encodes it inside (MKDEV: major << 20 | minor). */
export function majorMinor(dev: number): string {
  return `${dev >>> 20}:${dev & 0xfffff}`;
}

export class BlockDevices {
  private readonly names = new Lru<number, string>(256);

  constructor(private readonly sysRoot = '/sys') {}

  /** The device's name ("vda", "nvme0n1"), else "MAJ:MIN". */
  name(dev: number): string {
    let name = this.names.get(dev);
    if (name === undefined) {
      name = this.read(majorMinor(dev));
      this.names.set(dev, name);
    }
    return name;
  }

  private read(majMin: string): string {
    try {
      const uevent = readFileSync(`${this.sysRoot}/dev/block/${majMin}/uevent`, 'utf8');
      return /^DEVNAME=(.+)$/m.exec(uevent)?.[1] ?? majMin;
    } catch {
      return majMin; // gone since (a removed device) or never a block device
    }
  }
}
