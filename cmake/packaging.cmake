# Installs the headers, a CMake package and a pkg-config file so that consumers can
#   find_package(shatter CONFIG REQUIRED)
#   target_link_libraries(app PRIVATE shatter::shatter)
# or compile with $(pkg-config --cflags --libs shatter) (shatter-compiled: with the compiled
# companion).
include(CMakePackageConfigHelpers)

install(DIRECTORY include/shatter DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS shatter EXPORT shatterTargets)
if(SHATTER_BUILD_COMPILED)
  install(TARGETS shatter_compiled EXPORT shatterTargets ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
endif()
install(EXPORT shatterTargets NAMESPACE shatter:: FILE shatterTargets.cmake
        DESTINATION ${CMAKE_INSTALL_DATADIR}/shatter/cmake)

set(SHATTER_CONFIG_USE_OPENMP ${SHATTER_USE_OPENMP})
set(SHATTER_CONFIG_USE_BLAS ${SHATTER_USE_BLAS})
configure_package_config_file(cmake/shatterConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/shatterConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_DATADIR}/shatter/cmake)
# Header-only: the package fits any architecture, unless it holds the compiled companion.
if(SHATTER_BUILD_COMPILED)
  set(_shatter_arch "")
else()
  set(_shatter_arch ARCH_INDEPENDENT)
endif()
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/shatterConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion ${_shatter_arch})
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/shatterConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/shatterConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_DATADIR}/shatter/cmake)


# pkg-config: zlib and OpenMP as found here (a consumer without them edits nothing: the headers
# compile with -DSHATTER_NO_ZLIB, and without -fopenmp Eigen runs on one thread).
set(SHATTER_PC_REQUIRES "")
set(SHATTER_PC_CFLAGS "")
set(SHATTER_PC_LIBS "")
if(ZLIB_FOUND)
  set(SHATTER_PC_REQUIRES "zlib")
else()
  set(SHATTER_PC_CFLAGS "-DSHATTER_NO_ZLIB")
endif()
if(SHATTER_USE_OPENMP AND OpenMP_CXX_FOUND)
  string(APPEND SHATTER_PC_CFLAGS " ${OpenMP_CXX_FLAGS}")
  string(APPEND SHATTER_PC_LIBS " ${OpenMP_CXX_FLAGS}")
endif()
if(SHATTER_USE_BLAS)
  string(APPEND SHATTER_PC_REQUIRES " openblas")
  string(APPEND SHATTER_PC_CFLAGS " -DEIGEN_USE_BLAS -DSHATTER_OPENBLAS")
endif()
configure_file(cmake/shatter.pc.in ${CMAKE_CURRENT_BINARY_DIR}/shatter.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/shatter.pc DESTINATION ${CMAKE_INSTALL_DATADIR}/pkgconfig)
# The compiled companion's, beside it: $(pkg-config --cflags --libs shatter-compiled).
if(SHATTER_BUILD_COMPILED)
  configure_file(cmake/shatter-compiled.pc.in ${CMAKE_CURRENT_BINARY_DIR}/shatter-compiled.pc @ONLY)
  install(FILES ${CMAKE_CURRENT_BINARY_DIR}/shatter-compiled.pc
          DESTINATION ${CMAKE_INSTALL_DATADIR}/pkgconfig)
endif()
