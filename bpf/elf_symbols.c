// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Function symbols of an ELF file, for the CUDA probes: every entry point's offset from
 * one pass over the symbol tables, instead of one pass per symbol (as attaching by name
 * does), so a library is probed soon after a process maps it; and whether an executable
 * links the CUDA runtime statically, without attaching anything.
 */
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <string.h>
#include <unistd.h>

#include "elf_symbols.h"

/* "cudaMalloc" matches "cudaMalloc" and a versioned "cudaMalloc@@libcudart.so.12". */
static int same_symbol(const char *symbol, const char *name)
{
	size_t len = strlen(name);

	return !strncmp(symbol, name, len) && (symbol[len] == 0 || symbol[len] == '@');
}

static int find_in_table(Elf *elf, Elf_Scn *table, const GElf_Shdr *sh, const char *const *names, size_t n,
			 size_t *offsets)
{
	Elf_Data *data = elf_getdata(table, NULL);
	size_t count = sh->sh_entsize ? sh->sh_size / sh->sh_entsize : 0;
	int found = 0;

	for (size_t i = 0; data && i < count; i++) {
		GElf_Sym sym;
		GElf_Shdr where;
		const char *symbol;
		int type;

		if (!gelf_getsym(data, i, &sym))
			continue;
		type = GELF_ST_TYPE(sym.st_info);
		if ((type != STT_FUNC && type != STT_GNU_IFUNC) || sym.st_shndx == SHN_UNDEF || !sym.st_value)
			continue;
		symbol = elf_strptr(elf, sh->sh_link, sym.st_name);
		/* Every CUDA entry point starts with "cu" or "__cu". */
		if (!symbol || (strncmp(symbol, "cu", 2) && strncmp(symbol, "__cu", 4)))
			continue;
		for (size_t k = 0; k < n; k++) {
			if (offsets[k] || !same_symbol(symbol, names[k]))
				continue;
			if (!gelf_getshdr(elf_getscn(elf, sym.st_shndx), &where))
				break;
			offsets[k] = sym.st_value - where.sh_addr + where.sh_offset;
			found++;
			break;
		}
	}
	return found;
}

int elf_function_offsets(const char *path, const char *const *names, size_t n, size_t *offsets)
{
	int fd, found = 0;
	Elf *elf;
	Elf_Scn *scn = NULL;

	memset(offsets, 0, n * sizeof(*offsets));
	if (elf_version(EV_CURRENT) == EV_NONE)
		return -1;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!elf || elf_kind(elf) != ELF_K_ELF) {
		found = -1;
		goto out;
	}
	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;

		if (gelf_getshdr(scn, &sh) && (sh.sh_type == SHT_SYMTAB || sh.sh_type == SHT_DYNSYM))
			found += find_in_table(elf, scn, &sh, names, n, offsets);
	}
out:
	if (elf)
		elf_end(elf);
	close(fd);
	return found;
}
