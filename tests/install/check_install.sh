#!/bin/sh
# Installs the build into a temporary prefix, then builds tests/install/app.c against it twice
# (pkg-config; CMake find_package) and runs both; finally checks the Debian package's content.
set -eu
build="$1"; src="$2"; cc="$3"
prefix=$(mktemp -d); work=$(mktemp -d); trap 'rm -rf "$prefix" "$work"' EXIT
cmake --install "$build" --prefix "$prefix" > "$work/install.log"
libdir=$(ls -d "$prefix"/lib*/ | head -1); libdir=${libdir%/}
[ -L "$libdir/libmproc.so" ] && [ -L "$libdir/libmproc.so.0" ] || { echo "library links missing"; exit 1; }
[ -f "$prefix/include/mproc.h" ] && [ -f "$prefix/include/mproc/process.h" ] || { echo "headers missing"; exit 1; }

# 1. pkg-config
pc=$(dirname "$(find "$prefix" -name mproc.pc)")
pkgc() { PKG_CONFIG_PATH="$pc" pkg-config "$@"; }
pkgc --exists mproc
pkgc --print-requires-private mproc | grep -q libuv || { echo "libuv not a private requirement"; exit 1; }
"$cc" "$src/tests/install/app.c" -o "$work/app_pc" $(pkgc --cflags --libs mproc)
LD_LIBRARY_PATH="$libdir" "$work/app_pc"
# static, with the private requirements
"$cc" "$src/tests/install/app.c" -o "$work/app_pc_static" \
  $(pkgc --cflags mproc) "$libdir/libmproc.a" \
  $(pkgc --libs-only-other --libs-only-l --static mproc | sed "s/-lmproc //")
"$work/app_pc_static"

# 2. CMake package
cmake -S "$src/tests/install/cmake_app" -B "$work/cm" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$cc" > "$work/cm.log"
cmake --build "$work/cm" > "$work/cmb.log"
"$work/cm/app"
"$work/cm/app_static"

# 3. libmproc-mpi, when it was built: a program links through `pkg-config mproc-mpi` and runs
#    (here on local workers: the same program takes the "mpi" backend under mpirun).
if [ -n "$(find "$prefix" -name mproc-mpi.pc)" ]; then
  [ -f "$prefix/include/mproc/mpi.h" ] || { echo "mproc/mpi.h missing"; exit 1; }
  "$cc" "$src/examples/mpi/squares.c" -o "$work/mpi_squares" $(pkgc --cflags --libs mproc-mpi)
  LD_LIBRARY_PATH="$libdir" "$work/mpi_squares" | grep -q 'Squares: \[1, 4, 9, 16, 25\]' \
    || { echo "the mproc-mpi program failed"; exit 1; }
else
  [ ! -f "$prefix/include/mproc/mpi.h" ] || { echo "mproc/mpi.h installed without libmproc-mpi"; exit 1; }
fi

# 4. Debian package: library with soname, headers, pkg-config file, CMake package.
if command -v dpkg-deb > /dev/null; then
  (cd "$build" && cpack -G DEB -B "$work/deb" > "$work/cpack.log")
  deb=$(ls "$work"/deb/*.deb)
  dpkg-deb -c "$deb" > "$work/deb.txt"
  for f in './usr/lib/(.*/)?libmproc\.so\.0' './usr/include/mproc\.h' './usr/include/mproc/process\.h' \
           './usr/lib/(.*/)?pkgconfig/mproc\.pc' './usr/lib/(.*/)?cmake/mproc/mprocConfig\.cmake'; do
    grep -Eq " $f( |$)" "$work/deb.txt" || { echo "$f missing from $(basename "$deb")"; cat "$work/deb.txt"; exit 1; }
  done
  # The packaged .pc resolves to /usr wherever it is read from.
  mkdir "$work/x" && dpkg-deb -x "$deb" "$work/x"
  inc=$(PKG_CONFIG_PATH=$(dirname "$(find "$work/x" -name mproc.pc)") pkg-config --variable=includedir mproc)
  [ "$(realpath "$inc")" = "$(realpath "$work/x/usr/include")" ] || { echo "packaged mproc.pc does not resolve its prefix"; exit 1; }
  dpkg-deb -f "$deb" Depends | grep -q libuv1 || { echo "package does not depend on libuv1"; exit 1; }
  echo "deb OK: $(basename "$deb")"
fi
echo "install OK"
