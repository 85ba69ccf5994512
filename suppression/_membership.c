/*
 * Batch membership over pyroaring's BitMap64: one C loop instead of one Python
 * call per number.
 *
 * pyroaring answers membership one number at a time (`number in bitmap`), which
 * costs a C call through the interpreter per number: 50-90 ns, of which the
 * lookup itself is a fraction.  pyroaring exposes each bitmap's address
 * (`BitMap64.raw_pointer`, "intended for FFI interop") and its shared object
 * exports CRoaring's C API.  This module resolves `roaring64_bitmap_contains`
 * in the pyroaring module the interpreter has already loaded, so the function
 * and the bitmaps come from the same build of CRoaring, and calls it in a loop.
 *
 * It holds the GIL throughout: no other thread can free or change the bitmap
 * during a call.  suppression/membership.py is the only caller; it binds the
 * function once, checks it against pyroaring's own answers, and falls back to
 * pyroaring's per-number calls when either step fails.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <stdbool.h>
#include <stdint.h>

typedef bool (*contains_function)(const void *bitmap, uint64_t value);

static contains_function roaring_contains = NULL;

static PyObject *
bind(PyObject *module, PyObject *args)
{
    const char *path;
    if (!PyArg_ParseTuple(args, "s:bind", &path)) {
        return NULL;
    }
    /* RTLD_NOLOAD: only the copy the interpreter loaded, never a second one. */
    void *library = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    if (library == NULL) {
        Py_RETURN_FALSE;
    }
    void *symbol = dlsym(library, "roaring64_bitmap_contains");
    dlclose(library); /* the interpreter still holds its own reference */
    roaring_contains = (contains_function)symbol;
    return PyBool_FromLong(roaring_contains != NULL);
}

static int
uint64_buffer(PyObject *object, Py_buffer *view, int writable, const char *what)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(object, view, flags) != 0) {
        return -1;
    }
    const char *format = view->format == NULL ? "B" : view->format;
    if (format[0] == '@' || format[0] == '=' || (format[0] == '<' && PY_LITTLE_ENDIAN)) {
        format++; /* native byte order */
    }
    if (view->itemsize != 8 || (format[0] != 'Q' && format[0] != 'L') || format[1] != '\0') {
        PyErr_Format(PyExc_TypeError, "%s must be unsigned 64-bit integers, not '%s'", what,
                     view->format == NULL ? "B" : view->format);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static PyObject *
mark_members(PyObject *module, PyObject *args)
{
    unsigned long long address;
    PyObject *values_object;
    PyObject *masks_object;
    int bit;
    if (!PyArg_ParseTuple(args, "KOOi:mark_members", &address, &values_object, &masks_object,
                          &bit)) {
        return NULL;
    }
    if (roaring_contains == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "bind() has not found roaring64_bitmap_contains");
        return NULL;
    }
    if (address == 0) {
        PyErr_SetString(PyExc_ValueError, "the bitmap address is 0");
        return NULL;
    }
    if (bit < 0 || bit > 63) {
        PyErr_Format(PyExc_ValueError, "bit must be 0 to 63, not %d", bit);
        return NULL;
    }
    Py_buffer values, masks;
    if (uint64_buffer(values_object, &values, 0, "values") != 0) {
        return NULL;
    }
    if (uint64_buffer(masks_object, &masks, 1, "masks") != 0) {
        PyBuffer_Release(&values);
        return NULL;
    }
    if (values.len != masks.len) {
        PyErr_Format(PyExc_ValueError, "%zd values but %zd masks", values.len / 8,
                     masks.len / 8);
        PyBuffer_Release(&values);
        PyBuffer_Release(&masks);
        return NULL;
    }
    const void *bitmap = (const void *)(uintptr_t)address;
    const uint64_t *numbers = (const uint64_t *)values.buf;
    uint64_t *marks = (uint64_t *)masks.buf;
    const uint64_t flag = (uint64_t)1 << bit;
    Py_ssize_t count = values.len / 8;
    Py_ssize_t found = 0;
    for (Py_ssize_t index = 0; index < count; index++) {
        if (roaring_contains(bitmap, numbers[index])) {
            marks[index] |= flag;
            found++;
        }
    }
    PyBuffer_Release(&values);
    PyBuffer_Release(&masks);
    return PyLong_FromSsize_t(found);
}

static PyMethodDef methods[] = {
    {"bind", bind, METH_VARARGS,
     "bind(path) -> bool: find roaring64_bitmap_contains in the loaded pyroaring module."},
    {"mark_members", mark_members, METH_VARARGS,
     "mark_members(address, values, masks, bit) -> int: set `bit` in masks[i] for each\n"
     "values[i] on the bitmap at `address` (BitMap64.raw_pointer); return how many."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_definition = {
    PyModuleDef_HEAD_INIT, "_membership", "Batch membership over pyroaring's BitMap64.", -1,
    methods,
};

PyMODINIT_FUNC
PyInit__membership(void)
{
    return PyModule_Create(&module_definition);
}
