# mproc.mpi (bindings/python/mproc/mpi.py): the pool over MPI ranks, tested under mpirun.
# Included from bindings/CMakeLists.txt in the Python tests section (uses Python3_EXECUTABLE,
# MPROC_PY_BUILD_DIR). mproc.mpi loads libmproc-mpi with ctypes: the build tree's copy is named
# in mproc/_mpi_build.py (build tree only; an installed package finds libmproc-mpi.so.0). Every
# test runs `mpirun -n 3` (one -n 1) on this machine; CTest names are mproc.python.mpi.<name>,
# from bindings/python/tests/mpi/mpi_<name>.py.
if(NOT TARGET mproc_mpi)
  message(STATUS "mproc: Python MPI tests (mproc.python.mpi.*) skipped: libmproc-mpi is not "
                 "built (Debian: apt install libopenmpi-dev openmpi-bin)")
  return()
endif()
file(GENERATE OUTPUT ${MPROC_PY_PKG_DIR}/_mpi_build.py
     CONTENT "# Written by bindings/python/mpi.cmake: the build tree's libmproc-mpi.\nLIBRARY = \"$<TARGET_FILE:mproc_mpi>\"\n")

find_program(MPROC_MPIRUN NAMES mpirun mpiexec)
if(NOT MPROC_MPIRUN)
  message(STATUS "mproc: Python MPI tests (mproc.python.mpi.*) skipped: no mpirun "
                 "(Debian: apt install openmpi-bin)")
  return()
endif()
# mpi4py is not needed; when the interpreter has it, one more test runs it beside mproc.mpi.
execute_process(COMMAND ${Python3_EXECUTABLE} -c "import mpi4py"
                RESULT_VARIABLE _mproc_mpi4py_rc OUTPUT_QUIET ERROR_QUIET)

# Root in a container: Open MPI refuses root without --allow-run-as-root; 3 ranks on fewer
# cores need --oversubscribe.
set(MPROC_MPIRUN_CMD ${MPROC_MPIRUN} --allow-run-as-root --oversubscribe)
set(_mproc_mpi_dir ${CMAKE_CURRENT_SOURCE_DIR}/python/tests/mpi)
# As tests/mpi: root allowed, shared memory only, no cross-memory attach (ptrace may be
# forbidden in a container), no CPU binding.
set(_mproc_mpi_env "PYTHONPATH=${MPROC_PY_BUILD_DIR};PYTHONDONTWRITEBYTECODE=1;OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_btl=self,vader;OMPI_MCA_btl_vader_single_copy_mechanism=none;OMPI_MCA_hwloc_base_binding_policy=none")

# Scripts run by `python3 -m mproc.mpi` on 3 ranks (backend: mproc.Pool(backend="mpi") and
# MPROC_POOL_BACKEND, from pool.py).
set(_mproc_mpi_m_tests apply apply_async map_errors imap imap_unordered starmap lambda initializer
                       backend timeout progress_stats cancel one_at_a_time same_as_local)
foreach(name ${_mproc_mpi_m_tests})
  add_test(NAME mproc.python.mpi.${name}
    COMMAND ${MPROC_MPIRUN_CMD} -n 3 ${Python3_EXECUTABLE} -m mproc.mpi
            ${_mproc_mpi_dir}/mpi_${name}.py
    WORKING_DIRECTORY ${_mproc_mpi_dir})
endforeach()
# Run on every rank without -m; and on a single rank, where Pool() must refuse.
add_test(NAME mproc.python.mpi.plain
  COMMAND ${MPROC_MPIRUN_CMD} -n 3 ${Python3_EXECUTABLE} ${_mproc_mpi_dir}/mpi_plain.py
  WORKING_DIRECTORY ${_mproc_mpi_dir})
set(_mproc_mpi_plain_tests plain)
if(_mproc_mpi4py_rc EQUAL 0)  # the program's own mpi4py starts MPI
  add_test(NAME mproc.python.mpi.with_mpi4py
    COMMAND ${MPROC_MPIRUN_CMD} -n 3 ${Python3_EXECUTABLE} ${_mproc_mpi_dir}/mpi_with_mpi4py.py
    WORKING_DIRECTORY ${_mproc_mpi_dir})
  list(APPEND _mproc_mpi_plain_tests with_mpi4py)
else()
  message(STATUS "mproc: mproc.python.mpi.with_mpi4py skipped: no mpi4py (optional)")
endif()
add_test(NAME mproc.python.mpi.too_few_ranks
  COMMAND ${MPROC_MPIRUN_CMD} -n 1 ${Python3_EXECUTABLE} ${_mproc_mpi_dir}/mpi_too_few_ranks.py
  WORKING_DIRECTORY ${_mproc_mpi_dir})
# A driver that runs mpirun itself and kills a worker rank.
string(REPLACE ";" " " _mproc_mpirun_line "${MPROC_MPIRUN_CMD}")
add_test(NAME mproc.python.mpi.worker_killed
  COMMAND ${Python3_EXECUTABLE} ${_mproc_mpi_dir}/mpi_worker_killed.py
  WORKING_DIRECTORY ${_mproc_mpi_dir})

foreach(name ${_mproc_mpi_m_tests} ${_mproc_mpi_plain_tests} too_few_ranks worker_killed)
  # RUN_SERIAL: mpirun jobs share the cores and time out when run beside each other.
  set_tests_properties(mproc.python.mpi.${name} PROPERTIES
    ENVIRONMENT "${_mproc_mpi_env};MPROC_MPIRUN=${_mproc_mpirun_line}"
    TIMEOUT 90 RUN_SERIAL TRUE)
endforeach()
