# fsck corruption cases
