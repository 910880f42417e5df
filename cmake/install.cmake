# install.cmake (included by the top-level CMakeLists.txt): the library users link, install rules,
# clasp.pc, the CMake package, man page, bash completion and the Debian package.
#
#   libclasp.so.MAJOR  export/capi.c + what it pulls out of the folder archives (export, train,
#                      pipeline, encoders, loss, modalities, core); exports only the functions
#                      include/clasp.h declares (a linker version script made from clasp.h: every
#                      other symbol is local); linked --as-needed, so a system library the API
#                      does not reach is not a dependency
#   libclasp.a         the same folders combined into one archive (ar MRI script)
# One version, project(VERSION) in CMakeLists.txt, feeds `clasp --version`, the SONAME, clasp.pc,
# claspConfigVersion.cmake, clasp_version() and the Python package (python/setup.py reads it).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(CLASP_API_FOLDERS core modalities encoders loss pipeline train export)
set(_clasp_api_defs CLASP_LIB_VERSION="${PROJECT_VERSION}" CLASP_LIB_PRECISIONS="${CLASP_PRECISIONS}")
target_compile_definitions(clasp_export PRIVATE ${_clasp_api_defs})

add_library(libclasp SHARED ${PROJECT_SOURCE_DIR}/export/capi.c)
add_library(clasp::clasp ALIAS libclasp)
target_compile_definitions(libclasp PRIVATE ${_clasp_api_defs})
target_link_libraries(libclasp PRIVATE clasp_export)
# The version script: every `clasp_name(` that starts a declaration line of clasp.h is global.
file(STRINGS ${PROJECT_SOURCE_DIR}/include/clasp.h _decls REGEX "^[a-z].*[ *]clasp_[a-z0-9_]+\\(")
set(_map "{\n  global:\n")
foreach(_l ${_decls})
  string(REGEX MATCH "clasp_[a-z0-9_]+\\(" _fn "${_l}")
  string(REPLACE "(" "" _fn "${_fn}")
  string(APPEND _map "    ${_fn};\n")
endforeach()
string(APPEND _map "  local:\n    *;\n};\n")
file(WRITE ${PROJECT_BINARY_DIR}/libclasp.map.tmp "${_map}")
configure_file(${PROJECT_BINARY_DIR}/libclasp.map.tmp ${PROJECT_BINARY_DIR}/libclasp.map COPYONLY)
set_property(DIRECTORY ${PROJECT_SOURCE_DIR} APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             ${PROJECT_SOURCE_DIR}/include/clasp.h)
target_link_options(libclasp PRIVATE -Wl,--as-needed -Wl,--no-undefined
                    -Wl,--version-script=${PROJECT_BINARY_DIR}/libclasp.map)
set_property(TARGET libclasp APPEND PROPERTY LINK_DEPENDS ${PROJECT_BINARY_DIR}/libclasp.map)
target_include_directories(libclasp PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
                                           $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
set_target_properties(libclasp PROPERTIES OUTPUT_NAME clasp EXPORT_NAME clasp
                      VERSION ${PROJECT_VERSION} SOVERSION ${PROJECT_VERSION_MAJOR})

# One static archive of the API's folders.
set(_mri "create ${PROJECT_BINARY_DIR}/libclasp.a\n")
set(_archives)
foreach(_d ${CLASP_API_FOLDERS})
  string(APPEND _mri "addlib $<TARGET_FILE:clasp_${_d}>\n")
  list(APPEND _archives clasp_${_d})
endforeach()
string(APPEND _mri "save\nend\n")
file(GENERATE OUTPUT ${PROJECT_BINARY_DIR}/libclasp.mri CONTENT "${_mri}")
add_custom_command(OUTPUT ${PROJECT_BINARY_DIR}/libclasp.a
                   COMMAND ${CMAKE_COMMAND} -E rm -f ${PROJECT_BINARY_DIR}/libclasp.a
                   COMMAND ${CMAKE_AR} -M < ${PROJECT_BINARY_DIR}/libclasp.mri
                   DEPENDS ${_archives} ${PROJECT_BINARY_DIR}/libclasp.mri
                   COMMENT "Combining the API folders into libclasp.a" VERBATIM)
add_custom_target(libclasp_static ALL DEPENDS ${PROJECT_BINARY_DIR}/libclasp.a)

# Man page (help2man over `clasp --help`/`--version`, each command's --help as a section) and
# bash completion (every command and option of the help the option tables print).
find_program(HELP2MAN help2man)
find_package(Python3 COMPONENTS Interpreter)
option(CLASP_DOCS "Generate the man page and bash completion at build time" ON)
# (not in sanitizer builds, which are not installed: the build would run a sanitized clasp)
if(CLASP_DOCS AND HELP2MAN AND Python3_FOUND AND NOT CLASP_SANITIZE)
  set(_gen ${PROJECT_SOURCE_DIR}/scripts/gen-cli-docs.py)
  add_custom_command(OUTPUT ${PROJECT_BINARY_DIR}/clasp.1 ${PROJECT_BINARY_DIR}/clasp.bash
                     COMMAND ${Python3_EXECUTABLE} ${_gen} $<TARGET_FILE:clasp> ${HELP2MAN}
                             ${PROJECT_BINARY_DIR}/clasp.1 ${PROJECT_BINARY_DIR}/clasp.bash
                     DEPENDS clasp ${_gen} COMMENT "Generating clasp.1 and bash completion"
                     VERBATIM)
  add_custom_target(clasp_docs ALL DEPENDS ${PROJECT_BINARY_DIR}/clasp.1
                    ${PROJECT_BINARY_DIR}/clasp.bash)
  install(FILES ${PROJECT_BINARY_DIR}/clasp.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
  install(FILES ${PROJECT_BINARY_DIR}/clasp.bash DESTINATION
          ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME clasp)
endif()

# clasp.pc: Libs.private lists what a static link of libclasp.a needs.
set(CLASP_PC_PRIVATE "-lcjson -lxxhash -larchive -lsndfile -lturbojpeg -lutf8proc -lsamplerate -lkissfft-float -lm -lpthread")
if(CLASP_BACKEND STREQUAL "onednn")
  string(APPEND CLASP_PC_PRIVATE " -ldnnl -lgomp")
else()
  string(APPEND CLASP_PC_PRIVATE " -lopenblas")
endif()
# Relocatable: the prefix is found from the .pc's own folder (cpack installs under /usr).
file(RELATIVE_PATH CLASP_PC_TO_PREFIX /p/${CMAKE_INSTALL_LIBDIR}/pkgconfig /p)
configure_file(${PROJECT_SOURCE_DIR}/cmake/clasp.pc.in ${PROJECT_BINARY_DIR}/clasp.pc @ONLY)

install(TARGETS clasp RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS libclasp EXPORT claspTargets LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES ${PROJECT_BINARY_DIR}/libclasp.a DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES ${PROJECT_SOURCE_DIR}/include/clasp.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${PROJECT_BINARY_DIR}/clasp.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
install(EXPORT claspTargets NAMESPACE clasp:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/clasp)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/claspConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/claspConfig.cmake
                              INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/clasp)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/claspConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/claspConfig.cmake ${PROJECT_BINARY_DIR}/claspConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/clasp)

# Debian package: cpack -G DEB in the build folder -> clasp_VERSION_ARCH.deb, Depends from
# dpkg-shlibdeps.
set(CPACK_PACKAGE_NAME clasp)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "clasp maintainers <clasp@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "contrastive image/text/audio encoders on CPUs: clasp CLI, libclasp, clasp.h")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_PACKAGE_SECTION science)
set(CPACK_GENERATOR DEB)
include(CPack)
