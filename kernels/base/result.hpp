// Result<T, E>: a value or an error, for outcomes a caller must handle (KJ's "errors are values").
// Kernel code never throws for expected failures; broken invariants are bugs (GWTF_ASSERT).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <utility>
#include <variant>

namespace gwtf {

template <class E>
struct Err {
  E error;
};
template <class E>
Err(E) -> Err<E>;

template <class T, class E>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}
  template <class E2>
  Result(Err<E2> e) : v_(std::in_place_index<1>, E(std::move(e.error))) {}

  bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const E& error() const& { return std::get<1>(v_); }
  E&& error() && { return std::get<1>(std::move(v_)); }

 private:
  std::variant<T, E> v_;
};

}  // namespace gwtf

// A broken invariant: print where and why, then abort. Never used for bad input (that is an error value).
#define GWTF_ASSERT(cond, msg)                                                                \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      std::fprintf(stderr, "%s:%d: invariant violated: %s (%s)\n", __FILE__, __LINE__, #cond, \
                   msg);                                                                     \
      std::abort();                                                                          \
    }                                                                                        \
  } while (0)
