/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The loader's stdin commands (commands.c). */
#ifndef CAUSEWAY_COMMANDS_H
#define CAUSEWAY_COMMANDS_H

#include <stdbool.h>

/*
 * Runs each whole line of stdin, reading it first if readable (lines read while stdout was full
 * wait here for the main loop); false at end of input.
 */
bool read_commands(bool readable);
/*
 * While stdout is full (the sidecar is behind), `shed` must still reach the probes, so the
 * writer waits on this fd too (-1 when nothing more can be taken) and then runs only the `shed`
 * lines; the others can write frames themselves and wait for the main loop.
 */
int shed_commands_fd(void);
void read_shed_commands(void);
/* `quit` was read: the loader stops as on SIGTERM. */
bool quit_requested(void);

#endif /* CAUSEWAY_COMMANDS_H */
