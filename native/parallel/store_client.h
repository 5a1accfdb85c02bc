// A client of the rendezvous store that lib/parallel/store.ts serves on rank 0 (MASTER_ADDR:
// MASTER_PORT), as a gloo::rendezvous::Store: Gloo's connectFullMesh publishes each rank's pair
// addresses through it. The 2022 Gloo that Debian ships (libgloo-dev 0.5) has only file, hash
// and Redis stores, no TCP store, hence this one. Every socket call is bounded by the timeout, so
// an unreachable or dead rank 0 is an error, never a hang.
//
// Wire format (little endian), one request then one reply per round trip:
//   request: u8 op, u32 keyLen, key, u32 valLen, val
//   'S' set key = val                  -> u8 0
//   'G' get key, val = u32 timeout ms  -> u8 status (0 ok, 1 timed out), u32 len, data
#pragma once
#include <gloo/rendezvous/store.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace grpo {
namespace dist {

class StoreClient : public gloo::rendezvous::Store {
 public:
  // Connects (retrying until `timeout`: rank 0 may still be starting); throws std::runtime_error.
  StoreClient(const std::string& host, int port, const std::string& prefix, std::chrono::milliseconds timeout);
  ~StoreClient() override;

  void set(const std::string& key, const std::vector<char>& data) override;
  std::vector<char> get(const std::string& key) override;
  void wait(const std::vector<std::string>& keys) override { wait(keys, timeout_); }
  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) override;

 private:
  std::vector<char> get_with(const std::string& key, std::chrono::milliseconds timeout);
  void send_all(const void* p, size_t n);
  void recv_all(void* p, size_t n);
  int fd_ = -1;
  std::string prefix_;
  std::string where_;
  std::chrono::milliseconds timeout_;
};

}  // namespace dist
}  // namespace grpo
