/* Lua 5.4 part of mproc.i (included inside #elif defined(SWIGLUA)).
 *
 * The C module is `_mproc` (as for Python); bindings/lua/mproc.lua is the Lua layer on top.
 *
 * Rules (see docs/lua.md):
 *  - a negative status raises a Lua error "MPROC_E<NAME>: <mproc_last_error()>"; 0 is no value (so
 *    out-parameters become the return values); > 0 is an integer;
 *  - Lua is single-threaded: nothing here runs Lua on the pool's dispatcher thread (no completion
 *    callbacks); the blocking apply/map calls wait in the caller;
 *  - children and workers run Lua on the lua_State that made the fork: a process body on the
 *    state that called lua_process_spawn (the child is a fork of that very call), pool tasks on
 *    the state that called lua_pool_new (FORK pools fork workers from a zygote made during that
 *    call). Functions travel as registry references made before the fork (lua_ref). */

/* The hand-written C of the module is in bindings/lua/src (mproc_lua.h says how the two halves
 * of the module meet); here are only SWIG directives. */
%{
#include "mproc_lua.h"
%}
%init %{
  mproc_lua_init(L);
%}

/* ---- status codes to Lua errors (mproc_lua_push_error: bindings/lua/src/errors.c) ---------- */
%typemap(out) int {
  if ($1 < 0) {
    mproc_lua_push_error(L, $1);
    SWIG_fail;
  }
  if ($1 != 0) {
    lua_pushinteger(L, (lua_Integer)$1);
    SWIG_arg++;
  }
}
%typemap(out) size_t { lua_pushinteger(L, (lua_Integer)$1); SWIG_arg++; }
%typemap(out) unsigned int { lua_pushinteger(L, (lua_Integer)$1); SWIG_arg++; }

/* Integers come back as Lua integers (SWIG's OUTPUT typemaps push floats). */
%typemap(argout) int *out, int *task_code { lua_pushinteger(L, (lua_Integer)*$1); SWIG_arg++; }
%typemap(argout) int64_t *out, int64_t *old, int64_t *expected {
  lua_pushinteger(L, (lua_Integer)*$1);
  SWIG_arg++;
}
%typemap(in, checkfn="lua_isnumber") int64_t *expected (int64_t tmp) {
  tmp = (int64_t)lua_tointeger(L, $input);
  $1 = &tmp;
}
%typemap(in, checkfn="lua_isnumber") int64_t, const int64_t {
  $1 = lua_isinteger(L, $input) ? (int64_t)lua_tointeger(L, $input) : (int64_t)lua_tonumber(L, $input);
}

/* Handle out-parameters: `T **out`, `T **out_a`, `T **out_b` are returned. */
%typemap(in, numinputs=0) SWIGTYPE **out ($*1_ltype tmp = NULL),
                          SWIGTYPE **out_a ($*1_ltype tmp = NULL),
                          SWIGTYPE **out_b ($*1_ltype tmp = NULL) {
  $1 = &tmp;
}
%typemap(argout) SWIGTYPE **out, SWIGTYPE **out_a, SWIGTYPE **out_b {
  SWIG_NewPointerObj(L, (void *)(tmp$argnum), $*1_descriptor, 0);
  SWIG_arg++;
}

/* size_t out-parameters. */
%typemap(in, numinputs=0) size_t *out (size_t tmp = 0), size_t *index (size_t tmp = 0) { $1 = &tmp; }
%typemap(argout) size_t *out, size_t *index { lua_pushinteger(L, (lua_Integer)tmp$argnum); SWIG_arg++; }

/* Borrowed C strings out (owned by the handle). */
%typemap(in, numinputs=0) const char **message (const char *tmp = NULL) { $1 = ($1_ltype)&tmp; }
%typemap(argout) const char **message { lua_pushstring(L, tmp$argnum ? tmp$argnum : ""); SWIG_arg++; }

/* Byte buffers in: Lua strings (any bytes). */
%typemap(in, checkfn="lua_isstring") (const void *data, size_t len) {
  size_t n_;
  $1 = (void *)lua_tolstring(L, $input, &n_);
  $2 = n_;
}

/* Malloc'ed byte buffers out (mproc_queue_get_alloc, mproc_conn_recv_bytes_alloc). */
%typemap(in, numinputs=0) (void **out, size_t *out_len) (void *tmp = NULL, size_t n = 0) {
  $1 = &tmp;
  $2 = &n;
}
%typemap(argout) (void **out, size_t *out_len) {
  lua_pushlstring(L, tmp$argnum ? (const char *)tmp$argnum : "", n$argnum);
  SWIG_arg++;
  free(tmp$argnum);
  tmp$argnum = NULL;
}

/* Tokens and names written to a caller's buffer come back as the (only) string. */
%typemap(in, numinputs=0) (char *buf, size_t cap) (char tmp[1024]) {
  tmp[0] = 0;
  $1 = tmp;
  $2 = sizeof tmp;
}
%typemap(argout) (char *buf, size_t cap) {
  lua_pop(L, SWIG_arg);
  SWIG_arg = 0;
  lua_pushstring(L, tmp$argnum);
  SWIG_arg++;
}

/* Lua helpers with their own argument handling (bindings/lua/src). */
%include "lua_helpers.i"
