# build-runtime links wasm-build's python.wasm with this fragment on top of CPython's own
# Makefile (make -f Makefile -f wasm_build_main.mk python-wasm-build.wasm ZLIB_SRC=...): the
# same objects, flags and libraries as CPython's python.wasm rule, with
# Programs/wasm_build_main.c (a copy of python-wasm/wasm_build_main.c) in place of
# Programs/python.c, and three more objects in front of the libraries, which zlib's deflate.o
# and HACL*'s SHA-2 object are then not taken from (see python-wasm/wasm_build_native.c):
#   wasm_build_native.o  deflate's and SHA-256's hand-over to the host
#   wasm_build_zlib.o    zlib's own deflate.c (ZLIB_SRC: the configured zlib source folder)
#                        under other names, built with zlib's flags
#   wasm_build_sha2.o    Modules/_hacl/Hacl_Hash_SHA2.c with its SHA-256 block loop renamed
#                        and wasm_build_native.c's in its place (written by the recipe)

WASM_BUILD_OBJS = Programs/wasm_build_main.o Programs/wasm_build_native.o \
	Programs/wasm_build_zlib.o Programs/wasm_build_sha2.o

Programs/wasm_build_main.o: Programs/wasm_build_main.c
	$(CC) -c $(PY_CORE_CFLAGS) -o $@ Programs/wasm_build_main.c

Programs/wasm_build_native.o: Programs/wasm_build_native.c
	$(CC) -c $(PY_STDMODULE_CFLAGS) $(MODULE_ZLIB_CFLAGS) -o $@ Programs/wasm_build_native.c

Programs/wasm_build_zlib.o: Programs/wasm_build_zlib.c
	$(CC) -c $(CONFIGURE_CFLAGS) -O2 -D_LARGEFILE64_SOURCE=1 -DHAVE_HIDDEN -I$(ZLIB_SRC) \
		-o $@ Programs/wasm_build_zlib.c

Programs/wasm_build_sha2.o: Programs/wasm_build_sha2.c
	$(CC) -c $(LIBHACL_CFLAGS) -I$(srcdir)/Modules/_hacl -o $@ Programs/wasm_build_sha2.c

python-wasm-build.wasm: $(WASM_BUILD_OBJS) $(LINK_PYTHON_DEPS)
	$(LINKCC) $(PY_CORE_LDFLAGS) $(LINKFORSHARED) -o $@ $(WASM_BUILD_OBJS) $(LINK_PYTHON_OBJS) $(LIBS) $(MODLIBS) $(SYSLIBS)
