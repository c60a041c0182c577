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

#endif /* CAUSEWAY_ELF_SYMBOLS_H */
