/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/*
 * fs_acl.c - POSIX ACLs in their xattr form (system.posix_acl_*)
 *
 * The kernel enforces ACLs (FUSE_CAP_POSIX_ACL) from what getxattr returns;
 * the filesystem keeps the mode and the ACL in step, as ext4 does:
 * setting an access ACL sets the mode's permission bits, chmod rewrites the
 * ACL's owner, mask (or group) and other entries, and a new inode in a
 * directory with a default ACL inherits it, masked by the creation mode,
 * instead of having the umask applied.
 *
 * The xattr form is little-endian: u32 version (2), then entries of
 * u16 tag, u16 perm, u32 id, sorted by tag then id.
 */
#include "fs.h"

#include <errno.h>
#include <string.h>

#include "fs_int.h"

#define ACL_VERSION 2
#define ACL_HDR 4
#define ACL_ENTRY 8
#define TAG_USER_OBJ 0x01
#define TAG_USER 0x02
#define TAG_GROUP_OBJ 0x04
#define TAG_GROUP 0x08
#define TAG_MASK 0x10
#define TAG_OTHER 0x20

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static void set_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

int fs_acl_check(const void *val, size_t len, bool *equiv, uint32_t *perm)
{
	const uint8_t *p = val;
	unsigned seen = 0, prev_tag = 0;
	uint32_t prev_id = 0;
	uint16_t uo = 0, go = 0, mask = 0, oth = 0;
	size_t n;

	if (len < ACL_HDR || (len - ACL_HDR) % ACL_ENTRY ||
	    le32(p) != ACL_VERSION)
		return -EINVAL;
	n = (len - ACL_HDR) / ACL_ENTRY;
	for (size_t q = 0; q < n; q++) {
		const uint8_t *e = p + ACL_HDR + q * ACL_ENTRY;
		unsigned tag = le16(e), pm = le16(e + 2);
		uint32_t id = le32(e + 4);

		if (pm & ~7u)
			return -EINVAL;
		if (tag < prev_tag || (tag == prev_tag && id <= prev_id &&
				       (tag == TAG_USER || tag == TAG_GROUP)))
			return -EINVAL;
		switch (tag) {
		case TAG_USER_OBJ:
			uo = (uint16_t)pm;
			break;
		case TAG_GROUP_OBJ:
			go = (uint16_t)pm;
			break;
		case TAG_MASK:
			mask = (uint16_t)pm;
			break;
		case TAG_OTHER:
			oth = (uint16_t)pm;
			break;
		case TAG_USER:
		case TAG_GROUP:
			break;
		default:
			return -EINVAL;
		}
		if ((tag != TAG_USER && tag != TAG_GROUP) && (seen & tag))
			return -EINVAL;
		seen |= tag;
		prev_tag = tag;
		prev_id = id;
	}
	if ((seen & (TAG_USER_OBJ | TAG_GROUP_OBJ | TAG_OTHER)) !=
	    (TAG_USER_OBJ | TAG_GROUP_OBJ | TAG_OTHER))
		return -EINVAL;
	if ((seen & (TAG_USER | TAG_GROUP)) && !(seen & TAG_MASK))
		return -EINVAL;
	*equiv = !(seen & (TAG_USER | TAG_GROUP | TAG_MASK));
	*perm = (uint32_t)(uo << 6 | ((seen & TAG_MASK) ? mask : go) << 3 | oth);
	return 0;
}

void fs_acl_chmod(void *val, size_t len, uint32_t mode)
{
	uint8_t *p = val;
	bool has_mask = false;
	size_t n = (len - ACL_HDR) / ACL_ENTRY;

	for (size_t q = 0; q < n; q++)
		if (le16(p + ACL_HDR + q * ACL_ENTRY) == TAG_MASK)
			has_mask = true;
	for (size_t q = 0; q < n; q++) {
		uint8_t *e = p + ACL_HDR + q * ACL_ENTRY;

		switch (le16(e)) {
		case TAG_USER_OBJ:
			set_le16(e + 2, (uint16_t)(mode >> 6 & 7));
			break;
		case TAG_GROUP_OBJ:
			if (!has_mask)
				set_le16(e + 2, (uint16_t)(mode >> 3 & 7));
			break;
		case TAG_MASK:
			set_le16(e + 2, (uint16_t)(mode >> 3 & 7));
			break;
		case TAG_OTHER:
			set_le16(e + 2, (uint16_t)(mode & 7));
			break;
		}
	}
}

bool fs_acl_create_masq(void *val, size_t len, uint32_t *mode)
{
	uint8_t *p = val;
	size_t n = (len - ACL_HDR) / ACL_ENTRY;
	uint8_t *group_obj = NULL, *mask = NULL;
	uint32_t m = *mode;
	bool equiv = true;

	for (size_t q = 0; q < n; q++) {
		uint8_t *e = p + ACL_HDR + q * ACL_ENTRY;
		uint16_t pm = le16(e + 2);

		switch (le16(e)) {
		case TAG_USER_OBJ:
			pm &= (uint16_t)(m >> 6 & 7);
			set_le16(e + 2, pm);
			m = (m & ~0700u) | (uint32_t)pm << 6;
			break;
		case TAG_USER:
		case TAG_GROUP:
			equiv = false;
			break;
		case TAG_GROUP_OBJ:
			group_obj = e;
			break;
		case TAG_MASK:
			mask = e;
			equiv = false;
			break;
		case TAG_OTHER:
			pm &= (uint16_t)(m & 7);
			set_le16(e + 2, pm);
			m = (m & ~0007u) | pm;
			break;
		}
	}
	if (mask) {
		uint16_t pm = le16(mask + 2) & (uint16_t)(m >> 3 & 7);

		set_le16(mask + 2, pm);
		m = (m & ~0070u) | (uint32_t)pm << 3;
	} else if (group_obj) {
		uint16_t pm = le16(group_obj + 2) & (uint16_t)(m >> 3 & 7);

		set_le16(group_obj + 2, pm);
		m = (m & ~0070u) | (uint32_t)pm << 3;
	}
	*mode = m;
	return equiv;
}
