/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Finding every process that uses CUDA, and probing the library files it uses (cuda_libs.c). */
#ifndef CAUSEWAY_CUDA_LIBS_H
#define CAUSEWAY_CUDA_LIBS_H

#include <stdbool.h>
#include <linux/types.h>
#include "causeway.h"

/* Only look: find GPU processes and libraries without attaching probes (`--list-gpu`). */
void cuda_libs_list_only(void);

/* A library named by --lib or `attach`: probed whatever its file name. */
void probe_cuda_library(const char *path);
/* A process's mapped CUDA libraries, and its executable in case the runtime is linked in. */
void scan_process(__u32 pid, enum cw_gpu_process how);
/* A process exec'd: whether its new program links the CUDA runtime. */
void check_executable(__u32 pid);
/*
 * One pass over /proc: follow processes by comm and, with cuda, find every GPU process; look
 * for each followed process's thread context. Returns the processes seen.
 */
int scan_processes(bool cuda);

/* CUDA library files probed so far. */
__u32 cuda_libraries(void);
const char *cuda_library_path(int library);

#endif /* CAUSEWAY_CUDA_LIBS_H */
