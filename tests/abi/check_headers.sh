#!/bin/sh
# Compiles every public header alone and through mproc.h, as C99 (-pedantic -Werror) and as
# C++, and expands every public macro that takes no argument or is an _INIT initialiser.
set -eu
src="$1"; cc="$2"; cxx="$3"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
inc="$src/include"
{
  echo '#include <mproc.h>'
  for h in "$inc"/mproc/*.h; do echo "#include <mproc/$(basename "$h")>"; done
  echo 'int main(void) {'
  echo '  unsigned v = MPROC_VERSION_HEX + MPROC_MAKE_VERSION(1, 2, 3) + MPROC_VERSION_MAJOR + MPROC_VERSION_MINOR + MPROC_VERSION_PATCH;'
  # Each FOO_BAR_INIT initialises a foo_bar_t.
  grep -ho '#define MPROC_[A-Z0-9_]*_INIT\b' "$inc"/mproc/*.h | awk '{print $2}' | sort -u |
    while read -r m; do
      t=$(echo "$m" | sed 's/_INIT$//' | tr 'A-Z' 'a-z')_t
      echo "  { $t x = $m; (void)x; }"
    done
  # Error codes: every enum value usable as a case label.
  echo '  switch ((int)v) {'
  grep -o 'XX([A-Z0-9]*,' "$inc"/mproc/common.h | sed 's/XX(\(.*\),/\1/' |
    while read -r e; do echo "    case MPROC_$e: break;"; done
  echo '    default: break; }'
  echo '  (void)v; return 0; }'
} > "$work/all.c"
cp "$work/all.c" "$work/all.cpp"
"$cc" -std=c99 -Wall -Wextra -Werror -pedantic -I"$inc" -c "$work/all.c" -o "$work/c.o"
"$cxx" -std=c++11 -Wall -Wextra -Werror -pedantic -I"$inc" -c "$work/all.cpp" -o "$work/cxx.o"
for h in "$inc"/mproc.h "$inc"/mproc/*.h; do
  rel=${h#"$inc"/}
  printf '#include <%s>\n' "$rel" > "$work/one.c"
  "$cc" -std=c99 -Wall -Wextra -Werror -pedantic -I"$inc" -c "$work/one.c" -o "$work/one.o"
done
echo "headers OK as C99 and C++: $(ls "$inc"/mproc/*.h | wc -l) area headers, $(grep -c 'MPROC_[A-Z0-9_]*_INIT; ' "$work/all.c" || true) _INIT macros checked"
