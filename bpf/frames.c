// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Frames on stdout (causeway.h). The buffer holds whole frames and is written out
 * in one go, so a batch of records costs one write and one EVENTS header; the
 * open EVENTS frame's size is filled in when it is closed.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "commands.h"
#include "frames.h"

#define OUT_CAPACITY (256 * 1024)

static unsigned char out[OUT_CAPACITY];
static size_t out_len;
static size_t batch_start = SIZE_MAX; /* offset of the open EVENTS frame header, or SIZE_MAX */

/*
 * Blocks until the reader takes everything: meanwhile the ring fills and the probes count what
 * it cannot hold, so a slow reader loses nothing silently. A non-blocking stdout is waited on,
 * and stdin with it so that `shed on` reaches the probes while the reader is behind.
 */
static void write_all(const void *buf, size_t len)
{
	const unsigned char *p = buf;

	while (len) {
		ssize_t n = write(STDOUT_FILENO, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd fds[2] = { { .fd = STDOUT_FILENO, .events = POLLOUT },
						 { .fd = shed_commands_fd(), .events = POLLIN } };

			if (poll(fds, 2, -1) > 0 && fds[1].revents & (POLLIN | POLLHUP))
				read_shed_commands();
			continue;
		}
		if (n <= 0)
			exit(0); /* the reader is gone: nothing left to do */
		p += n;
		len -= n;
	}
}

static void set_nonblocking(int fd)
{
	struct stat st;
	int flags = fcntl(fd, F_GETFL);

	/* Not a terminal or a file: their file description is shared with the shell. */
	if (flags >= 0 && !fstat(fd, &st) && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)))
		fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

void frames_open(void)
{
	set_nonblocking(STDOUT_FILENO);
	/*
	 * The main loop reads stdin when its poll said it was readable, but the lines may have been
	 * taken since, while a frame waited on a full stdout (read_shed_commands): a blocking read
	 * then waited for the sidecar's next command, and the sidecar for the loader's next frame.
	 */
	set_nonblocking(STDIN_FILENO);
}

void flush_out(void)
{
	if (batch_start != SIZE_MAX) {
		struct cw_frame *f = (struct cw_frame *)(out + batch_start);

		f->size = out_len - batch_start - sizeof(*f);
		batch_start = SIZE_MAX;
	}
	write_all(out, out_len);
	out_len = 0;
}

void emit_frame(__u32 type, const void *payload, __u32 size)
{
	struct cw_frame f = { .type = type, .size = size };

	if (out_len + sizeof(f) + size > OUT_CAPACITY || batch_start != SIZE_MAX)
		flush_out();
	if (sizeof(f) + size > OUT_CAPACITY) {
		write_all(&f, sizeof(f));
		write_all(payload, size);
		return;
	}
	memcpy(out + out_len, &f, sizeof(f));
	memcpy(out + out_len + sizeof(f), payload, size);
	out_len += sizeof(f) + size;
}

void emit_event(const struct cw_event *e)
{
	if (out_len + sizeof(struct cw_frame) + sizeof(*e) > OUT_CAPACITY)
		flush_out();
	if (batch_start == SIZE_MAX) {
		struct cw_frame f = { .type = CW_FRAME_EVENTS };

		batch_start = out_len;
		memcpy(out + out_len, &f, sizeof(f));
		out_len += sizeof(f);
	}
	memcpy(out + out_len, e, sizeof(*e));
	out_len += sizeof(*e);
}

size_t json_escape(char *dst, size_t cap, const char *s)
{
	size_t n = 0;

	for (; *s && n + 7 < cap; s++) {
		unsigned char c = *s;

		if (c == '"' || c == '\\') {
			dst[n++] = '\\';
			dst[n++] = c;
		} else if (c < 0x20) {
			n += snprintf(dst + n, cap - n, "\\u%04x", c);
		} else {
			dst[n++] = c;
		}
	}
	dst[n] = 0;
	return n;
}

void message(const char *level, const char *extra, const char *fmt, ...)
{
	char text[1024], escaped[2048], json[4096];
	va_list ap;
	int n;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	json_escape(escaped, sizeof(escaped), text);
	n = snprintf(json, sizeof(json), "{\"level\":\"%s\",\"msg\":\"%s\"%s%s}", level, escaped,
		     extra && *extra ? "," : "", extra ? extra : "");
	emit_frame(CW_FRAME_MESSAGE, json, n < (int)sizeof(json) ? n : (int)sizeof(json) - 1);
	flush_out();
}

void cannot_run(const char *fmt, ...)
{
	char text[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	fprintf(stderr, "causeway-loader: %s\n", text);
	message("error", NULL, "%s", text);
	exit(2);
}
