# EMB_CC_FLAG(FLAG, ACTION-IF-OK): probe whether $CC accepts FLAG.
AC_DEFUN([EMB_CC_FLAG], [
	AS_VAR_PUSHDEF([emb_var], [emb_cv_cflag_$1])
	AC_CACHE_CHECK([whether $CC accepts $1], [emb_var], [
		emb_save_CFLAGS=$CFLAGS
		CFLAGS="$CFLAGS -Werror $1"
		AC_COMPILE_IFELSE([AC_LANG_PROGRAM([], [])],
			[AS_VAR_SET([emb_var], [yes])], [AS_VAR_SET([emb_var], [no])])
		CFLAGS=$emb_save_CFLAGS])
	AS_VAR_IF([emb_var], [yes], [$2])
	AS_VAR_POPDEF([emb_var])
])

# EMB_SAN_FLAG(FLAGS): add sanitizer FLAGS after a link test, or fail.
AC_DEFUN([EMB_SAN_FLAG], [
	AC_MSG_CHECKING([whether $CC links with $1])
	emb_save_CFLAGS=$CFLAGS
	emb_save_LDFLAGS=$LDFLAGS
	CFLAGS="$CFLAGS $1"
	LDFLAGS="$LDFLAGS $1"
	AC_LINK_IFELSE([AC_LANG_PROGRAM([], [])], [emb_ok=yes], [emb_ok=no])
	CFLAGS=$emb_save_CFLAGS
	LDFLAGS=$emb_save_LDFLAGS
	AC_MSG_RESULT([$emb_ok])
	AS_IF([test "x$emb_ok" = "xyes"],
		[SAN_CFLAGS="$SAN_CFLAGS $1"; SAN_LDFLAGS="$SAN_LDFLAGS $1"],
		[AC_MSG_ERROR([$CC does not support $1])])
])
