# Installs the headers and a CMake package so that consumers can
#   find_package(shatter CONFIG REQUIRED)
#   target_link_libraries(app PRIVATE shatter::shatter)
include(CMakePackageConfigHelpers)

install(DIRECTORY include/shatter DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS shatter EXPORT shatterTargets)
install(EXPORT shatterTargets NAMESPACE shatter:: FILE shatterTargets.cmake
        DESTINATION ${CMAKE_INSTALL_DATADIR}/shatter/cmake)

set(SHATTER_CONFIG_USE_OPENMP ${SHATTER_USE_OPENMP})
set(SHATTER_CONFIG_USE_BLAS ${SHATTER_USE_BLAS})
configure_package_config_file(cmake/shatterConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/shatterConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_DATADIR}/shatter/cmake)
# Header-only: the package fits any architecture.
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/shatterConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion ARCH_INDEPENDENT)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/shatterConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/shatterConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_DATADIR}/shatter/cmake)

