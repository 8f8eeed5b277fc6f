/* Lua: references, processes, pools and async results. Trampolines run Lua functions in children
 * and workers; functions travel as registry references (lua_ref, lua_unref) taken before the fork,
 * and the fork copies the registry, so the reference is valid in the child. */

#include "mproc_lua.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* What the next fork runs: set just before mproc_process_start / mproc_pool_new, so the child
 * (or the pool's zygote, and every worker forked from it) has its own copy. */
static int mproc_lua_process_ref = LUA_NOREF;
static int mproc_lua_pool_runner = LUA_NOREF;

/* Message handler: the error text with a traceback (used for process bodies). */
static int mproc_lua_traceback(lua_State *L) {
  const char *msg = luaL_tolstring(L, 1, NULL);
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* ---- trampolines (run in children) ------------------------------------------------------- */
/* Process body: the function referenced by mproc_lua_process_ref gets the argument bytes; an
 * integer result is the exit code, nil/true 0, false 1; a Lua error prints and exits 1. */
static int mproc_lua_process_main(void *arg, size_t len, void *payload) {
  lua_State *L = (lua_State *)payload;
  int top = lua_gettop(L), code = 0;
  lua_pushcfunction(L, mproc_lua_traceback);
  lua_rawgeti(L, LUA_REGISTRYINDEX, mproc_lua_process_ref);
  lua_pushlstring(L, arg ? (const char *)arg : "", len);
  if (lua_pcall(L, 1, 1, top + 1) != LUA_OK) {
    fprintf(stderr, "mproc: error in process %s: %s\n", mproc_current_name(), lua_tostring(L, -1));
    code = 1;
  } else if (lua_isinteger(L, -1)) {
    code = (int)(lua_tointeger(L, -1) & 0xff);
  } else if (lua_isboolean(L, -1)) {
    code = lua_toboolean(L, -1) ? 0 : 1;
  }
  lua_settop(L, top);
  fflush(NULL); /* the child ends with _exit: flush what print() buffered */
  return code;
}

/* Pool task: the pool's runner (a Lua function made before the pool) gets the argument bytes and
 * returns the result bytes (a string, or nil for none). A Lua error fails the task with its
 * message: the caller gets MPROC_ETASKFAILED for that item. */
static int mproc_lua_task(mproc_task_ctx_t *ctx, const void *arg, size_t len, void *payload) {
  lua_State *L = (lua_State *)payload;
  int top = lua_gettop(L), rc = 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, mproc_lua_pool_runner);
  lua_pushlstring(L, arg ? (const char *)arg : "", len);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    const char *msg = luaL_tolstring(L, -1, NULL);
    rc = mproc_task_fail(ctx, MPROC_ETASKFAILED, "%s", msg);
  } else if (lua_type(L, -1) == LUA_TSTRING) {
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    rc = mproc_task_return(ctx, s, n);
  } else if (!lua_isnil(L, -1)) {
    rc = mproc_task_fail(ctx, MPROC_ETASKFAILED, "task returned a %s, not a string",
                         luaL_typename(L, -1));
  }
  lua_settop(L, top);
  fflush(NULL);
  return rc;
}

/* ---- natives ------------------------------------------------------------------------------- */
/* lua_ref(value) -> integer: keep value in the registry (so a forked child finds it). */
int mproc_lua_ref(lua_State *L) {
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  lua_pushinteger(L, luaL_ref(L, LUA_REGISTRYINDEX));
  return 1;
}
/* lua_unref(integer): drop a reference made by lua_ref(). */
int mproc_lua_unref(lua_State *L) {
  luaL_unref(L, LUA_REGISTRYINDEX, (int)luaL_checkinteger(L, 1));
  return 0;
}
int mproc_lua_getpid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)getpid());
  return 1;
}

/* lua_process_spawn(fn_ref, arg_bytes, name|nil, daemon, start_method) -> started process handle.
 * The child is a fork of this call: it runs registry[fn_ref](arg_bytes) on this lua_State. */
int mproc_lua_process_spawn(lua_State *L) {
  int ref = (int)luaL_checkinteger(L, 1);
  size_t len;
  const char *arg = luaL_optlstring(L, 2, "", &len);
  const char *name = luaL_optstring(L, 3, NULL);
  int daemon = lua_toboolean(L, 4);
  int method = (int)luaL_optinteger(L, 5, MPROC_START_FORK);
  if (method != MPROC_START_FORK && method != MPROC_START_DEFAULT)
    return luaL_error(L, "mproc (Lua): only the fork start method runs Lua functions");
  mproc_process_opts_t o = MPROC_PROCESS_OPTS_INIT;
  o.name = name;
  o.daemon = daemon;
  o.start_method = MPROC_START_FORK;
  o.payload = L;
  mproc_process_t *p = NULL;
  int rc = mproc_process_new(&p, mproc_lua_process_main, arg, len, &o);
  if (rc < 0) return mproc_lua_raise(L, rc);
  mproc_lua_process_ref = ref;
  fflush(NULL); /* do not hand buffered output to the child */
  rc = mproc_process_start(p);
  mproc_lua_process_ref = LUA_NOREF;
  if (rc < 0) {
    mproc_process_free(p);
    return mproc_lua_raise(L, rc);
  }
  SWIG_NewPointerObj(L, p, mproc_lua_type_process, 0);
  return 1;
}

