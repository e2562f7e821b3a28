/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/*
 * progress.h - one-line progress on a terminal: done, rate, ETA
 *
 * For tools: a line on stderr (when it is a terminal, or when forced),
 * redrawn at most ten times a second and erased at the end of each step:
 *
 *   reading segments:  42% 430.1 MiB of 1.0 GiB  812.3 MiB/s  ETA 0:01
 *   checking extents: 120000  95000/s
 *
 * Not thread-safe: call from one thread.
 */
#ifndef EMBASSYFS_PROGRESS_H
#define EMBASSYFS_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "compat.h"

struct progress;

/* A progress line on out; with enabled false every call is a no-op. -ENOMEM. */
int progress_new(FILE *out, bool enabled, struct progress **res) MUST_CHECK;
/* Erase the line; NULL is fine. */
void progress_free(struct progress *p);
/*
 * Show step `what` at done of total (0: unknown) units, bytes or items.
 * A new `what` starts a new step (its rate and ETA start afresh).
 */
void progress_update(struct progress *p, const char *what, uint64_t done,
		     uint64_t total, bool bytes);
/* End the step: erase the line. */
void progress_end(struct progress *p);

#endif
