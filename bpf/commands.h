/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The loader's stdin commands (commands.c). */
#ifndef CAUSEWAY_COMMANDS_H
#define CAUSEWAY_COMMANDS_H

#include <stdbool.h>

/* Reads what stdin has and runs each whole line; false at end of input. */
bool read_commands(void);
/* `quit` was read: the loader stops as on SIGTERM. */
bool quit_requested(void);

#endif /* CAUSEWAY_COMMANDS_H */