/* lua_pool_new(runner_ref, workers, task_timeout, max_tasks_per_child) -> pool handle.
 * Every worker runs registry[runner_ref](arg_bytes) on this lua_State, as it was now. */
int mproc_lua_pool_new(lua_State *L) {
  int ref = (int)luaL_checkinteger(L, 1);
  mproc_pool_opts_t o = MPROC_POOL_OPTS_INIT;
  o.workers = (int)luaL_optinteger(L, 2, 0);
  o.task_timeout = luaL_optnumber(L, 3, 0.0);
  o.max_tasks_per_child = (int)luaL_optinteger(L, 4, 0);
  o.backend = "local"; /* tasks are this interpreter's functions: local workers always */
  o.start_method = MPROC_START_FORK;
  o.payload = L;
  mproc_pool_t *pool = NULL;
  mproc_lua_pool_runner = ref;
  fflush(NULL);
  int rc = mproc_pool_new(&pool, &o);
  mproc_lua_pool_runner = LUA_NOREF;
  if (rc < 0) return mproc_lua_raise(L, rc);
  SWIG_NewPointerObj(L, pool, mproc_lua_type_pool, 0);
  return 1;
}

/* lua_pool_submit(pool, arg_bytes | {arg_bytes...}, chunksize) -> async handle of an apply (a
 * string) or a map (a table); free it with mproc_async_free. The caller waits for it in slices
 * (mproc_async_wait), so that Ctrl-C reaches Lua meanwhile. */
int mproc_lua_pool_submit(lua_State *L) {
  mproc_pool_t *pool = (mproc_pool_t *)mproc_lua_check(L, 1, mproc_lua_type_pool);
  mproc_async_opts_t o = MPROC_ASYNC_OPTS_INIT;
  o.chunksize = (size_t)luaL_optinteger(L, 3, 0);
  mproc_async_t *r = NULL;
  int rc;
  if (lua_type(L, 2) == LUA_TSTRING) {
    size_t len;
    const char *arg = lua_tolstring(L, 2, &len);
    rc = mproc_pool_apply_async(pool, mproc_lua_task, arg, len, &o, &r);
  } else {
    luaL_checktype(L, 2, LUA_TTABLE);
    size_t n = (size_t)lua_rawlen(L, 2);
    const void **args = (const void **)calloc(n ? n : 1, sizeof *args);
    size_t *lens = (size_t *)calloc(n ? n : 1, sizeof *lens);
    if (!args || !lens) {
      free(args);
      free(lens);
      return luaL_error(L, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
      lua_rawgeti(L, 2, (lua_Integer)i + 1);
      if (lua_type(L, -1) != LUA_TSTRING) {
        free(args);
        free(lens);
        return luaL_error(L, "pool: item %d is a %s, not a string", (int)i + 1,
                          luaL_typename(L, -1));
      }
      args[i] = lua_tolstring(L, -1, &lens[i]); /* anchored by the table */
      lua_pop(L, 1);
    }
    rc = mproc_pool_map_async(pool, mproc_lua_task, args, lens, n, &o, &r);
    free(args);
    free(lens);
  }
  if (rc < 0) return mproc_lua_raise(L, rc);
  SWIG_NewPointerObj(L, r, mproc_lua_type_async, 0);
  return 1;
}

/* lua_async_items(r) -> results, errors of a ready result: results[i] the bytes of item i (absent
 * when it failed or gave none), errors[i] "MPROC_E<NAME>: message" for a failed item. */
int mproc_lua_async_items(lua_State *L) {
  mproc_async_t *r = (mproc_async_t *)mproc_lua_check(L, 1, mproc_lua_type_async);
  size_t n = mproc_async_count(r);
  lua_createtable(L, (int)n, 0);
  lua_newtable(L);
  int res = lua_gettop(L) - 1, errs = lua_gettop(L);
  for (size_t i = 0; i < n; i++) {
    const void *d = NULL;
    size_t l = 0;
    int irc = mproc_async_item(r, i, &d, &l);
    if (irc == 0) {
      if (d) {
        lua_pushlstring(L, (const char *)d, l);
        lua_rawseti(L, res, (lua_Integer)i + 1);
      }
    } else {
      const char *name = irc < 0 ? mproc_err_name(irc) : "MPROC_ETASKFAILED";
      lua_pushfstring(L, "%s: ", name);
      lua_pushlstring(L, d ? (const char *)d : mproc_strerror(irc), d ? l : strlen(mproc_strerror(irc)));
      lua_concat(L, 2);
      lua_rawseti(L, errs, (lua_Integer)i + 1);
    }
  }
  return 2;
}
