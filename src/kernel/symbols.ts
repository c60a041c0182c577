// Names the function at an address of a process: the mapping that holds it in
// /proc/PID/maps, then the ELF symbol tables (.symtab, else .dynsym) of the mapped file.
// Used to name a CUDA launch whose host stub was not seen registering (the probes attached
// after __cudaRegisterFunction ran): the stub's symbol is the kernel's mangled name.
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { Lru } from './lru.js';

const PT_LOAD = 1;
const SHT_SYMTAB = 2;
const SHT_DYNSYM = 11;
const STT_FUNC = 2;
const SYM_SIZE = 24;
/** Symbol tables past this are not loaded: memory stays bounded. */
const MAX_TABLE_BYTES = 64 * 1024 * 1024;

interface Segment {
  offset: number;
  vaddr: number;
  filesz: number;
}

/** One file's function symbols, sorted by address; names are decoded on lookup. */
interface SymbolTable {
  segments: Segment[];
  addresses: Float64Array;
  sizes: Float64Array;
  nameOffsets: Uint32Array;
  strings: Buffer;
}

function readAt(fd: number, position: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  const read = readSync(fd, buf, 0, length, position);
  if (read !== length) throw new Error(`short read at ${position}`);
  return buf;
}

/** Loads an ELF64 little-endian file's function symbols, or null for anything else. */
function loadTable(path: string): SymbolTable | null {
  const fd = openSync(path, 'r');
  try {
    const eh = readAt(fd, 0, 64);
    if (eh.readUInt32BE(0) !== 0x7f454c46 || eh[4] !== 2 || eh[5] !== 1) return null;
    const phoff = Number(eh.readBigUInt64LE(0x20));
    const shoff = Number(eh.readBigUInt64LE(0x28));
    const phentsize = eh.readUInt16LE(0x36);
    const phnum = eh.readUInt16LE(0x38);
    const shentsize = eh.readUInt16LE(0x3a);
    const shnum = eh.readUInt16LE(0x3c);

    const segments: Segment[] = [];
    const ph = readAt(fd, phoff, phentsize * phnum);
    for (let i = 0; i < phnum; i++) {
      const p = i * phentsize;
      if (ph.readUInt32LE(p) !== PT_LOAD) continue;
      segments.push({
        offset: Number(ph.readBigUInt64LE(p + 8)),
        vaddr: Number(ph.readBigUInt64LE(p + 16)),
        filesz: Number(ph.readBigUInt64LE(p + 32)),
      });
    }

    const sh = readAt(fd, shoff, shentsize * shnum);
    const section = (i: number) => ({
      type: sh.readUInt32LE(i * shentsize + 4),
      offset: Number(sh.readBigUInt64LE(i * shentsize + 24)),
      size: Number(sh.readBigUInt64LE(i * shentsize + 32)),
      link: sh.readUInt32LE(i * shentsize + 40),
    });
    const sections = Array.from({ length: shnum }, (_, i) => section(i));
    const symtab = sections.find((s) => s.type === SHT_SYMTAB) ?? sections.find((s) => s.type === SHT_DYNSYM);
    const strtab = symtab === undefined ? undefined : sections[symtab.link];
    if (symtab === undefined || strtab === undefined) return null;
    if (symtab.size + strtab.size > MAX_TABLE_BYTES) return null;

    const syms = readAt(fd, symtab.offset, symtab.size);
    const funcs: { address: number; size: number; name: number }[] = [];
    for (let s = 0; s + SYM_SIZE <= syms.length; s += SYM_SIZE) {
      const info = syms[s + 4] ?? 0;
      const shndx = syms.readUInt16LE(s + 6);
      if ((info & 0xf) !== STT_FUNC || shndx === 0) continue;
      funcs.push({
        address: Number(syms.readBigUInt64LE(s + 8)),
        size: Number(syms.readBigUInt64LE(s + 16)),
        name: syms.readUInt32LE(s),
      });
    }
    funcs.sort((a, b) => a.address - b.address);
    return {
      segments,
      addresses: Float64Array.from(funcs, (f) => f.address),
      sizes: Float64Array.from(funcs, (f) => f.size),
      nameOffsets: Uint32Array.from(funcs, (f) => f.name),
      strings: readAt(fd, strtab.offset, strtab.size),
    };
  } finally {
    closeSync(fd);
  }
}

