/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/*
 * mkfs.c - mkfs.embassyfs: create an embassyfs volume
 *
 * A new random master key is sealed into key slot 0 with a passphrase
 * (Argon2id) or a key file, the store is created with its clear header,
 * then opened and unlocked like any later mount would, and given its root
 * directory. Exit codes are util-linux's MKFS_EX_*: 0, 8, 16.
 */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "fs.h"
#include "key.h"
#include "log.h"
#include "volume.h"

#define PROG "mkfs.embassyfs"

struct mkfs_opts {
	const char *store;
	const char *passphrase_file;
	const char *key_file;
	struct volume_params params;
	enum key_cost cost;
	bool cost_given;
	bool force;
};

static void mkfs_usage(void)
{
	fputs("Usage:\n", stdout);
	printf(" %s [options] <store>\n", PROG);
	fputs("\nCreate an embassyfs volume in the directory <store>.\n",
	      stdout);
	fputs("\nOptions:\n", stdout);
	fputs("     --passphrase-file <file>  read the passphrase from <file>\n"
	      "                                 (- for standard input)\n",
	      stdout);
	fputs("     --key-file <file>         use a key file instead\n",
	      stdout);
	fputs("     --pbkdf-cost <cost>       Argon2id cost: min, interactive\n"
	      "                                 or moderate (the default)\n",
	      stdout);
	printf(" -b, --block-size <size>       power of two, 4K to 1M "
	       "(default %uK)\n",
	       VOLUME_DEFAULT_BLOCK / 1024);
	fputs(" -C, --compress <method>       zstd[:<level>] or none "
	      "(default zstd)\n",
	      stdout);
	fputs(" -f, --force                   replace the volume in <store>\n",
	      stdout);
	fputs(" -h, --help                    display this help\n", stdout);
	fputs(" -V, --version                 display version\n", stdout);
	fputs("\nWithout --passphrase-file or --key-file, the passphrase is\n"
	      "asked for twice on the terminal.\n",
	      stdout);
	printf("\nSee %s(8).\n", PROG);
}

static NORETURN void mkfs_usage_error(void)
{
	cli_errtryhelp(PROG, CLI_MKFS_EX_USAGE);
}

static int mkfs_parse_block_size(const char *arg, uint32_t *out)
{
	uint64_t v;

	if (cli_parse_size(arg, &v) || v < VOLUME_MIN_BLOCK ||
	    v > VOLUME_MAX_BLOCK || (v & (v - 1))) {
		log_err("invalid block size '%s': use a power of two from 4K "
			"to 1M, such as 16K",
			arg);
		return -EINVAL;
	}
	*out = (uint32_t)v;
	return 0;
}

static int mkfs_parse_compress(const char *arg, struct volume_params *p)
{
	unsigned long level;
	char *end;

	if (!strcmp(arg, "none")) {
		p->compress = CODEC_COMPRESS_NONE;
		p->level = 1; /* unused, but the header keeps a valid level */
		return 0;
	}
	if (!strncmp(arg, "zstd", 4) && (arg[4] == '\0' || arg[4] == ':')) {
		p->compress = CODEC_COMPRESS_ZSTD;
		p->level = 1;
		if (arg[4] == '\0')
			return 0;
		errno = 0;
		level = strtoul(arg + 5, &end, 10);
		if (arg[5] >= '1' && arg[5] <= '9' && !*end && !errno &&
		    level <= 19) {
			p->level = (int)level;
			return 0;
		}
	}
	log_err("invalid compression '%s': use zstd, zstd:<level 1-19> or none",
		arg);
	return -EINVAL;
}

