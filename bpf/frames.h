/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The loader's stdout: the frames of causeway.h, buffered (frames.c). Exits 0 once the reader is gone. */
#ifndef CAUSEWAY_FRAMES_H
#define CAUSEWAY_FRAMES_H

#include <stddef.h>
#include <linux/types.h>
#include "causeway.h"

/*
 * Makes a pipe or socket stdout non-blocking, so that while it is full stdin is still read; and
 * stdin, so that reading a command never waits.
 */
void frames_open(void);
void emit_frame(__u32 type, const void *payload, __u32 size);
void emit_event(const struct cw_event *e);
/* Writes out everything buffered, closing the open EVENTS frame. */
void flush_out(void);

/* Appends s to a JSON string body, escaped; returns its length. */
size_t json_escape(char *dst, size_t cap, const char *s);
/* A MESSAGE frame: {"level":..,"msg":..} plus extra JSON members (already formatted), written at once. */
void message(const char *level, const char *extra, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Exits 2 with a one-line reason, on stderr and as an error MESSAGE: capture cannot run here. */
void cannot_run(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

#endif /* CAUSEWAY_FRAMES_H */
