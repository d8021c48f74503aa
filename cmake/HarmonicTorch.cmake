# LibTorch comes from the `torch` wheel on PyPI: its torch/share/cmake folder is a complete LibTorch.
# Order of search: Torch_DIR, $HARMONIC_PYTHON, the project venv that scripts/setup makes
# (~/.cache/harmonic/venv), the GPU machine's /opt/torch/.venv, then python3 on PATH.
if(NOT Torch_DIR)
  set(_candidates "$ENV{HARMONIC_PYTHON}" "$ENV{HOME}/.cache/harmonic/venv/bin/python"
                  "/opt/torch/.venv/bin/python" "python3")
  foreach(_py IN LISTS _candidates)
    if(NOT _py)
      continue()
    endif()
    execute_process(COMMAND ${_py} -c "import torch,sys;sys.stdout.write(torch.utils.cmake_prefix_path)"
                    OUTPUT_VARIABLE _prefix RESULT_VARIABLE _rc ERROR_QUIET)
    if(_rc EQUAL 0 AND _prefix)
      set(Torch_DIR "${_prefix}/Torch" CACHE PATH "LibTorch cmake folder")
      set(HARMONIC_TORCH_PYTHON "${_py}" CACHE FILEPATH "python whose torch provides LibTorch")
      break()
    endif()
  endforeach()
endif()
if(NOT Torch_DIR)
  message(FATAL_ERROR "LibTorch not found: run scripts/setup (installs the torch wheel into ~/.cache/harmonic/venv) "
                      "or pass -DTorch_DIR=<site-packages>/torch/share/cmake/Torch")
endif()

# Decide CUDA before find_package(Torch): TorchConfig looks for the CUDA toolkit only when asked to.
get_filename_component(_torch_root "${Torch_DIR}/../../.." ABSOLUTE)
file(GLOB _torch_cuda_lib "${_torch_root}/lib/libtorch_cuda.so")
find_program(NVCC_EXECUTABLE nvcc PATHS /usr/local/cuda/bin)
if(HARMONIC_CUDA STREQUAL "AUTO")
  if(_torch_cuda_lib AND NVCC_EXECUTABLE)
    set(HARMONIC_WITH_CUDA ON)
  else()
    set(HARMONIC_WITH_CUDA OFF)
  endif()
else()
  set(HARMONIC_WITH_CUDA ${HARMONIC_CUDA})
endif()

if(HARMONIC_WITH_CUDA)
  if(NOT CMAKE_CUDA_COMPILER)
    set(CMAKE_CUDA_COMPILER ${NVCC_EXECUTABLE})
  endif()
  if(NOT CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES 90)   # Hopper (H100/H200), the project's GPU machine
  endif()
  # LibTorch's CMake replaces CMAKE_CUDA_ARCHITECTURES by -gencode flags made from this list. "9.0a"
  # is Hopper with its arch-specific instructions (wgmma, setmaxnreg), which the fused output head
  # needs (kernels/cuda/head_gemm.cu); with "9.0" that kernel is left out and the chunked head runs.
  set(HARMONIC_CUDA_ARCH "9.0a" CACHE STRING "CUDA architectures for the kernels (TORCH_CUDA_ARCH_LIST syntax)")
  set(TORCH_CUDA_ARCH_LIST "${HARMONIC_CUDA_ARCH}")
  enable_language(CUDA)
  set(CMAKE_CUDA_STANDARD 20)
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)
else()
  # A CUDA LibTorch still links on a machine without nvcc, but must not go hunting for the toolkit.
  set(USE_CUDA OFF)
endif()
find_package(Torch REQUIRED)
message(STATUS "LibTorch: ${Torch_DIR} (CUDA kernels: ${HARMONIC_WITH_CUDA})")

# One imported target our libraries link; LibTorch's flags and include paths, includes as SYSTEM.
add_library(harmonic_torch INTERFACE)
target_link_libraries(harmonic_torch INTERFACE ${TORCH_LIBRARIES})
target_include_directories(harmonic_torch SYSTEM INTERFACE ${TORCH_INCLUDE_DIRS})
target_compile_options(harmonic_torch INTERFACE $<$<COMPILE_LANGUAGE:CXX>:${TORCH_CXX_FLAGS}>)

# NCCL for data-parallel training (model/distributed.cpp): LibTorch's ProcessGroupNCCL lives in
# libtorch_cuda, and its header needs nccl.h, which the wheel's nvidia-nccl package ships.
set(HARMONIC_NCCL_INCLUDE_DIR "")
if(HARMONIC_WITH_CUDA)
  get_filename_component(_site_packages "${_torch_root}/.." ABSOLUTE)
  if(EXISTS "${_site_packages}/nvidia/nccl/include/nccl.h")
    set(HARMONIC_NCCL_INCLUDE_DIR "${_site_packages}/nvidia/nccl/include")
  endif()
endif()
message(STATUS "NCCL for data-parallel training: ${HARMONIC_NCCL_INCLUDE_DIR}")
