# Warnings for our own targets only (LibTorch's headers are included as SYSTEM, so they stay quiet).
add_library(harmonic_warnings INTERFACE)
target_compile_options(harmonic_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wno-unused-parameter>)
