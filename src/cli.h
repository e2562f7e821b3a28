/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/*
 * cli.h - helpers shared by the command-line tools and the daemon
 *
 * Exit codes (an interface: scripts branch on them, and each man page lists
 * its own under EXIT STATUS), "Try ... --help" handling, secrets read from
 * a file, a key file or the terminal, human text for the project's error
 * codes, parsers of sizes and Argon2id costs, and opening a volume with one
 * clear message per failure.
 *
 * Unlike the rest of the library, the functions below that take user input
 * print their own error message (through log.h, so with the program's name
 * in front) naming the bad value or the file; the caller only chooses the
 * exit code. Secrets live in sodium_malloc'd memory, are wiped on release
 * and are never printed or logged.
 *
 * Not thread-safe: meant for a tool's main thread before any thread starts.
 */
#ifndef EMBASSYFS_CLI_H
#define EMBASSYFS_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "compat.h"
#include "key.h"
#include "volume.h"

/* Every tool (util-linux include/exitcodes.h). */
#define CLI_EX_OK      0
#define CLI_EX_FAILURE 1 /* embassyctl, embassyd: any failure, usage too */

/* mkfs.embassyfs (util-linux MKFS_EX_*) */
#define CLI_MKFS_EX_ERROR 8  /* operational error */
#define CLI_MKFS_EX_USAGE 16 /* usage or syntax error */

/* embassyfs: 1 for any failure; mount.embassyfs (util-linux MNT_EX_*): */
#define CLI_MOUNT_EX_USAGE 1  /* incorrect invocation */
#define CLI_MOUNT_EX_FAIL  32 /* mount failure */

/* fsck.embassyfs: the bitwise OR of these (e2fsprogs FSCK_*) */
#define CLI_FSCK_EX_OK		0   /* clean */
#define CLI_FSCK_EX_CORRECTED	1   /* errors corrected */
#define CLI_FSCK_EX_RESERVED	2   /* reserved */
#define CLI_FSCK_EX_UNCORRECTED 4   /* errors left */
#define CLI_FSCK_EX_ERROR	8   /* cannot open, locked, wrong key */
#define CLI_FSCK_EX_USAGE	16  /* usage */
#define CLI_FSCK_EX_CANCELED	32  /* cancelled by a signal */
#define CLI_FSCK_EX_LIBRARY	128 /* library error */

/* Longest passphrase accepted from a file or the terminal. */
#define CLI_PASSPHRASE_MAX 1024
/* Longest key file accepted; only its first bytes need to be random. */
#define CLI_KEYFILE_MAX (1u << 20)

/*
 * Print "Try 'PROG --help' for more information." to stderr and exit with
 * code (util-linux errtryhelp()).
 */
NORETURN void cli_errtryhelp(const char *prog, int code);

/* Print "PROG (embassyfs) VERSION" to stdout. */
void cli_print_version(const char *prog);

/* The last path component of argv[0] (a pointer into it). */
const char *cli_basename(const char *argv0);

/*
 * Human text for a negative errno, with the project's own meanings:
 * -EKEYREJECTED "wrong passphrase or key file", -EUCLEAN "store is corrupt",
 * -EMEDIUMTYPE "not an embassyfs volume", -EPROTONOSUPPORT "unknown volume
 * format", -EBUSY "in use by another embassyfs process"; strerror() for the
 * rest. Returns a static string.
 */
const char *cli_strerror(int negerr);

/*
 * Parse a size: decimal digits with an optional K, M or G suffix (powers of
 * 1024; lower case and a trailing "iB" or "B" are accepted too). 0 or
 * -EINVAL (not a size) or -ERANGE (does not fit 64 bits). Prints nothing.
 */
int cli_parse_size(const char *s, uint64_t *out) MUST_CHECK;

/* "min", "interactive" or "moderate". 0 or -EINVAL. Prints nothing. */
int cli_parse_cost(const char *s, enum key_cost *out) MUST_CHECK;

enum cli_secret_kind {
	CLI_SECRET_NONE = 0,
	CLI_SECRET_PASSPHRASE,
	CLI_SECRET_KEYFILE,
};

/*
 * A passphrase or the bytes of a key file. data is sodium_malloc'd (guard
 * pages, mlocked), NUL-terminated for a passphrase; a zeroed struct is
 * empty. Release with cli_secret_release().
 */
struct cli_secret {
	enum cli_secret_kind kind;
	uint8_t *data;
	size_t len;
};

/*
 * Read a passphrase from path ("-" is standard input): the whole file, less
 * one trailing newline. Refuses an empty passphrase or one longer than
 * CLI_PASSPHRASE_MAX; warns when the file is readable by group or others.
 * Prints its own message. 0, -ENOENT, -EACCES, -EINVAL (empty, too long,
 * a directory), -EIO, -ENOMEM.
 */
int cli_secret_read_passphrase_file(struct cli_secret *s,
				    const char *path) MUST_CHECK;

/*
 * Read a key file ("-" is standard input): raw bytes, at least KEY_BYTES
 * and at most CLI_KEYFILE_MAX. Warns when it is readable by group or
 * others. Prints its own message. Same errors as above.
 */
int cli_secret_read_keyfile(struct cli_secret *s, const char *path) MUST_CHECK;

/*
 * Ask for a passphrase on /dev/tty with echo off. With confirm, ask a
 * second time (confirm is that prompt) and insist that both agree. The
 * terminal is restored even if a signal arrives while it waits (the signal
 * is then delivered). Prints its own message. 0; -ENXIO when there is no
 * terminal ("no passphrase given and no terminal to ask on; use
 * --passphrase-file or --key-file"); -EINVAL (empty, too long, mismatch);
 * -EINTR; -EIO; -ENOMEM.
 */
int cli_secret_prompt(struct cli_secret *s, const char *prompt,
		      const char *confirm) MUST_CHECK;

/*
 * The usual sequence of every tool: key_file if set, else passphrase_file
 * if set, else a prompt (with a confirmation when confirm is set, for a new
 * passphrase) naming store. At most one of the two files may be given.
 */
int cli_secret_get(struct cli_secret *s, const char *passphrase_file,
		   const char *key_file, const char *store,
		   bool confirm) MUST_CHECK;

/* Wipe and free the secret; a released or zeroed struct is fine. */
void cli_secret_release(struct cli_secret *s);

/* Seal k into a new slot with the secret (cost is for passphrases only). */
int cli_secret_seal(const struct cli_secret *s, const struct key *k,
		    enum key_cost cost,
		    uint8_t slot[static KEY_SLOT_BYTES]) MUST_CHECK;

/*
 * Check that store is an embassyfs volume of a known format, printing one
 * message that names it and says what to do otherwise. Returns the
 * volume_probe() error.
 */
int cli_volume_probe(const char *store) MUST_CHECK;

/*
 * A store keeps a descriptor for each RocksDB table it has open (all of
 * them when read-only) and up to two for each segment in use: a large
 * volume needs more than the usual soft limit of 1,024. Raise the soft
 * limit to the hard one, which the administrator sets; a failure changes
 * nothing. cli_volume_open calls it.
 */
void cli_raise_nofile(void);

/*
 * volume_open() then, when s is not NULL, unlock with it, printing one
 * message naming store on any failure (wrong passphrase, in use, corrupt,
 * unknown format, not a volume). Returns the library's error.
 */
int cli_volume_open(const char *store, enum volume_open_flags flags,
		    const struct cli_secret *s, struct volume **out) MUST_CHECK;

#endif
