/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Kernel names the probes could not read, read by the loader instead (names.c). */
#ifndef CAUSEWAY_NAMES_H
#define CAUSEWAY_NAMES_H

#include <linux/types.h>
#include "causeway.h"

/* A registration whose name the probe could not read: fills it from the process's memory, if it can. */
void fill_kernel_name(struct cw_event *e);

#endif /* CAUSEWAY_NAMES_H */
