/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Kernel names for launches whose registration was not seen (stub_names.c). */
#ifndef CAUSEWAY_STUB_NAMES_H
#define CAUSEWAY_STUB_NAMES_H

#include <linux/types.h>
#include "causeway.h"

/* A registration record on its way out: its stub is named, and needs no lookup. */
void stub_registered(const struct cw_event *reg, const char *name);
/*
 * A launch record about to go out: at the first runtime launch of a stub neither seen
 * registered nor looked up for its process, writes a registration record named from the
 * stub's symbol, or counts the stub as unnamed.
 */
void name_launched_stub(const struct cw_event *launch);
/* A process exited or exec'd: its stubs mean nothing any more. */
void forget_stubs(__u32 pid);
/* Stubs that could not be named, since the loader started. */
__u32 unnamed_stubs(void);

#endif /* CAUSEWAY_STUB_NAMES_H */
