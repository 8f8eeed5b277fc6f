#!/bin/sh
# Installs mproc the three ways docs/install.md gives and uses each install from a directory
# outside the tree, with none of the build tree's paths in the environment:
#   1. the Debian packages (dpkg-buildpackage on a copy of the tree, lintian, apt-get install
#      ./*.deb), then purged; 2. `cmake --install` into /usr/local (+ ldconfig), then removed;
#   3. `cmake --install` into a user's own prefix.
# Each use: a C program built with `pkg-config mproc` (a process and a pool map), a CMake project
# with find_package(mproc), python3 Pool.map, lua5.4 require("mproc"), and a program built with
# `pkg-config mproc-mpi` under mpirun -n 3. Needs root (exit 77: CTest skips); the trap leaves
# /usr and the package list as they were, also when a step fails or the run is stopped.
set -eu
build="$1"; src="$2"; cc="$3"
if [ "$(id -u)" != 0 ]; then
  echo "skipped: needs root (installs Debian packages and into /usr/local)"
  exit 77
fi
# Under CTest's timeout a SIGKILL would skip the cleanup: stop ourselves earlier with SIGTERM.
if [ -z "${MPROC_INSTALL_CHECK_TIMED:-}" ]; then
  MPROC_INSTALL_CHECK_TIMED=1 exec timeout 900 sh "$0" "$@"
fi

