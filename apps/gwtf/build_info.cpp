#include "apps/gwtf/build_info.hpp"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <caf/config.hpp>
#include <capnp/common.h>
#include <link.h>
#include <spdlog/version.h>
#include <torch/version.h>

#include <climits>
#include <cstdlib>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "kernels/wire/frame.hpp"

#ifndef GWTF_BUILD_TYPE
#define GWTF_BUILD_TYPE "unknown"
#endif

namespace gwtf::app {

namespace {

// Shared objects mapped into this process whose file name mentions BLAS, resolved through symlinks and
// update-alternatives: that is the BLAS LibTorch really calls, whatever at::show_config() claims.
std::set<std::string> loaded_blas() {
  std::set<std::string> found;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* out) {
        const std::string name = info->dlpi_name ? info->dlpi_name : "";
        if (name.find("blas") != std::string::npos) {
          char resolved[PATH_MAX];
          static_cast<std::set<std::string>*>(out)->insert(realpath(name.c_str(), resolved) ? resolved : name);
        }
        return 0;
      },
      &found);
  return found;
}

std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v ? v : fallback;
}

}  // namespace

bool blas_is_openblas() {
  for (const auto& path : loaded_blas())
    if (path.find("openblas") != std::string::npos) return true;
  return false;
}

std::string describe_build() {
  std::ostringstream out;
  out << "gwtf " << GWTF_VERSION << " (" << GWTF_BUILD_TYPE << ", g++ " << __VERSION__ << ")\n";
  out << "  CAF          " << CAF_MAJOR_VERSION << '.' << CAF_MINOR_VERSION << '.' << CAF_PATCH_VERSION << '\n';
  out << "  LibTorch     " << TORCH_VERSION << " (CUDA " << (at::hasCUDA() ? "available" : "not built in") << ")\n";
  out << "  Cap'n Proto  " << CAPNP_VERSION_MAJOR << '.' << CAPNP_VERSION_MINOR << '.' << CAPNP_VERSION_MICRO << '\n';
  out << "  spdlog       " << SPDLOG_VER_MAJOR << '.' << SPDLOG_VER_MINOR << '.' << SPDLOG_VER_PATCH << '\n';
  out << "  wire         protocol version " << wire::kProtocolVersion << '\n';
  const auto blas = loaded_blas();
  bool openblas = false;
  if (blas.empty()) out << "  BLAS         none loaded\n";
  for (const auto& path : blas) {
    const bool is_open = path.find("openblas") != std::string::npos;
    openblas = openblas || is_open;
    out << "  BLAS         " << path << (is_open ? " (OpenBLAS)" : " (not OpenBLAS: expect ~17x slower training)")
        << '\n';
  }
  out << "  threads      torch intra-op " << at::get_num_threads() << ", inter-op " << at::get_num_interop_threads()
      << ", hardware " << std::thread::hardware_concurrency() << "; OMP_WAIT_POLICY=" << env_or("OMP_WAIT_POLICY", "unset")
      << ", OPENBLAS_NUM_THREADS=" << env_or("OPENBLAS_NUM_THREADS", "unset") << '\n';
  if (!openblas) out << "  warning      run scripts/setup to install and select OpenBLAS\n";
  return out.str();
}

}  // namespace gwtf::app
