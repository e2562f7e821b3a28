sbin_PROGRAMS += embassyfs
embassyfs_SOURCES = %D%/main.c %D%/ops.c %D%/init.c %D%/fuse_int.h
embassyfs_CFLAGS = $(AM_CFLAGS) $(FUSE_CFLAGS)
embassyfs_LDADD = $(EMB_LIBS) $(FUSE_LIBS)

# mount(8) runs /sbin/mount.TYPE: the same binary answers to that name.
INSTALL_EXEC_HOOKS += install-mount-helper
UNINSTALL_HOOKS += uninstall-mount-helper
install-mount-helper:
	cd $(DESTDIR)$(sbindir) && rm -f mount.embassyfs && \
		$(LN_S) embassyfs mount.embassyfs
uninstall-mount-helper:
	rm -f $(DESTDIR)$(sbindir)/mount.embassyfs
