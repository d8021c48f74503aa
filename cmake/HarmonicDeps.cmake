# Third-party libraries. On Debian they come from packages (scripts/setup installs them). A machine
# without them (the GPU machine has no package access) can point HARMONIC_DEPS_DIR at a folder made
# by scripts/device_deps: headers of the header-only ones (CLI11, Catch2, nlohmann-json)
# and PCRE2's header + shared library.
set(HARMONIC_DEPS_DIR "" CACHE PATH "fallback folder with include/ and lib/ for machines without the Debian packages")

find_package(nlohmann_json 3.10 QUIET)
if(NOT nlohmann_json_FOUND)
  add_library(nlohmann_json::nlohmann_json INTERFACE IMPORTED)
  target_include_directories(nlohmann_json::nlohmann_json INTERFACE ${HARMONIC_DEPS_DIR}/include)
endif()

find_package(CLI11 QUIET)
if(NOT CLI11_FOUND)
  add_library(CLI11::CLI11 INTERFACE IMPORTED)
  target_include_directories(CLI11::CLI11 INTERFACE ${HARMONIC_DEPS_DIR}/include)
endif()

# fmt: LibTorch ships fmt's headers, and in every translation unit that includes LibTorch they shadow
# a system fmt. So we use exactly those, header-only, and link no fmt library (a system libfmt of
# another version would not match them).
add_library(harmonic_fmt INTERFACE)
target_compile_definitions(harmonic_fmt INTERFACE FMT_HEADER_ONLY=1)
target_link_libraries(harmonic_fmt INTERFACE harmonic_torch)

find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(PCRE2 QUIET IMPORTED_TARGET libpcre2-8)
endif()
add_library(harmonic_pcre2 INTERFACE)
if(PCRE2_FOUND)
  target_link_libraries(harmonic_pcre2 INTERFACE PkgConfig::PCRE2)
else()
  find_path(PCRE2_INCLUDE_DIR pcre2.h HINTS ${HARMONIC_DEPS_DIR}/include)
  find_library(PCRE2_LIBRARY NAMES pcre2-8 libpcre2-8.so.0 HINTS ${HARMONIC_DEPS_DIR}/lib)
  if(NOT PCRE2_INCLUDE_DIR OR NOT PCRE2_LIBRARY)
    message(FATAL_ERROR "PCRE2 not found: run scripts/setup (Debian: libpcre2-dev) or set HARMONIC_DEPS_DIR")
  endif()
  target_include_directories(harmonic_pcre2 INTERFACE ${PCRE2_INCLUDE_DIR})
  target_link_libraries(harmonic_pcre2 INTERFACE ${PCRE2_LIBRARY})
endif()

# Catch2 v2 (tests only)
find_package(Catch2 2.13 QUIET)
if(NOT Catch2_FOUND AND HARMONIC_TESTS)
  add_library(Catch2::Catch2 INTERFACE IMPORTED)
  target_include_directories(Catch2::Catch2 INTERFACE ${HARMONIC_DEPS_DIR}/include)
  list(APPEND CMAKE_MODULE_PATH ${HARMONIC_DEPS_DIR}/cmake)
endif()
