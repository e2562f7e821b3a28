/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/*
 * log.h - levelled logger shared by the library, the tools and the daemon
 *
 * Levels are syslog's. Output goes to stderr (tools, -f), to syslog once the
 * daemon has detached, or to a capture function in tests. Debug categories
 * are chosen at run time from EMBASSYFS_DEBUG (comma list or "all").
 * The logger's configuration is the one mutable global of the project.
 */
#ifndef EMBASSYFS_LOG_H
#define EMBASSYFS_LOG_H

#include <stdarg.h>
#include <syslog.h>

#include "compat.h"

enum log_debug_category {
	LOG_DBG_STORE = 1 << 0,
	LOG_DBG_JOURNAL = 1 << 1,
	LOG_DBG_FS = 1 << 2,
	LOG_DBG_FUSE = 1 << 3,
	LOG_DBG_CODEC = 1 << 4,
	LOG_DBG_KEY = 1 << 5,
	LOG_DBG_SYNC = 1 << 6,
	LOG_DBG_FSCK = 1 << 7,
};

enum log_sink {
	LOG_SINK_STDERR,
	LOG_SINK_SYSLOG,
	LOG_SINK_CAPTURE,
};

typedef void log_capture_fn(int level, const char *msg, void *arg);

/* Set the program name used as the message prefix (stderr) or ident (syslog). */
void log_init(const char *progname);
/* Choose the sink; capture_fn/arg are used with LOG_SINK_CAPTURE only. */
void log_set_sink(enum log_sink sink, log_capture_fn *capture_fn, void *arg);
/* Messages above this syslog level are dropped (default LOG_INFO). */
void log_set_level(int level);
/* Parse a category list such as "journal,fs" or "all"; returns -EINVAL on an unknown name. */
int log_set_debug(const char *list);
/* Is this debug category on? Cheap: one load and a test. */
int log_debug_on(enum log_debug_category cat);

void log_msg(int level, const char *fmt, ...) PRINTF_LIKE(2, 3);
void log_vmsg(int level, const char *fmt, va_list ap);

#define log_err(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_dbg(cat, ...)                                                     \
	do {                                                                  \
		if (log_debug_on(cat))                                        \
			log_msg(LOG_DEBUG, __VA_ARGS__);                      \
	} while (0)

/* Short hex of the first bytes of a binary id for log lines (buf >= 2*n+1). */
const char *log_hex(char *buf, const void *data, size_t n);

#endif