static void mkfs_parse_args(int argc, char **argv, struct mkfs_opts *o)
{
	enum { OPT_PASSPHRASE_FILE = 256, OPT_KEY_FILE, OPT_PBKDF_COST };
	/* clang-format off */
	static const struct option longopts[] = {
		{ "passphrase-file", required_argument, NULL, OPT_PASSPHRASE_FILE },
		{ "key-file", required_argument, NULL, OPT_KEY_FILE },
		{ "pbkdf-cost", required_argument, NULL, OPT_PBKDF_COST },
		{ "block-size", required_argument, NULL, 'b' },
		{ "compress", required_argument, NULL, 'C' },
		{ "force", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	/* clang-format on */
	int c;

	memset(o, 0, sizeof(*o));
	o->params.block_size = VOLUME_DEFAULT_BLOCK;
	o->params.compress = CODEC_COMPRESS_ZSTD;
	o->params.level = 1;
	o->cost = KEY_COST_MODERATE;

	while ((c = getopt_long(argc, argv, "b:C:fhV", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_PASSPHRASE_FILE:
			o->passphrase_file = optarg;
			break;
		case OPT_KEY_FILE:
			o->key_file = optarg;
			break;
		case OPT_PBKDF_COST:
			if (cli_parse_cost(optarg, &o->cost)) {
				log_err("invalid --pbkdf-cost '%s': use min, "
					"interactive or moderate",
					optarg);
				mkfs_usage_error();
			}
			o->cost_given = true;
			break;
		case 'b':
			if (mkfs_parse_block_size(optarg,
						  &o->params.block_size))
				mkfs_usage_error();
			break;
		case 'C':
			if (mkfs_parse_compress(optarg, &o->params))
				mkfs_usage_error();
			break;
		case 'f':
			o->force = true;
			break;
		case 'h':
			mkfs_usage();
			exit(CLI_EX_OK);
		case 'V':
			cli_print_version(PROG);
			exit(CLI_EX_OK);
		default:
			mkfs_usage_error();
		}
	}
	if (optind == argc) {
		log_err("no store given");
		mkfs_usage_error();
	}
	if (argc - optind > 1) {
		log_err("unexpected argument '%s'", argv[optind + 1]);
		mkfs_usage_error();
	}
	o->store = argv[optind];
	if (o->passphrase_file && o->key_file) {
		log_err("give either --passphrase-file or --key-file");
		mkfs_usage_error();
	}
	if (o->key_file && o->cost_given) {
		log_err("--pbkdf-cost is for passphrases, not --key-file");
		mkfs_usage_error();
	}
}

static void mkfs_print_summary(const struct mkfs_opts *o,
			       const struct volume_header *h)
{
	char id[2 * VOLUME_ID_BYTES + 1];

	printf("Created embassyfs volume in '%s'\n", o->store);
	printf("Volume id:    %s\n", log_hex(id, h->id, VOLUME_ID_BYTES));
	printf("Block size:   %u\n", h->block_size);
	if (h->compress == CODEC_COMPRESS_ZSTD)
		printf("Compression:  zstd (level %d)\n", h->level);
	else
		printf("Compression:  none\n");
	printf("Key slot 0:   %s\n", o->key_file ? "key file" : "passphrase");
}

static int mkfs_create(const struct mkfs_opts *o)
{
	uint8_t slot[KEY_SLOT_BYTES];
	struct cli_secret secret = {0};
	struct volume *v = NULL;
	struct key *k = NULL;
	int ret;

	ret = key_lib_init();
	if (ret) {
		log_err("cannot initialise libsodium");
		goto out;
	}
	ret = cli_secret_get(&secret, o->passphrase_file, o->key_file, o->store,
			     true);
	if (ret)
		goto out;
	ret = key_new_random(&k);
	if (ret) {
		log_err("cannot create a master key: %s", cli_strerror(ret));
		goto out;
	}
	ret = cli_secret_seal(&secret, k, o->cost, slot);
	if (ret) {
		log_err("cannot seal the key slot: %s", cli_strerror(ret));
		goto out;
	}

	ret = volume_create(o->store, &o->params, k, slot, o->force);
	switch (-ret) {
	case 0:
		break;
	case EEXIST:
		log_err("'%s' already holds an embassyfs volume; "
			"use --force to destroy it and create a new one",
			o->store);
		goto out;
	case ENOTEMPTY:
		log_err("'%s' is not empty and holds no embassyfs volume; "
			"give an empty or new directory",
			o->store);
		goto out;
	case ENOTDIR:
		log_err("'%s' is not a directory; give an empty or new "
			"directory",
			o->store);
		goto out;
	case EBUSY:
		log_err("'%s' is in use by another embassyfs process "
			"(already mounted?); unmount it first",
			o->store);
		goto out;
	default:
		log_err("cannot create a volume in '%s': %s", o->store,
			cli_strerror(ret));
		goto out;
	}

	/* Open it as a mount would, so that what we made is known to work. */
	ret = cli_volume_open(o->store, 0, &secret, &v);
	if (ret)
		goto out_incomplete;
	ret = fs_format(v, (uint32_t)getuid(), (uint32_t)getgid());
	if (ret) {
		log_err("cannot create the root directory in '%s': %s",
			o->store, cli_strerror(ret));
		goto out_incomplete;
	}
	mkfs_print_summary(o, volume_header(v));
	goto out;

out_incomplete:
	log_err("'%s' is incomplete; run mkfs.embassyfs --force on it again",
		o->store);
out:
	volume_close(v);
	key_free(k);
	cli_secret_release(&secret);
	return ret;
}

int main(int argc, char **argv)
{
	struct mkfs_opts o;

	log_init(PROG);
	mkfs_parse_args(argc, argv, &o);
	if (mkfs_create(&o))
		return CLI_MKFS_EX_ERROR;
	return CLI_EX_OK;
}
