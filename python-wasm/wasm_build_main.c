/* The entry points of wasm-build's python.wasm; the recipe puts this file in place of
 * CPython's Programs/python.c.
 *
 * `_start` is CPython's usual main: the module is a normal python.wasm for any WASI host.
 *
 * More exports let the host start hooks from a pre-initialized interpreter instead of
 * initializing one per hook (see docs/runtime.md, "The pre-initialized interpreter"):
 *
 *   wasm_build_init     initializes the interpreter the way `python -S` does, reading only
 *                       the stdlib and the environment the host gave it, then returns. The
 *                       host snapshots the instance right after (wasmtime-wizer): memory and
 *                       globals become a new module whose `_start` is wasm_build_start.
 *   wasm_build_start    runs in a fresh instance of that snapshot, with the hook's own WASI
 *                       world: it forgets the snapshot's preopens and environment, takes the
 *                       arguments (`-S` then `-c CODE`, `-m MODULE` or `SCRIPT`, then the
 *                       script's arguments) and runs them as `python` would, then finalizes.
 *   wasm_build_prepare  does what wasm_build_start does but does not finalize: it returns
 *                       with the interpreter as the command left it (the hook runner with a
 *                       backend imported), and the host keeps that instance's memory to start
 *                       later runs from ("The prepared backend" in docs/runtime.md). Exits
 *                       with the command's status if the command fails.
 *
 * wasm_build_init runs no untrusted code: only CPython's own start-up. wasm_build_prepare runs
 * whatever command the host gives it, as wasm_build_start does.
 */

#include "Python.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wasi/api.h>

extern char **environ;

/* wasi-libc's hooks for pre-initialization (libc-bottom-half): drop the preopened folders
 * and the environment read before the snapshot, so the next use asks the new instance. */
void __wasilibc_reset_preopens(void);
void __wasilibc_deinitialize_environ(void);
void __wasilibc_initialize_environ(void);
/* Synthesized by wasm-ld; `_start` calls it, and so must any other way in. */
void __wasm_call_ctors(void);

int
main(int argc, char **argv)
{
    return Py_BytesMain(argc, argv);
}

__attribute__((export_name("wasm_build_init"))) void
wasm_build_init(void)
{
    __wasm_call_ctors();
    PyConfig config;
    PyConfig_InitPythonConfig(&config);
    config.site_import = 0; /* -S: the host adds the build environment itself */
    config.parse_argv = 0;
    char *argv[] = {"python", NULL};
    PyStatus status = PyConfig_SetBytesArgv(&config, 1, argv);
    if (!PyStatus_Exception(status)) {
        status = Py_InitializeFromConfig(&config);
    }
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status)) {
        Py_ExitStatusException(status);
    }
    /* Nothing buffered may survive into the snapshot. */
    if (PyRun_SimpleString("import sys; sys.stdout.flush(); sys.stderr.flush()") != 0) {
        exit(1);
    }
}

/* The WASI arguments of this instance, NULL-terminated; exits on failure. */
static char **
wasi_arguments(size_t *count)
{
    size_t argc, size;
    if (__wasi_args_sizes_get(&argc, &size) != 0) {
        exit(71);
    }
    char **argv = calloc(argc + 1, sizeof(char *));
    char *buffer = malloc(size ? size : 1);
    if (argv == NULL || buffer == NULL || __wasi_args_get((uint8_t **)argv, (uint8_t *)buffer) != 0) {
        exit(71);
    }
    *count = argc;
    return argv;
}

/* Refills posix.environ (which os.environ wraps) from this instance's environment, as
 * posixmodule's convertenviron does at import: bytes keys and values, first one wins. */
static int
refresh_environ(void)
{
    PyObject *posix = PyImport_ImportModule("posix");
    if (posix == NULL) {
        return -1;
    }
    PyObject *dict = PyObject_GetAttrString(posix, "environ");
    Py_DECREF(posix);
    if (dict == NULL || !PyDict_Check(dict)) {
        Py_XDECREF(dict);
        return -1;
    }
    PyDict_Clear(dict);
    for (char **entry = environ; entry != NULL && *entry != NULL; entry++) {
        const char *eq = strchr(*entry, '=');
        if (eq == NULL) {
            continue;
        }
        PyObject *key = PyBytes_FromStringAndSize(*entry, eq - *entry);
        PyObject *value = PyBytes_FromString(eq + 1);
        if (key == NULL || value == NULL || PyDict_SetDefault(dict, key, value) == NULL) {
            Py_XDECREF(key);
            Py_XDECREF(value);
            Py_DECREF(dict);
            return -1;
        }
        Py_DECREF(key);
        Py_DECREF(value);
    }
    Py_DECREF(dict);
    return 0;
}

