// Whether an ELF file defines a function, from its symbol table (.symtab, else .dynsym): how
// `causeway doctor` tells an executable that links the CUDA runtime statically. Kernel names
// are not looked up here: the loader names a stub registered before capture started from its
// symbol (bpf/stub_names.c), as it can read another user's process and Node may not.
import { closeSync, openSync, readSync } from 'node:fs';

const SHT_SYMTAB = 2;
const SHT_DYNSYM = 11;
const STT_FUNC = 2;
const SYM_SIZE = 24;
/** Symbol tables past this are not read: memory stays bounded. */
const MAX_TABLE_BYTES = 64 * 1024 * 1024;

function readAt(fd: number, position: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  const read = readSync(fd, buf, 0, length, position);
  if (read !== length) throw new Error(`short read at ${position}`);
  return buf;
}

/** Whether an ELF64 little-endian file defines a function of that name; throws when it cannot be read. */
export function definesFunction(path: string, name: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const eh = readAt(fd, 0, 64);
    if (eh.readUInt32BE(0) !== 0x7f454c46 || eh[4] !== 2 || eh[5] !== 1) return false;
    const shoff = Number(eh.readBigUInt64LE(0x28));
    const shentsize = eh.readUInt16LE(0x3a);
    const shnum = eh.readUInt16LE(0x3c);

    const sh = readAt(fd, shoff, shentsize * shnum);
    const sections = Array.from({ length: shnum }, (_, i) => ({
      type: sh.readUInt32LE(i * shentsize + 4),
      offset: Number(sh.readBigUInt64LE(i * shentsize + 24)),
      size: Number(sh.readBigUInt64LE(i * shentsize + 32)),
      link: sh.readUInt32LE(i * shentsize + 40),
    }));
    const symtab = sections.find((s) => s.type === SHT_SYMTAB) ?? sections.find((s) => s.type === SHT_DYNSYM);
    const strtab = symtab === undefined ? undefined : sections[symtab.link];
    if (symtab === undefined || strtab === undefined) return false;
    if (symtab.size + strtab.size > MAX_TABLE_BYTES) return false;

    const syms = readAt(fd, symtab.offset, symtab.size);
    const strings = readAt(fd, strtab.offset, strtab.size);
    const wanted = Buffer.from(`${name}\0`);
    for (let s = 0; s + SYM_SIZE <= syms.length; s += SYM_SIZE) {
      const info = syms[s + 4] ?? 0;
      const shndx = syms.readUInt16LE(s + 6);
      if ((info & 0xf) !== STT_FUNC || shndx === 0) continue;
      const at = syms.readUInt32LE(s);
      if (strings.subarray(at, at + wanted.length).equals(wanted)) return true;
    }
    return false;
  } finally {
    closeSync(fd);
  }
}