function nameAt(table: SymbolTable, index: number): string {
  const start = table.nameOffsets[index] ?? 0;
  const end = table.strings.indexOf(0, start);
  return table.strings.toString('utf8', start, end === -1 ? table.strings.length : end);
}

function lookup(table: SymbolTable, vaddr: number): string | undefined {
  let lo = 0;
  let hi = table.addresses.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if ((table.addresses[mid] ?? 0) <= vaddr) {
      found = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  // Aliases share an address: any of them whose extent covers vaddr names it.
  for (let i = found; i >= 0 && table.addresses[i] === table.addresses[found]; i--) {
    const address = table.addresses[i] ?? 0;
    const size = table.sizes[i] ?? 0;
    if (vaddr === address || vaddr < address + size) return nameAt(table, i);
  }
  return undefined;
}

interface Mapping {
  start: number;
  end: number;
  offset: number;
  key: string;
  path: string;
}

function findMapping(maps: string, address: number): Mapping | undefined {
  for (const line of maps.split('\n')) {
    // start-end perms offset dev inode path
    const match = /^([0-9a-f]+)-([0-9a-f]+) \S+ ([0-9a-f]+) (\S+) (\d+)\s+(\/.*)$/.exec(line);
    if (match === null) continue;
    const [, start, end, offset, dev, inode, path] = match as unknown as [
      string,
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    const mapping = {
      start: parseInt(start, 16),
      end: parseInt(end, 16),
      offset: parseInt(offset, 16),
      key: `${dev}:${inode}`,
      path,
    };
    if (address >= mapping.start && address < mapping.end) return mapping;
  }
  return undefined;
}

export class SymbolResolver {
  private readonly tables: Lru<string, SymbolTable | null>;

  constructor(
    fileCapacity = 16,
    private readonly procRoot = '/proc',
  ) {
    this.tables = new Lru(fileCapacity);
  }

  /** The function symbol at `address` in process `pid`, if the process and a symbol table say. */
  resolve(pid: number, address: bigint): string | undefined {
    const at = Number(address);
    let maps: string;
    try {
      maps = readFileSync(`${this.procRoot}/${pid}/maps`, 'utf8');
    } catch {
      return undefined; // the process exited
    }
    const mapping = findMapping(maps, at);
    if (mapping === undefined) return undefined;
    const table = this.table(pid, mapping);
    if (table === null) return undefined;
    const fileOffset = at - mapping.start + mapping.offset;
    const segment = table.segments.find((s) => fileOffset >= s.offset && fileOffset < s.offset + s.filesz);
    return segment === undefined ? undefined : lookup(table, fileOffset - segment.offset + segment.vaddr);
  }

  private table(pid: number, mapping: Mapping): SymbolTable | null {
    const cached = this.tables.get(mapping.key);
    if (cached !== undefined) return cached;
    // map_files reaches the file even inside another mount namespace or once deleted.
    const candidates = [
      `${this.procRoot}/${pid}/map_files/${mapping.start.toString(16)}-${mapping.end.toString(16)}`,
      `${this.procRoot}/${pid}/root${mapping.path}`,
      mapping.path,
    ];
    let table: SymbolTable | null = null;
    for (const path of candidates) {
      try {
        table = loadTable(path);
        break;
      } catch {
        continue; // not readable by that name: try the next
      }
    }
    this.tables.set(mapping.key, table);
    return table;
  }
}

/** Whether an ELF file defines a function of that name (an executable linking the CUDA runtime statically). */
export function definesFunction(path: string, name: string): boolean {
  const table = loadTable(path);
  if (table === null) return false;
  for (let i = 0; i < table.nameOffsets.length; i++) if (nameAt(table, i) === name) return true;
  return false;
}
