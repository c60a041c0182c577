// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Kernel names whole. A registration record holds CW_NAME_LEN - 1 bytes of its kernel's name,
 * and C++ templates make names of hundreds (PyTorch's are nearly all longer than that): the
 * loader reads the rest from the process's memory and writes it after the registration, in
 * CW_KIND_CUDA_NAME_MORE records of the same function, for user space to join.
 *
 * The name often sits in a page of the program that nothing has touched yet (CUDA 12 loads
 * modules lazily, and reads the name only at the first launch): the probe's
 * bpf_probe_read_user_str cannot fault it in and leaves the name empty. The loader reads it
 * through /proc/PID/mem, which can (the page is in the file).
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "frames.h"
#include "names.h"
#include "process_dir.h"
#include "stats.h"

#define PART (CW_NAME_LEN - 1)

/*
 * The memory of the process whose registrations are being read, kept open: a program registers
 * its kernels together (PyTorch some 20,000 at `import torch`). Opened again when a read gives
 * nothing, as it does once that process has gone, whoever has its pid now.
 */
static int mem_fd = -1;
static __u32 mem_pid;

static ssize_t read_memory(__u32 pid, char *buf, size_t size, __u64 address)
{
	char dir[64], path[80];
	ssize_t n = -1;

	for (int attempt = 0; attempt < 2 && n <= 0; attempt++) {
		if (mem_fd < 0 || mem_pid != pid || attempt) {
			if (mem_fd >= 0)
				close(mem_fd);
			mem_fd = -1;
			mem_pid = pid;
			if (!process_dir(pid, dir, sizeof(dir)))
				return -1; /* the process is gone */
			snprintf(path, sizeof(path), "%s/mem", dir);
			mem_fd = open(path, O_RDONLY | O_CLOEXEC);
			if (mem_fd < 0)
				return -1;
		}
		n = pread(mem_fd, buf, size, (off_t)address);
	}
	return n;
}

void kernel_name(const struct cw_event *reg, char *name, size_t size)
{
	size_t have = strnlen(reg->u.reg.name, CW_NAME_LEN);
	ssize_t n;

	if (have >= size)
		have = size - 1;
	memcpy(name, reg->u.reg.name, have);
	name[have] = 0;
	/* Whole already, or nowhere to read the rest from. */
	if ((have && have < PART) || !reg->u.reg.name_addr)
		return;
	/* A short read is fine: the string may end just before an unmapped page. */
	n = read_memory(reg->pid, name + have, size - 1 - have, reg->u.reg.name_addr + have);
	if (n > 0)
		name[have + n] = 0; /* the string ends at its NUL: not whatever followed it */
}

void emit_registration(const struct cw_event *reg, const char *name)
{
	size_t length = strlen(name);
	struct cw_event e = *reg;

	memset(e.u.reg.name, 0, sizeof(e.u.reg.name));
	memcpy(e.u.reg.name, name, length < PART ? length : PART);
	emit_event(&e);
	e.kind = CW_KIND_CUDA_NAME_MORE;
	for (size_t at = PART; at < length; at += PART) {
		memset(e.u.reg.name, 0, sizeof(e.u.reg.name));
		memcpy(e.u.reg.name, name + at, length - at < PART ? length - at : PART);
		count_delivered(e.kind);
		emit_event(&e);
	}
}
