/* Lua: shared values and arrays (the calls that take raw memory). */

#include "mproc_lua.h"

/* lua_value_new(typecode, raw) -> value handle (zero; set it with mproc_value_set_*). */
int mproc_lua_value_new(lua_State *L) {
  const char *tc = luaL_checkstring(L, 1);
  mproc_value_opts_t o = MPROC_VALUE_OPTS_INIT;
  o.raw = lua_toboolean(L, 2);
  mproc_value_t *v = NULL;
  int rc = mproc_value_new(&v, tc[0], NULL, &o);
  if (rc < 0) return mproc_lua_raise(L, rc);
  SWIG_NewPointerObj(L, v, mproc_lua_type_value, 0);
  return 1;
}

/* lua_array_new(typecode, length, raw) -> array handle (zeros; set with mproc_array_set_*). */
int mproc_lua_array_new(lua_State *L) {
  const char *tc = luaL_checkstring(L, 1);
  lua_Integer n = luaL_checkinteger(L, 2);
  if (n < 1) return luaL_error(L, "Array: length must be >= 1");
  mproc_value_opts_t o = MPROC_VALUE_OPTS_INIT;
  o.raw = lua_toboolean(L, 3);
  mproc_array_t *a = NULL;
  int rc = mproc_array_new(&a, tc[0], (size_t)n, NULL, &o);
  if (rc < 0) return mproc_lua_raise(L, rc);
  SWIG_NewPointerObj(L, a, mproc_lua_type_array, 0);
  return 1;
}
