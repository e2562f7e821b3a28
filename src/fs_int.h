#ifndef EMBASSYFS_FS_INT_H
#define EMBASSYFS_FS_INT_H
#endif