/* sys.orig_argv: the whole command line, as `python` keeps it. */
static int
set_orig_argv(size_t argc, char **argv)
{
    PyObject *list = PyList_New((Py_ssize_t)argc);
    if (list == NULL) {
        return -1;
    }
    for (size_t i = 0; i < argc; i++) {
        PyObject *arg = PyUnicode_DecodeFSDefault(argv[i]);
        if (arg == NULL) {
            Py_DECREF(list);
            return -1;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, arg);
    }
    int result = PySys_SetObject("orig_argv", list);
    Py_DECREF(list);
    return result;
}

/* sys.argv and sys.path[0] as `python` sets them for the same command line. */
static int
set_argv(size_t argc, char **argv)
{
    wchar_t **wide = PyMem_RawCalloc(argc + 1, sizeof(wchar_t *));
    if (wide == NULL) {
        return -1;
    }
    for (size_t i = 0; i < argc; i++) {
        wide[i] = Py_DecodeLocale(argv[i], NULL);
        if (wide[i] == NULL) {
            return -1;
        }
    }
_Pragma("clang diagnostic push")
_Pragma("clang diagnostic ignored \"-Wdeprecated-declarations\"")
    /* Still the one public call that computes sys.path[0] the way Modules/main.c does. */
    PySys_SetArgvEx((int)argc, wide, 1);
_Pragma("clang diagnostic pop")
    for (size_t i = 0; i < argc; i++) {
        PyMem_RawFree(wide[i]);
    }
    PyMem_RawFree(wide);
    return PyErr_Occurred() ? -1 : 0;
}

static int
run_module(const char *name)
{
    PyObject *runpy = PyImport_ImportModule("runpy");
    PyObject *result = NULL;
    if (runpy != NULL) {
        result = PyObject_CallMethod(runpy, "_run_module_as_main", "sO", name, Py_True);
        Py_DECREF(runpy);
    }
    if (result == NULL) {
        PyErr_Print();
        return 1;
    }
    Py_DECREF(result);
    return 0;
}

static int
run_file(const char *path)
{
    FILE *file = fopen(path, "rb");
    if (file == NULL) {
        fprintf(stderr, "python: can't open file '%s': [Errno %d] %s\n", path, errno, strerror(errno));
        return 2;
    }
    PyCompilerFlags flags = _PyCompilerFlags_INIT;
    return PyRun_AnyFileExFlags(file, path, 1, &flags) != 0;
}

/* Runs this instance's command line in the pre-initialized interpreter; returns its status. */
static int
run_command(void)
{
    __wasilibc_reset_preopens();
    __wasilibc_deinitialize_environ();
    __wasilibc_initialize_environ();

    size_t argc;
    char **argv = wasi_arguments(&argc);
    /* argv: python -S (-c CODE | -m MODULE | SCRIPT) ARGS... */
    if (argc < 3 || strcmp(argv[1], "-S") != 0
        || ((strcmp(argv[2], "-c") == 0 || strcmp(argv[2], "-m") == 0) && argc < 4)) {
        fprintf(stderr, "wasm-build: the pre-initialized interpreter takes "
                        "-S (-c CODE | -m MODULE | SCRIPT) [ARGS...]\n");
        exit(2);
    }
    if (refresh_environ() < 0 || set_orig_argv(argc, argv) < 0) {
        PyErr_Print();
        exit(1);
    }
    if (strcmp(argv[2], "-c") == 0 || strcmp(argv[2], "-m") == 0) {
        /* sys.argv = ['-c' | '-m', ARGS...] */
        char *option = argv[2], *operand = argv[3];
        argv[3] = option;
        if (set_argv(argc - 3, argv + 3) < 0) {
            PyErr_Print();
            exit(1);
        }
        if (option[1] == 'c') {
            PyCompilerFlags flags = _PyCompilerFlags_INIT;
            flags.cf_flags |= PyCF_IGNORE_COOKIE;
            return PyRun_SimpleStringFlags(operand, &flags) != 0;
        }
        return run_module(operand);
    }
    if (set_argv(argc - 2, argv + 2) < 0) {
        PyErr_Print();
        exit(1);
    }
    return run_file(argv[2]);
}

__attribute__((export_name("wasm_build_start"))) void
wasm_build_start(void)
{
    int code = run_command();
    if (Py_FinalizeEx() < 0) {
        code = 120;
    }
    exit(code);
}

__attribute__((export_name("wasm_build_prepare"))) void
wasm_build_prepare(void)
{
    int code = run_command();
    if (code != 0) {
        exit(code);
    }
    /* As after start-up: nothing buffered may survive into the kept memory. */
    if (PyRun_SimpleString("import sys; sys.stdout.flush(); sys.stderr.flush()") != 0) {
        exit(1);
    }
    fflush(NULL);
}
