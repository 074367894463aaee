# build-runtime links wasm-build's python.wasm with this fragment on top of CPython's own
# Makefile (make -f Makefile -f wasm_build_main.mk python-wasm-build.wasm): the same objects,
# flags and libraries as CPython's python.wasm rule, with Programs/wasm_build_main.c (a copy of
# python-wasm/wasm_build_main.c) in place of Programs/python.c.

Programs/wasm_build_main.o: Programs/wasm_build_main.c
	$(CC) -c $(PY_CORE_CFLAGS) -o $@ Programs/wasm_build_main.c

python-wasm-build.wasm: Programs/wasm_build_main.o $(LINK_PYTHON_DEPS)
	$(LINKCC) $(PY_CORE_LDFLAGS) $(LINKFORSHARED) -o $@ Programs/wasm_build_main.o $(LINK_PYTHON_OBJS) $(LIBS) $(MODLIBS) $(SYSLIBS)
