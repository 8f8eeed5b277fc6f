/* Lua: trampolines that run Lua functions in children and workers, the forking calls, and the
 * calls that take raw memory. Each is a lua_CFunction of bindings/lua/src/helpers.c (ipc.c for
 * values and arrays), declared in mproc_lua.h. */

%native(ref) int mproc_lua_ref(lua_State *L);
%native(unref) int mproc_lua_unref(lua_State *L);
%native(getpid) int mproc_lua_getpid(lua_State *L);
%native(process_spawn) int mproc_lua_process_spawn(lua_State *L);
%native(pool_new) int mproc_lua_pool_new(lua_State *L);
%native(pool_submit) int mproc_lua_pool_submit(lua_State *L);
%native(async_items) int mproc_lua_async_items(lua_State *L);
#ifdef MPROC_WRAP_IPC
%native(value_new) int mproc_lua_value_new(lua_State *L);
%native(array_new) int mproc_lua_array_new(lua_State *L);
#endif
