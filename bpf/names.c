// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * A kernel's name, passed to __cudaRegisterFunction, often sits in a page of the
 * program that nothing has touched yet (CUDA 12 loads modules lazily, and reads the
 * name only at the first launch): the probe's bpf_probe_read_user_str cannot fault it
 * in and leaves the name empty. The loader reads it instead through /proc/PID/mem,
 * which can (the page is in the file), before handing the record on.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "names.h"

void fill_kernel_name(struct cw_event *e)
{
	char path[64];
	ssize_t n;
	int fd;

	if (e->u.reg.name[0] || !e->u.reg.name_addr)
		return;
	snprintf(path, sizeof(path), "/proc/%u/mem", e->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return; /* the process is gone */
	/* A short read is fine: the string may end just before an unmapped page. */
	n = pread(fd, e->u.reg.name, sizeof(e->u.reg.name) - 1, (off_t)e->u.reg.name_addr);
	close(fd);
	if (n <= 0) {
		e->u.reg.name[0] = 0;
		return;
	}
	e->u.reg.name[n] = 0;
	/* Only the string: not whatever followed it in the process's memory. */
	n = strlen(e->u.reg.name);
	memset(e->u.reg.name + n, 0, sizeof(e->u.reg.name) - n);
}