work=$(mktemp -d); mkdir "$work/use"
pkgs=""; local_before=""
usr_mproc() { find /usr -path '*mproc*' | sort; }
snapshot_links() { find /usr -xtype l | sort; }
purge_debs() {
  [ -n "$pkgs" ] || return 0
  # shellcheck disable=SC2086
  apt-get purge -y -qq -o DPkg::Lock::Timeout=300 $pkgs > "$work/purge.log" || { cat "$work/purge.log"; return 1; }
  pkgs=""
}
remove_local() {
  [ -n "$local_before" ] || return 0
  # What the install added under /usr/local: paths with "mproc" in them, and new empty dirs.
  find /usr/local | sort | comm -13 "$local_before" - > "$work/local_added"
  grep mproc "$work/local_added" | xargs -r rm -rf
  sort -r "$work/local_added" | xargs -r rmdir --ignore-fail-on-non-empty 2> /dev/null || true
  ldconfig
  local_before=""
}
cleanup() { set +e; purge_debs; remove_local; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# The machine must start without mproc in /usr: the check proves it is gone again at the end.
[ -z "$(usr_mproc)" ] || { echo "mproc is already installed in /usr:"; usr_mproc; exit 1; }
snapshot_links > "$work/links_before"
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")

# shellcheck disable=SC2046 # pkg-config output is meant to be split into words
# Uses the install the environment leads to: $1 names it, $2 is where the Python and Lua modules
# must be found.
use_mproc() {
  echo "$1: using it"
  (  # no `|| ...` on this subshell: that would turn off set -e inside it
    cd "$work/use"
    rm -rf ./*
    "$cc" "$src/tests/install/app.c" -o app_pc $(pkg-config --cflags --libs mproc)
    ./app_pc
    # Static, with the private requirements.
    "$cc" "$src/tests/install/app.c" -o app_static $(pkg-config --cflags mproc) \
      "$(pkg-config --variable=libdir mproc)/libmproc.a" \
      $(pkg-config --libs --static mproc | sed "s/-lmproc //")
    ./app_static
    cmake -S "$src/tests/install/cmake_app" -B cm -DCMAKE_C_COMPILER="$cc" > cm.log || { cat cm.log; exit 1; }
    cmake --build cm > cmb.log || { cat cmb.log; exit 1; }
    cm/app && cm/app_static
    /usr/bin/python3 -c "
import mproc, operator, sys
assert mproc.__file__.startswith(sys.argv[1]), mproc.__file__
with mproc.Pool(2) as p:
    assert p.map(operator.neg, range(5)) == [0, -1, -2, -3, -4]
print('python3: Pool.map from', mproc.__file__)" "$2"
    lua5.4 -e "
local mp = require('mproc')
function square(x) return x * x end
local pool <close> = mp.Pool{ workers = 2 }
assert(table.concat(pool:map(square, { 1, 2, 3 }), ' ') == '1 4 9')
local at = package.searchpath('_mproc', package.cpath)
assert(at:sub(1, #arg[1]) == arg[1], at)
print('lua5.4: Pool map from ' .. at)" - "$2" < /dev/null
    "$cc" "$src/examples/mpi/squares.c" -o squares $(pkg-config --cflags --libs mproc-mpi)
    OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none \
      OMPI_MCA_hwloc_base_binding_policy=none \
      mpirun --allow-run-as-root --oversubscribe -n 3 ./squares --mpi > mpi.out
    grep -q 'Squares: \[1, 4, 9, 16, 25\]' mpi.out || { cat mpi.out; exit 1; }
  )
  echo "$1: C (pkg-config, static, CMake), python3, lua5.4 and mpirun -n 3 OK"
}
# Nothing of the build tree or of an earlier prefix in the environment.
unset PYTHONPATH LD_LIBRARY_PATH LUA_CPATH LUA_PATH PKG_CONFIG_PATH CMAKE_PREFIX_PATH

# 1. Debian packages, built from a copy of the tree (the worktree stays clean).
mkdir "$work/deb" "$work/deb/mproc"
(cd "$src" && tar --exclude='./build*' --exclude=./.git -cf - .) | tar -C "$work/deb/mproc" -xf -
deb_version=$(cd "$work/deb/mproc" && dpkg-parsechangelog -S Version)
[ "${deb_version%-*}" = "$version" ] || { echo "debian/changelog has $deb_version, the project $version"; exit 1; }
(cd "$work/deb/mproc" && DEB_BUILD_OPTIONS="parallel=$(nproc)" dpkg-buildpackage -b -us -uc) \
  > "$work/dpkg-buildpackage.log" 2>&1 || { tail -50 "$work/dpkg-buildpackage.log"; exit 1; }
# Errors and warnings fail (info and pedantic notes are shown); initial-upload-closes-no-bugs
# is explained in docs/install.md.
lintian --info --pedantic --fail-on error,warning --suppress-tags initial-upload-closes-no-bugs \
  "$work"/deb/mproc_*.changes
debs=$(ls "$work"/deb/*.deb)
for d in $debs; do echo "$(basename "$d"): Depends: $(dpkg-deb -f "$d" Depends)"; done
# apt resolves the dependencies; what it would install is what the cleanup purges.
# shellcheck disable=SC2086
pkgs=$(apt-get install -s $debs | awk '/^Inst /{print $2}' | tr '\n' ' ')
# shellcheck disable=SC2086
apt-get install -y -qq -o DPkg::Lock::Timeout=300 $debs > "$work/apt.log" || { cat "$work/apt.log"; exit 1; }
[ "$(pkg-config --variable=libdir mproc)" = "/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)" ] \
  || { echo "packaged mproc.pc: libdir $(pkg-config --variable=libdir mproc)"; exit 1; }
use_mproc "Debian packages" /usr/lib/
purge_debs
left=$(usr_mproc; snapshot_links | comm -13 "$work/links_before" -)
[ -z "$left" ] || { echo "left in /usr after the purge:"; echo "$left"; exit 1; }
echo "Debian packages: purged, nothing of mproc left in /usr"

# 2. cmake --install into /usr/local: libraries in /usr/local/lib need ldconfig.
find /usr/local | sort > "$work/local_before"
local_before="$work/local_before"
cmake --install "$build" --prefix /usr/local > "$work/install.log"
ldconfig
[ "$(pkg-config --variable=prefix mproc)" = /usr/local ] || { echo "mproc.pc: prefix is not /usr/local"; exit 1; }
use_mproc "cmake --install /usr/local" /usr/local/
cp "$local_before" "$work/local_was"
remove_local
find /usr/local | sort | diff "$work/local_was" - || { echo "/usr/local differs after the removal"; exit 1; }
left=$(usr_mproc; snapshot_links | comm -13 "$work/links_before" -)
[ -z "$left" ] || { echo "left in /usr after removing the /usr/local install:"; echo "$left"; exit 1; }
echo "cmake --install /usr/local: removed, nothing of mproc left in /usr"

# 3. A user's own prefix: the environment says where to look.
prefix="$work/prefix"
cmake --install "$build" --prefix "$prefix" > "$work/install.log"
libdir=$(pkg-config --variable=libdir "$prefix"/lib*/pkgconfig/mproc.pc)
[ -f "$libdir/libmproc.so.0" ] || { echo "mproc.pc: libdir $libdir has no libmproc.so.0"; exit 1; }
pydir=$(/usr/bin/python3 -c "import sysconfig, sys; print(sysconfig.get_path('platlib', 'posix_prefix', vars={'platbase': sys.argv[1]}))" "$prefix")
export PKG_CONFIG_PATH="$libdir/pkgconfig" CMAKE_PREFIX_PATH="$prefix" LD_LIBRARY_PATH="$libdir" \
  PYTHONPATH="$pydir" LUA_CPATH="$prefix/lib/lua/5.4/?.so" LUA_PATH="$prefix/share/lua/5.4/?.lua"
use_mproc "cmake --install <own prefix>" "$prefix/"
echo "install OK"
