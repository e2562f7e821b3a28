/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/*
 * fsck.h - check a store, with or without its key, and repair it
 *
 * The checker reads a store directly (store, journal and key modules),
 * never through a mount: keyless checks need no more than the store's
 * bytes, so an embassy host or an auditor runs them on ciphertext. Passes
 * run in the order 0, 4, 1, 2, 3, 5 (see doc/fsck.embassyfs.8):
 *
 *   0  the VOLUME file, the header, every column family readable
 *   4  the journal: contiguous, chained, signed; the state it records
 *   1  block segments and their index: checksums, locations, garbage
 *      (the segments are read by a thread of their own from pass 0 on)
 *   2  extents and reference counts
 *   3  inodes, directory entries, link counts, connectivity
 *   5  with the key: MACs, AEAD tags, decoded attributes, block contents
 *
 * The report (text, or one JSON document) goes to opts->out: unlike the
 * rest of the library, this module writes its product, as the tool that
 * calls it would only copy it. Problems are listed in fsck_problems.def.
 *
 * Repairs are journaled: they are written as journal records like any
 * file-system change, so replicas receive them and the chain stays whole;
 * with the key the new head is signed, without it the head is signed by
 * the next keyed open.
 *
 * Not thread-safe: one struct fsck per thread (it runs helper threads of
 * its own for the keyed block check).
 */
#ifndef EMBASSYFS_FSCK_H
#define EMBASSYFS_FSCK_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "compat.h"

enum fsck_mode {
	FSCK_MODE_NO,	 /* -n: open read-only, change nothing */
	FSCK_MODE_YES,	 /* -y: repair everything repairable */
	FSCK_MODE_PREEN, /* -p: repair what is safe, stop on the rest */
	FSCK_MODE_ASK,	 /* ask before each repair */
};

enum fsck_secret_kind {
	FSCK_SECRET_NONE,
	FSCK_SECRET_PASSPHRASE,
	FSCK_SECRET_KEYFILE,
};

/*
 * Progress of a pass: done out of total units (bytes when `bytes`, else
 * items; total 0: unknown). Called often; end is true once, when the step
 * is over.
 */
typedef void fsck_progress_fn(void *arg, const char *what, uint64_t done,
			      uint64_t total, bool bytes, bool end);
/* Ask whether to apply a repair (FSCK_MODE_ASK); true to apply it. */
typedef bool fsck_ask_fn(void *arg, const char *question);

struct fsck_opts {
	const char *store;
	const char *compare; /* --compare: the other store, or NULL */
	enum fsck_mode mode;
	bool json;
	bool verbose; /* list every problem, no latching */
	enum fsck_secret_kind secret_kind;
	const uint8_t *secret; /* borrowed; passphrase or key file bytes */
	size_t secret_len;
	FILE *out;	      /* the report */
	const char *progname; /* for "RUN ... MANUALLY" */
	const char *version;
	fsck_progress_fn *progress; /* may be NULL */
	void *progress_arg;
	fsck_ask_fn *ask; /* FSCK_MODE_ASK only */
	void *ask_arg;
	const volatile sig_atomic_t
	    *cancel;	    /* non-zero: stop soon; may be NULL */
	unsigned threads;   /* keyed block check; 0: one per CPU */
	size_t read_buffer; /* longest record a scan considers; 0: 4 MiB */
	size_t keep_bytes;  /* column families kept in memory; 0: 64 MiB */
};

struct fsck_result {
	uint64_t problems; /* counted problems found (INFO excluded) */
	uint64_t corrected;
	uint64_t left; /* found and not corrected (NO_OK declined excluded) */
	bool modified; /* something was written to the store */
	bool fatal;    /* the check could not be completed */
	bool operational; /* cannot open, locked, wrong key, repair refused */
	bool library;	  /* unexpected failure: memory, write errors */
	bool cancelled;
	bool halted; /* -p met a problem it may not fix */
	bool differ; /* --compare: the stores differ */
};

struct fsck;

/* A checker for o->store (opts copied, strings borrowed). -ENOMEM. */
int fsck_new(const struct fsck_opts *o, struct fsck **out) MUST_CHECK;

/*
 * Run every pass (or the comparison) and print the report up to, not
 * including, the summary. Returns 0 when the run completed, whatever it
 * found; -errno for failures the result also records.
 */
int fsck_run(struct fsck *f);

void fsck_get_result(const struct fsck *f, struct fsck_result *r);

/* Print the summary with the exit status the tool chose, close the report. */
void fsck_finish(struct fsck *f, int status);

/* Close the store, wipe the key; NULL is fine. */
void fsck_free(struct fsck *f);

/* The number of problem codes, and code/name/description by index (man page
 * lint, tests). */
size_t fsck_problem_count(void);
int fsck_problem_info(size_t i, uint32_t *code, const char **name,
		      const char **message) MUST_CHECK;

#endif
