/* Lua: trampolines that run Lua functions in children and workers, the forking calls, and the
 * calls that take raw memory. Each is a lua_CFunction of bindings/lua/src/helpers.c (ipc.c for
 * values and arrays), declared in mproc_lua.h.
 * Naming: _mproc.lua_<name> is mproc_lua_<name> in C; generated wrappers keep their C names. */

%native(lua_ref) int mproc_lua_ref(lua_State *L);
%native(lua_unref) int mproc_lua_unref(lua_State *L);
%native(lua_getpid) int mproc_lua_getpid(lua_State *L);
%native(lua_process_spawn) int mproc_lua_process_spawn(lua_State *L);
%native(lua_pool_new) int mproc_lua_pool_new(lua_State *L);
%native(lua_pool_submit) int mproc_lua_pool_submit(lua_State *L);
%native(lua_async_items) int mproc_lua_async_items(lua_State *L);
#ifdef MPROC_WRAP_IPC
%native(lua_value_new) int mproc_lua_value_new(lua_State *L);
%native(lua_array_new) int mproc_lua_array_new(lua_State *L);
#endif
