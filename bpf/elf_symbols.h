/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Function symbols of an ELF file, looked up in one pass (elf_symbols.c). */
#ifndef CAUSEWAY_ELF_SYMBOLS_H
#define CAUSEWAY_ELF_SYMBOLS_H

#include <stddef.h>

/*
 * For each of names, the file offset of the function of that name (what a uprobe attaches
 * at), from .symtab or .dynsym; 0 when the file does not define it. Returns how many were
 * found, or -1 when path is not a readable ELF file.
 */
int elf_function_offsets(const char *path, const char *const *names, size_t n, size_t *offsets);

#endif /* CAUSEWAY_ELF_SYMBOLS_H */
