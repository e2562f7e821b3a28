# fsck.embassyfs: library passes and the tool (owned by the fsck work)
