// What this build of gwtf runs on, read from the libraries themselves at run time where possible
// (versions from their headers, BLAS from the shared objects actually loaded, threads from LibTorch).
#pragma once

#include <string>

namespace gwtf::app {

std::string describe_build();

// Whether the BLAS mapped into this process is OpenBLAS (LibTorch picks libblas.so.3 at run time).
bool blas_is_openblas();

}  // namespace gwtf::app
