/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Function symbols of an ELF file (elf_symbols.c). */
#ifndef CAUSEWAY_ELF_SYMBOLS_H
#define CAUSEWAY_ELF_SYMBOLS_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

/*
 * For each of names, the file offset of the function of that name (what a uprobe attaches
 * at), from .symtab or .dynsym; 0 when the file does not define it. Returns how many were
 * found, or -1 when path is not a readable ELF file.
 */
int elf_function_offsets(const char *path, const char *const *names, size_t n, size_t *offsets);

/*
 * The function whose code holds the byte at `offset` in the file, from .symtab, else
 * .dynsym, copied into name (truncated to size). False when path is not a readable ELF
 * file, no loaded segment holds the offset, or no function symbol covers it.
 */
bool elf_function_at(const char *path, __u64 offset, char *name, size_t size);

/*
 * A TLS variable a file defines, and what its threads' addresses are found from (thread_ctx.c).
 * tls_*: the file's PT_TLS segment; first_load_vaddr: its first PT_LOAD's address (the load bias
 * is where that is mapped, less it); tpoff_slot: the address of the GOT slot that ld.so fills with
 * the variable's offset from the thread pointer (an R_X86_64_TPOFF64 relocation: initial-exec
 * access), 0 when there is none; dynamic: the file reaches it through the DTV only (general
 * dynamic or TLS descriptor relocations).
 */
struct elf_tls_symbol {
	__u64 value;              /* st_value: its offset in the TLS segment */
	__u64 tls_vaddr;
	__u64 tls_memsz;
	__u64 tls_align;
	__u64 first_load_vaddr;
	__u64 tpoff_slot;
	bool dynamic;
};

/*
 * Looks up the TLS variable `name` among the symbols the file exports (.dynsym, else .symtab).
 * 1: found, *out filled; 0: the file does not define it; -1: not a readable ELF file.
 */
int elf_tls_symbol(const char *path, const char *name, struct elf_tls_symbol *out);

#endif /* CAUSEWAY_ELF_SYMBOLS_H */
