dist_man_MANS += %D%/embassyfs.8 %D%/mkfs.embassyfs.8
EXTRA_DIST += %D%/DESIGN.md %D%/FORMAT.md %D%/PERFORMANCE.md
