#include "kernels/wire/membership_codec.hpp"

#include <string>

#include "kernels/base/overloaded.hpp"

namespace gwtf::wire {

namespace {

using namespace gwtf::train;

constexpr size_t kMaxHost = 255;
constexpr size_t kMaxReason = 4096;
constexpr unsigned kMaxMembers = 1u << 16;
constexpr size_t kMaxCertificate = 16 * 1024;  // a P-256 node certificate is under 1 KiB
constexpr size_t kMaxSignature = 1024;

Err<WireError> invalid(std::string what) {
  return Err<WireError>{WireError{WireErrc::kInvalidValue, "invalid value: " + std::move(what)}};
}

// Text a peer sent: no NUL inside (it would end the string early on the next encode) and at most `limit` bytes.
Result<std::string, WireError> text(capnp::Text::Reader t, size_t limit, const std::string& field) {
  if (t.size() > limit) return invalid(field + " has " + std::to_string(t.size()) + " bytes");
  std::string s(t.begin(), t.size());
  if (s.find('\0') != std::string::npos) return invalid(field + " holds a NUL byte");
  return s;
}

void fill_member(schema::MemberInfo::Builder b, const MemberInfo& m) {
  b.setId(m.id);
  b.setStage(static_cast<uint16_t>(m.stage));
  b.setHost(capnp::Text::Reader(m.host.data(), m.host.size()));
  b.setPort(m.port);
  b.setReady(m.ready);
  b.setStatusPort(m.status_port);
  b.setDataPort(m.data_port);
}

Result<MemberInfo, WireError> read_member(schema::MemberInfo::Reader r, const char* field) {
  auto host = text(r.getHost(), kMaxHost, std::string(field) + ".host");
  if (!host) return Err{std::move(host).error()};
  return MemberInfo{r.getId(),         r.getStage(),      std::move(host).value(), r.getPort(),
                    r.getReady(),      r.getStatusPort(), r.getDataPort()};
}

}  // namespace

void fill_membership(schema::MembershipMessage::Builder out, const MembershipBody& m) {
  std::visit(Overloaded{
                 [&](const Hello& h) {
                   auto b = out.initHello();
                   b.setId(h.id);
                   b.setRole(h.role == Role::kData    ? schema::Hello::Role::DATA
                             : h.role == Role::kRelay ? schema::Hello::Role::RELAY
                                                      : schema::Hello::Role::ANY);
                   b.setStage(static_cast<uint16_t>(h.stage));
                   b.setHost(capnp::Text::Reader(h.host.data(), h.host.size()));
                   b.setPort(h.port);
                   b.setConfigHash(h.config_hash);
                   b.setStatusPort(h.status_port);
                   b.setDataPort(h.data_port);
                 },
                 [&](const RosterMsg& r) {
                   auto b = out.initRoster();
                   auto list = b.initMembers(static_cast<unsigned>(r.members.size()));
                   for (unsigned k = 0; k < r.members.size(); ++k) fill_member(list[k], r.members[k]);
                   b.setStarted(r.started);
                   fill_member(b.initYou(), r.you);
                 },
                 [&](const Joined& j) { fill_member(out.initJoined(), j.member); },
                 [&](const Refused& r) { out.setRefused(capnp::Text::Reader(r.reason.data(), r.reason.size())); },
                 [&](const Proof& p) {
                   auto b = out.initProof();
                   b.setCertificate(capnp::Data::Reader(reinterpret_cast<const capnp::byte*>(p.certificate.data()),
                                                        p.certificate.size()));
                   b.setIncarnation(p.incarnation);
                   b.setSignature(capnp::Data::Reader(reinterpret_cast<const capnp::byte*>(p.signature.data()),
                                                      p.signature.size()));
                 },
                 [&](const Gone& g) { out.setGone(g.node); },
                 [&](const Suspect& s) { out.setSuspect(s.node); },
             },
             m);
}

Result<MembershipBody, WireError> read_membership(schema::MembershipMessage::Reader in) {
  switch (in.which()) {
    case schema::MembershipMessage::HELLO: {
      auto h = in.getHello();
      Hello out;
      out.id = h.getId();
      switch (h.getRole()) {
        case schema::Hello::Role::DATA: out.role = Role::kData; break;
        case schema::Hello::Role::RELAY: out.role = Role::kRelay; break;
        case schema::Hello::Role::ANY: out.role = Role::kAny; break;
        default: return invalid("hello.role = " + std::to_string(static_cast<unsigned>(h.getRole())));
      }
      out.stage = h.getStage();
      auto host = text(h.getHost(), kMaxHost, "hello.host");
      if (!host) return Err{std::move(host).error()};
      if (host.value().empty()) return invalid(std::string("hello.host has 0 bytes"));
      if (h.getPort() == 0) return invalid(std::string("hello.port = 0"));
      out.host = std::move(host).value();
      out.port = h.getPort();
      out.config_hash = h.getConfigHash();
      out.status_port = h.getStatusPort();
      out.data_port = h.getDataPort();
      return MembershipBody{std::move(out)};
    }
    case schema::MembershipMessage::ROSTER: {
      auto r = in.getRoster();
      if (r.getMembers().size() > kMaxMembers)
        return invalid("roster.members has " + std::to_string(r.getMembers().size()) + " entries");
      RosterMsg out;
      for (auto m : r.getMembers()) {
        auto member = read_member(m, "roster.members");
        if (!member) return Err{std::move(member).error()};
        out.members.push_back(std::move(member.value()));
      }
      out.started = r.getStarted();
      auto you = read_member(r.getYou(), "roster.you");
      if (!you) return Err{std::move(you).error()};
      out.you = std::move(you.value());
      return MembershipBody{std::move(out)};
    }
    case schema::MembershipMessage::JOINED: {
      auto m = read_member(in.getJoined(), "joined");
      if (!m) return Err{std::move(m).error()};
      return MembershipBody{Joined{std::move(m.value())}};
    }
    case schema::MembershipMessage::REFUSED: {
      auto reason = text(in.getRefused(), kMaxReason, "refused");
      if (!reason) return Err{std::move(reason).error()};
      return MembershipBody{Refused{std::move(reason).value()}};
    }
    case schema::MembershipMessage::PROOF: {
      // Each get of a pointer counts against the traversal limit (every word read once): read each field once.
      auto p = in.getProof();
      auto cert = p.getCertificate();
      auto sig = p.getSignature();
      if (cert.size() > kMaxCertificate) return invalid("proof.certificate has " + std::to_string(cert.size()) + " bytes");
      if (sig.size() > kMaxSignature) return invalid("proof.signature has " + std::to_string(sig.size()) + " bytes");
      Proof out;
      out.certificate.assign(reinterpret_cast<const char*>(cert.begin()), cert.size());
      out.incarnation = p.getIncarnation();
      out.signature.assign(reinterpret_cast<const char*>(sig.begin()), sig.size());
      return MembershipBody{std::move(out)};
    }
    case schema::MembershipMessage::GONE: return MembershipBody{Gone{in.getGone()}};
    case schema::MembershipMessage::SUSPECT: return MembershipBody{Suspect{in.getSuspect()}};
  }
  return Err<WireError>{WireError{WireErrc::kUnknownKind, "membership kind " + std::to_string(static_cast<unsigned>(in.which()))}};
}

}  // namespace gwtf::wire
