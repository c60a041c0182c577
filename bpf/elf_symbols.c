// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Function symbols of an ELF file. For the CUDA probes: every entry point's offset from
 * one pass over the symbol tables, instead of one pass per symbol (as attaching by name
 * does), so a library is probed soon after a process maps it; and whether an executable
 * links the CUDA runtime statically, without attaching anything. For naming a kernel
 * whose registration was not seen (stub_names.c): the function at a file offset. For the
 * OpenTelemetry thread context (thread_ctx.c): a TLS variable and how its module reaches it.
 */
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "elf_symbols.h"

struct elf_file {
	int fd;
	Elf *elf;
};

static bool elf_open(const char *path, struct elf_file *f)
{
	f->elf = NULL;
	if (elf_version(EV_CURRENT) == EV_NONE)
		return false;
	f->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0)
		return false;
	f->elf = elf_begin(f->fd, ELF_C_READ_MMAP, NULL);
	if (f->elf && elf_kind(f->elf) == ELF_K_ELF)
		return true;
	if (f->elf)
		elf_end(f->elf);
	close(f->fd);
	return false;
}

static void elf_close(struct elf_file *f)
{
	elf_end(f->elf);
	close(f->fd);
}

/* A defined function: the only symbols a probe attaches at, or a stub is. */
static bool is_function(const GElf_Sym *sym)
{
	int type = GELF_ST_TYPE(sym->st_info);

	return (type == STT_FUNC || type == STT_GNU_IFUNC) && sym->st_shndx != SHN_UNDEF && sym->st_value;
}

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

		if (!gelf_getsym(data, i, &sym) || !is_function(&sym))
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
	struct elf_file f;
	Elf_Scn *scn = NULL;
	int found = 0;

	memset(offsets, 0, n * sizeof(*offsets));
	if (!elf_open(path, &f))
		return -1;
	while ((scn = elf_nextscn(f.elf, scn))) {
		GElf_Shdr sh;

		if (gelf_getshdr(scn, &sh) && (sh.sh_type == SHT_SYMTAB || sh.sh_type == SHT_DYNSYM))
			found += find_in_table(f.elf, scn, &sh, names, n, offsets);
	}
	elf_close(&f);
	return found;
}

/* The virtual address the file offset is loaded at, from the segment that holds it; false if none does. */
static bool vaddr_of(Elf *elf, __u64 offset, __u64 *vaddr)
{
	size_t n;

	if (elf_getphdrnum(elf, &n))
		return false;
	for (size_t i = 0; i < n; i++) {
		GElf_Phdr ph;

		if (gelf_getphdr(elf, i, &ph) && ph.p_type == PT_LOAD && offset >= ph.p_offset &&
		    offset < ph.p_offset + ph.p_filesz) {
			*vaddr = offset - ph.p_offset + ph.p_vaddr;
			return true;
		}
	}
	return false;
}

/* The function of a symbol table (of type `type`) whose extent holds vaddr, or NULL. */
static const char *function_in(Elf *elf, Elf64_Word type, __u64 vaddr)
{
	Elf_Scn *scn = NULL;

	while ((scn = elf_nextscn(elf, scn))) {
		Elf_Data *data;
		GElf_Shdr sh;
		size_t count;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != type || !sh.sh_entsize || !(data = elf_getdata(scn, NULL)))
			continue;
		count = sh.sh_size / sh.sh_entsize;
		for (size_t i = 0; i < count; i++) {
			GElf_Sym sym;

			/* A symbol of no size covers its address alone. */
			if (gelf_getsym(data, i, &sym) && is_function(&sym) && vaddr >= sym.st_value &&
			    vaddr < sym.st_value + (sym.st_size ? sym.st_size : 1))
				return elf_strptr(elf, sh.sh_link, sym.st_name);
		}
	}
	return NULL;
}

bool elf_function_at(const char *path, __u64 offset, char *name, size_t size)
{
	struct elf_file f;
	const char *symbol = NULL;
	bool found;
	__u64 vaddr;

	if (!elf_open(path, &f))
		return false;
	if (vaddr_of(f.elf, offset, &vaddr)) {
		symbol = function_in(f.elf, SHT_SYMTAB, vaddr);
		if (!symbol)
			symbol = function_in(f.elf, SHT_DYNSYM, vaddr);
	}
	/* The symbol lies in the file's mapping: copied before it is closed. */
	found = symbol && *symbol;
	if (found)
		snprintf(name, size, "%s", symbol);
	elf_close(&f);
	return found;
}

