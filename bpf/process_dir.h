/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Where a running process's memory, mappings, executable and root are read (process_dir.c). */
#ifndef CAUSEWAY_PROCESS_DIR_H
#define CAUSEWAY_PROCESS_DIR_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

/*
 * Writes to dir the /proc directory of process pid to read those from: /proc/PID, or, once its
 * main thread has ended (pthread_exit) while other threads run, /proc/PID/task/TID of one of
 * them, as the main thread's entries went with it. False when no thread runs: it has exited.
 */
bool process_dir(__u32 pid, char *dir, size_t len);

#endif
