// Include this instead of <catch2/catch.hpp> in tests that use LibTorch. LibTorch's logging header
// defines a glog-style CHECK macro that aborts the process; included after Catch it would silently
// replace Catch's CHECK. Including LibTorch first and dropping its CHECK keeps Catch's.
#pragma once

#include <torch/torch.h>

#undef CHECK
#include <catch2/catch.hpp>
