/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Kernel names whole, and those the probes could not read, read by the loader instead (names.c). */
#ifndef CAUSEWAY_NAMES_H
#define CAUSEWAY_NAMES_H

#include <linux/types.h>
#include "causeway.h"

/* The longest kernel name written: longer ones are cut here. */
#define KERNEL_NAME_MAX 4096

/* A registration's name: the probe's copy, read (or completed, when it fills the record) from the process's memory. */
void kernel_name(const struct cw_event *reg, char *name, size_t size);

/* Writes a registration of the whole name: its first part in the record, the rest in CW_KIND_CUDA_NAME_MORE records. */
void emit_registration(const struct cw_event *reg, const char *name);

#endif /* CAUSEWAY_NAMES_H */
