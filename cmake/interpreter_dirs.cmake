# Included at install time, when the prefix is final (`cmake --install --prefix` may change it):
# sets, relative to CMAKE_INSTALL_PREFIX, the directories where the interpreters the bindings
# were built for look under that prefix.
#   MPROC_PY_DIR (needs MPROC_PYTHON): python3's platlib for the prefix; on Debian the
#     deb_system scheme for /usr and posix_local for /usr/local, posix_prefix elsewhere.
#   MPROC_LUA_CDIR, MPROC_LUA_LDIR (need MPROC_LUA): the first package.cpath / package.path
#     entries under the prefix, else Lua's own layout lib/lua/5.4 and share/lua/5.4.
get_filename_component(mproc_prefix "${CMAKE_INSTALL_PREFIX}" ABSOLUTE)

if(MPROC_PYTHON)
  execute_process(COMMAND ${MPROC_PYTHON} -c [=[
import os, sys, sysconfig
prefix = sys.argv[1]
scheme = {sys.base_prefix: 'deb_system', sys.base_prefix + '/local': 'posix_local'}.get(prefix)
if scheme not in sysconfig.get_scheme_names():
    scheme = 'posix_prefix'
base = sys.base_prefix if scheme == 'posix_local' else prefix  # posix_local is {base}/local/...
print(os.path.relpath(sysconfig.get_path('platlib', scheme, vars={'base': base, 'platbase': base}), prefix))
]=] "${mproc_prefix}" OUTPUT_VARIABLE MPROC_PY_DIR OUTPUT_STRIP_TRAILING_WHITESPACE
    COMMAND_ERROR_IS_FATAL ANY)
endif()

if(MPROC_LUA)
  execute_process(COMMAND ${MPROC_LUA} -e "io.write(package.cpath, ';', package.path)"
    OUTPUT_VARIABLE mproc_lua_paths COMMAND_ERROR_IS_FATAL ANY)
  function(mproc_lua_dir out sub ext)
    set(head "${mproc_prefix}/${sub}/")
    string(LENGTH "${head}" n)
    foreach(entry IN LISTS mproc_lua_paths)
      string(SUBSTRING "${entry}" 0 ${n} start)
      if(start STREQUAL head AND entry MATCHES "/\\?\\.${ext}$")
        string(REGEX REPLACE "/\\?\\.${ext}$" "" dir "${entry}")
        file(RELATIVE_PATH dir "${mproc_prefix}" "${dir}")
        set(${out} "${dir}" PARENT_SCOPE)
        return()
      endif()
    endforeach()
    set(${out} "${sub}/lua/5.4" PARENT_SCOPE)
  endfunction()
  mproc_lua_dir(MPROC_LUA_CDIR lib so)
  mproc_lua_dir(MPROC_LUA_LDIR share lua)
endif()