/* The index of the defined TLS symbol `name` in a symbol table, or 0; *sym filled when found. */
static size_t tls_symbol_in(Elf *elf, Elf_Scn *table, const GElf_Shdr *sh, const char *name, GElf_Sym *sym)
{
	Elf_Data *data = elf_getdata(table, NULL);
	size_t count = sh->sh_entsize ? sh->sh_size / sh->sh_entsize : 0;

	for (size_t i = 1; data && i < count; i++) {
		const char *symbol;

		if (!gelf_getsym(data, i, sym) || GELF_ST_TYPE(sym->st_info) != STT_TLS || sym->st_shndx == SHN_UNDEF)
			continue;
		symbol = elf_strptr(elf, sh->sh_link, sym->st_name);
		if (symbol && same_symbol(symbol, name))
			return i;
	}
	return 0;
}

/* The segments: PT_TLS and the first PT_LOAD. */
static bool read_segments(Elf *elf, struct elf_tls_symbol *out)
{
	bool tls = false, load = false;
	size_t n;

	if (elf_getphdrnum(elf, &n))
		return false;
	for (size_t i = 0; i < n; i++) {
		GElf_Phdr ph;

		if (!gelf_getphdr(elf, i, &ph))
			continue;
		if (ph.p_type == PT_TLS) {
			out->tls_vaddr = ph.p_vaddr;
			out->tls_memsz = ph.p_memsz;
			out->tls_align = ph.p_align ? ph.p_align : 1;
			tls = true;
		} else if (ph.p_type == PT_LOAD && !load) {
			out->first_load_vaddr = ph.p_vaddr;
			load = true;
		}
	}
	return tls && load;
}

/*
 * The relocations against dynamic symbol `index` (or, for a symbol bound locally, against no
 * symbol with its offset as addend): where ld.so writes its thread-pointer offset, or whether
 * only the DTV reaches it.
 */
static void tls_relocations(Elf *elf, size_t dynsym, size_t index, __u64 value, struct elf_tls_symbol *out)
{
	Elf_Scn *scn = NULL;

	while ((scn = elf_nextscn(elf, scn))) {
		Elf_Data *data;
		GElf_Shdr sh;
		size_t count;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_RELA || sh.sh_link != dynsym || !sh.sh_entsize ||
		    !(data = elf_getdata(scn, NULL)))
			continue;
		count = sh.sh_size / sh.sh_entsize;
		for (size_t i = 0; i < count; i++) {
			GElf_Rela r;
			size_t sym;
			__u32 type;

			if (!gelf_getrela(data, i, &r))
				continue;
			sym = GELF_R_SYM(r.r_info);
			type = GELF_R_TYPE(r.r_info);
			if (sym != index && !(sym == 0 && (__u64)r.r_addend == value))
				continue;
			if (type == R_X86_64_TPOFF64 && !out->tpoff_slot)
				out->tpoff_slot = r.r_offset;
			else if (type == R_X86_64_DTPMOD64 || type == R_X86_64_TLSDESC)
				out->dynamic = true;
		}
	}
}

int elf_tls_symbol(const char *path, const char *name, struct elf_tls_symbol *out)
{
	Elf_Scn *scn = NULL, *symtab = NULL;
	GElf_Shdr sh, symtab_sh;
	GElf_Sym sym;
	size_t index = 0;
	int found = 0;
	struct elf_file f;

	memset(out, 0, sizeof(*out));
	if (!elf_open(path, &f))
		return -1;
	while (!index && (scn = elf_nextscn(f.elf, scn))) {
		if (!gelf_getshdr(scn, &sh))
			continue;
		if (sh.sh_type == SHT_SYMTAB) {
			symtab = scn;
			symtab_sh = sh;
		} else if (sh.sh_type == SHT_DYNSYM && (index = tls_symbol_in(f.elf, scn, &sh, name, &sym))) {
			tls_relocations(f.elf, elf_ndxscn(scn), index, sym.st_value, out);
		}
	}
	/* Not exported: an executable's own symbol table still says where it is (local-exec). */
	if (!index && symtab)
		index = tls_symbol_in(f.elf, symtab, &symtab_sh, name, &sym);
	if (index && read_segments(f.elf, out)) {
		out->value = sym.st_value;
		found = 1;
	}
	elf_close(&f);
	return found;
}
