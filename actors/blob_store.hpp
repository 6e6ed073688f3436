// The tensors behind a node's blob handles (kernels/train's Blob), shared by the node actor (which puts received
// tensors in and encodes sent ones) and its compute actor (which reads inputs and adds results) — two threads,
// so every access takes the lock; a tensor itself is never changed once stored.
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <mutex>

#include "kernels/train/messages.hpp"

namespace gwtf {

class SharedBlobs {
 public:
  train::Blob reserve() {
    std::lock_guard<std::mutex> lock(mu_);
    return next_++;
  }
  train::Blob add(at::Tensor t) {
    std::lock_guard<std::mutex> lock(mu_);
    store_[next_] = std::move(t);
    return next_++;
  }
  void put(train::Blob b, at::Tensor t) {
    std::lock_guard<std::mutex> lock(mu_);
    store_[b] = std::move(t);
  }
  at::Tensor get(train::Blob b) const {  // undefined when absent
    std::lock_guard<std::mutex> lock(mu_);
    auto it = store_.find(b);
    return it == store_.end() ? at::Tensor() : it->second;
  }
  void release(train::Blob b) {
    std::lock_guard<std::mutex> lock(mu_);
    store_.erase(b);
  }
  size_t size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return store_.size();
  }

 private:
  mutable std::mutex mu_;
  std::map<train::Blob, at::Tensor> store_;
  train::Blob next_ = 1;
};

}  // namespace gwtf
