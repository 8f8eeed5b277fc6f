# Install rules: the library (with soname), headers, pkg-config file and CMake package config
# (mproc::mproc). The Debian packages are built from debian/ (docs/install.md).
include(CMakePackageConfigHelpers)

set(MPROC_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/mproc)
set(MPROC_INSTALL_TARGETS mproc)
if(MPROC_BUILD_STATIC)
  list(APPEND MPROC_INSTALL_TARGETS mproc_static)
endif()

install(TARGETS ${MPROC_INSTALL_TARGETS} EXPORT mprocTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT runtime NAMELINK_COMPONENT dev
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${PROJECT_SOURCE_DIR}/include/mproc.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/mproc
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev FILES_MATCHING PATTERN "*.h"
  PATTERN "mpi.h" EXCLUDE)  # with libmproc-mpi only (runtime/mpi)

install(EXPORT mprocTargets NAMESPACE mproc:: DESTINATION ${MPROC_INSTALL_CMAKEDIR} COMPONENT dev)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/mprocConfig.cmake.in
  ${PROJECT_BINARY_DIR}/mprocConfig.cmake INSTALL_DESTINATION ${MPROC_INSTALL_CMAKEDIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/mprocConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/mprocConfig.cmake ${PROJECT_BINARY_DIR}/mprocConfigVersion.cmake
  DESTINATION ${MPROC_INSTALL_CMAKEDIR} COMPONENT dev)

# pkg-config files carry the real prefix: `cmake --install --prefix` may change it after
# configuring, so the prefix is filled in at install time.
function(mproc_install_pc name)
  set(MPROC_PC_PREFIX "@MPROC_PC_PREFIX@")  # left for the install-time pass below
  configure_file(${PROJECT_SOURCE_DIR}/pkgconfig/${name}.pc.in ${PROJECT_BINARY_DIR}/${name}.pc.in @ONLY)
  install(CODE "set(MPROC_PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
    configure_file(\"${PROJECT_BINARY_DIR}/${name}.pc.in\" \"${PROJECT_BINARY_DIR}/${name}.pc\" @ONLY)"
    COMPONENT dev)
  install(FILES ${PROJECT_BINARY_DIR}/${name}.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT dev)
endfunction()
mproc_install_pc(mproc)
