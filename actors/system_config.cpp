#include "actors/system_config.hpp"

#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>
#include <caf/timespan.hpp>

#include <stdexcept>

#include "actors/frame.hpp"
#include "actors/openssl_guard.hpp"

namespace gwtf {

SystemConfig::SystemConfig(const RuntimeOptions& options) {
  load<caf::io::middleman>();
  add_message_type<Frame>("gwtf.frame");
  set("scheduler.max-threads", options.scheduler_threads);
  set("middleman.workers", size_t{0});
  set("middleman.heartbeat-interval", caf::timespan{options.heartbeat_interval});
  set("middleman.connection-timeout", caf::timespan{options.connection_timeout});
  if (options.tls) {
    if (!openssl_guarded())
      throw std::logic_error("this executable does not export gwtf's OpenSSL guard (actors/openssl_guard.hpp): "
                             "CAF's TLS links would fail together");
    load<caf::openssl::manager>();
    set("openssl.certificate", options.tls->cert_file);
    set("openssl.key", options.tls->key_file);
    set("openssl.cafile", options.tls->ca_file);
    if (!options.tls->passphrase.empty()) set("openssl.passphrase", options.tls->passphrase);
  }
}

}  // namespace gwtf
