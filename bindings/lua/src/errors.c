/* Status codes to Lua errors, the handle check every native starts with, and the module's init. */

#include "mproc_lua.h"

void mproc_lua_push_error(lua_State *L, int code) {
  const char *msg = mproc_last_error();
  if (!msg || !*msg) msg = mproc_strerror(code);
  luaL_where(L, 1);
  lua_pushfstring(L, "%s: %s", mproc_err_name(code), msg);
  lua_concat(L, 2);
}

int mproc_lua_raise(lua_State *L, int code) {
  mproc_lua_push_error(L, code);
  return lua_error(L);
}

void *mproc_lua_check(lua_State *L, int idx, swig_type_info *ty) {
  void *p = NULL;
  if (!SWIG_IsOK(SWIG_ConvertPtr(L, idx, &p, ty, 0)) || !p)
    luaL_error(L, "argument %d: expected a %s handle", idx, ty->str);
  return p;
}

/* ---- module init ------------------------------------------------------------------------------ */
#define MPROC_LUA_DEFINE_TYPE(kind) swig_type_info *mproc_lua_type_##kind = NULL;
MPROC_LUA_HANDLE_TYPES(MPROC_LUA_DEFINE_TYPE)
#undef MPROC_LUA_DEFINE_TYPE

void mproc_lua_init(lua_State *L) {
  /* SWIG's module init has put the type table in L's registry: look each handle type up by its C
   * name. The table is the module's own (static in the wrapper), the same for every lua_State. */
#define MPROC_LUA_LOOKUP_TYPE(kind)                                        \
  mproc_lua_type_##kind = SWIG_TypeQuery(L, "mproc_" #kind "_t *");        \
  if (!mproc_lua_type_##kind) luaL_error(L, "_mproc: SWIG type mproc_" #kind "_t * not found");
  MPROC_LUA_HANDLE_TYPES(MPROC_LUA_LOOKUP_TYPE)
#undef MPROC_LUA_LOOKUP_TYPE
}
