/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/*
 * fsck_maps.c - the block and inode tables shared by the passes
 *
 * Block table: open addressing with linear probing on the first 8 bytes
 * of the id (a keyed 256-bit hash, so those bytes are already uniform).
 * 40 bytes per entry, kept at most 80% full: about 50 bytes per block,
 * growing by doubling. Two ids sharing their first 8 bytes are noticed
 * where the column families list ids in order (FSCK_BLK_COLLIDE) and are
 * then left unjudged; the chance of one pair in 10^8 blocks is 3 * 10^-4.
 *
 * Inode table: an array sorted by inode number (the inode column family
 * is read in that order), 64 bytes per inode, searched by bisection.
 */
#include "fsck.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "fsck_int.h"

#define BLK_MIN_CAP 1024
#define TABLE_HUGE  (2u << 20)

/*
 * Large tables are filled in random order, so every page of them faults
 * once: on a virtual machine each fault costs microseconds, and a table of
 * tens of megabytes cost a tenth of a second of faults alone. Tables of 2
 * MiB or more are mapped with transparent huge pages asked for.
 */
void *fsck_table_calloc(size_t n, size_t size)
{
	void *p;

	if (size && n > SIZE_MAX / size)
		return NULL;
	if (n * size < TABLE_HUGE)
		return calloc(n ? n : 1, size ? size : 1);
	p = mmap(NULL, n * size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
#ifdef MADV_HUGEPAGE
	(void)madvise(p, n * size, MADV_HUGEPAGE);
#endif
	return p;
}

void fsck_table_free(void *p, size_t n, size_t size)
{
	if (!p)
		return;
	if (n * size < TABLE_HUGE)
		free(p);
	else
		munmap(p, n * size);
}

uint64_t fsck_blk_tag(const uint8_t *id)
{
	return get_be64(id);
}

static size_t blk_slot(const struct fsck_blkmap *m, uint64_t tag)
{
	/*
	 * The low bits: the column families list ids in order, and slots
	 * taken from the high bits would fill the table in order too, one
	 * long run for linear probing to crawl through.
	 */
	return (size_t)(tag & (m->cap - 1));
}

int fsck_blk_init(struct fsck_blkmap *m, size_t expect)
{
	size_t cap = BLK_MIN_CAP;

	while (cap * 4 < expect * 5)
		cap *= 2;
	m->tab = fsck_table_calloc(cap, sizeof(*m->tab));
	if (!m->tab)
		return -ENOMEM;
	m->cap = cap;
	m->n = 0;
	return 0;
}

void fsck_blk_release(struct fsck_blkmap *m)
{
	fsck_table_free(m->tab, m->cap, sizeof(*m->tab));
	memset(m, 0, sizeof(*m));
}

static struct fsck_blk *blk_probe(const struct fsck_blkmap *m, uint64_t tag)
{
	size_t s = blk_slot(m, tag);

	for (;;) {
		struct fsck_blk *b = &m->tab[s];

		if (!(b->flags & FSCK_BLK_USED) || b->tag == tag)
			return b;
		if (++s == m->cap)
			s = 0;
	}
}

struct fsck_blk *fsck_blk_find(const struct fsck_blkmap *m, const uint8_t *id)
{
	struct fsck_blk *b;

	if (!m->tab)
		return NULL;
	b = blk_probe(m, fsck_blk_tag(id));
	return (b->flags & FSCK_BLK_USED) ? b : NULL;
}

static int blk_grow(struct fsck_blkmap *m)
{
	struct fsck_blkmap bigger = {.cap = m->cap * 2, .n = m->n};

	bigger.tab = fsck_table_calloc(bigger.cap, sizeof(*bigger.tab));
	if (!bigger.tab)
		return -ENOMEM;
	for (size_t q = 0; q < m->cap; q++)
		if (m->tab[q].flags & FSCK_BLK_USED)
			*blk_probe(&bigger, m->tab[q].tag) = m->tab[q];
	fsck_table_free(m->tab, m->cap, sizeof(*m->tab));
	*m = bigger;
	return 0;
}

struct fsck_blk *fsck_blk_get(struct fsck_blkmap *m, const uint8_t *id)
{
	uint64_t tag = fsck_blk_tag(id);
	struct fsck_blk *b;

	if (!m->tab && fsck_blk_init(m, 0))
		return NULL;
	b = blk_probe(m, tag);
	if (b->flags & FSCK_BLK_USED)
		return b;
	if ((m->n + 1) * 5 > m->cap * 4) {
		if (blk_grow(m))
			return NULL;
		b = blk_probe(m, tag);
	}
	memset(b, 0, sizeof(*b));
	b->tag = tag;
	b->flags = FSCK_BLK_USED;
	m->n++;
	return b;
}

int fsck_ino_add(struct fsck_inomap *m, uint64_t ino, uint8_t type,
		 uint32_t nlink, uint16_t flags)
{
	struct fsck_ino *e;
	size_t pos = m->n;

	if (m->n == m->cap) {
		size_t cap = m->cap ? 2 * m->cap : 1024;
		struct fsck_ino *p = realloc(m->tab, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		m->tab = p;
		m->cap = cap;
	}
	/* Appends come in order; keep it sorted if one does not. */
	if (m->n && m->tab[m->n - 1].ino >= ino) {
		size_t lo = 0, hi = m->n;

		while (lo < hi) {
			size_t mid = (lo + hi) / 2;

			if (m->tab[mid].ino < ino)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo < m->n && m->tab[lo].ino == ino)
			return -EEXIST;
		pos = lo;
		memmove(&m->tab[pos + 1], &m->tab[pos],
			(m->n - pos) * sizeof(*m->tab));
	}
	e = &m->tab[pos];
	memset(e, 0, sizeof(*e));
	e->ino = ino;
	e->type = type;
	e->nlink = nlink;
	e->flags = flags;
	m->n++;
	return 0;
}

struct fsck_ino *fsck_ino_find(const struct fsck_inomap *m, uint64_t ino)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (m->tab[mid].ino < ino)
			lo = mid + 1;
		else if (m->tab[mid].ino > ino)
			hi = mid;
		else
			return &m->tab[mid];
	}
	return NULL;
}

void fsck_ino_release(struct fsck_inomap *m)
{
	free(m->tab);
	memset(m, 0, sizeof(*m));
}

bool fsck_type_valid(unsigned type)
{
	switch (type) {
	case 001: /* fifo */
	case 002: /* char */
	case 004: /* dir */
	case 006: /* block */
	case 010: /* regular */
	case 012: /* symlink */
	case 014: /* socket */
		return true;
	default:
		return false;
	}
}

const char *fsck_type_name(unsigned type)
{
	switch (type) {
	case 001:
		return "fifo";
	case 002:
		return "character device";
	case 004:
		return "directory";
	case 006:
		return "block device";
	case 010:
		return "regular file";
	case 012:
		return "symbolic link";
	case 014:
		return "socket";
	default:
		return "unknown";
	}
}
