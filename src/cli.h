#ifndef EMBASSYFS_CLI_H
#define EMBASSYFS_CLI_H
#endif
