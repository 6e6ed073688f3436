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
  // One shared queue and a condition variable, not work stealing: an idle stealing worker polls (spins, then wakes
  // every 50 us for 25 ms) after each message, and a node's few actors get a message every few milliseconds, so
  // its workers never went to sleep. runtime_bench: pipeline / reference 1.20 -> 0.96, CPU 2.1x -> 1.6x the
  // reference's.
  set("scheduler.policy", caf::atom("sharing"));
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
