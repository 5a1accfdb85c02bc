#include "store_client.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <thread>

namespace grpo {
namespace dist {

namespace {

int connect_once(const std::string& host, int port, std::string* err) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (rc != 0) {
    *err = std::string("cannot resolve ") + host + ": " + gai_strerror(rc);
    return -1;
  }
  int fd = -1;
  for (addrinfo* a = res; a; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) continue;
    if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
    *err = std::strerror(errno);
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  return fd;
}

}  // namespace

StoreClient::StoreClient(const std::string& host, int port, const std::string& prefix, std::chrono::milliseconds timeout)
    : prefix_(prefix), where_(host + ":" + std::to_string(port)), timeout_(timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string err;
  while ((fd_ = connect_once(host, port, &err)) < 0) {
    if (std::chrono::steady_clock::now() >= deadline)
      throw std::runtime_error("rendezvous store at " + where_ + " unreachable for " + std::to_string(timeout.count()) + " ms: " + err);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

StoreClient::~StoreClient() {
  if (fd_ >= 0) close(fd_);
}

// Every send and receive waits at most the store timeout (plus a get's own wait): a rank 0 that
// died mid-rendezvous closes the socket (an error at once) and one that hangs times out.
void StoreClient::send_all(const void* p, size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n) {
    ssize_t k = ::send(fd_, c, n, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) throw std::runtime_error("rendezvous store at " + where_ + ": send failed: " + std::strerror(errno));
    c += k;
    n -= static_cast<size_t>(k);
  }
}

void StoreClient::recv_all(void* p, size_t n) {
  char* c = static_cast<char*>(p);
  while (n) {
    pollfd pfd{fd_, POLLIN, 0};
    int r = poll(&pfd, 1, static_cast<int>(timeout_.count()) * 2 + 1000);
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) throw std::runtime_error("rendezvous store at " + where_ + " did not answer in time (rank 0 hung?)");
    ssize_t k = ::recv(fd_, c, n, 0);
    if (k < 0 && errno == EINTR) continue;
    if (k == 0) throw std::runtime_error("rendezvous store at " + where_ + " closed the connection (rank 0 exited?)");
    if (k < 0) throw std::runtime_error("rendezvous store at " + where_ + ": receive failed: " + std::strerror(errno));
    c += k;
    n -= static_cast<size_t>(k);
  }
}

static void put_u32(std::vector<char>& b, uint32_t v) {
  for (int i = 0; i < 4; ++i) b.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void StoreClient::set(const std::string& key, const std::vector<char>& data) {
  std::string k = prefix_ + key;
  std::vector<char> req;
  req.push_back('S');
  put_u32(req, static_cast<uint32_t>(k.size()));
  req.insert(req.end(), k.begin(), k.end());
  put_u32(req, static_cast<uint32_t>(data.size()));
  req.insert(req.end(), data.begin(), data.end());
  send_all(req.data(), req.size());
  char ok = 1;
  recv_all(&ok, 1);
  if (ok != 0) throw std::runtime_error("rendezvous store at " + where_ + ": set " + k + " refused");
}

std::vector<char> StoreClient::get_with(const std::string& key, std::chrono::milliseconds timeout) {
  std::string k = prefix_ + key;
  std::vector<char> req;
  req.push_back('G');
  put_u32(req, static_cast<uint32_t>(k.size()));
  req.insert(req.end(), k.begin(), k.end());
  put_u32(req, 4);
  put_u32(req, static_cast<uint32_t>(timeout.count()));
  send_all(req.data(), req.size());
  unsigned char head[5];
  recv_all(head, 5);
  uint32_t len = head[1] | (head[2] << 8) | (head[3] << 16) | (uint32_t(head[4]) << 24);
  std::vector<char> out(len);
  if (len) recv_all(out.data(), len);
  if (head[0] != 0) throw std::runtime_error("rendezvous: key " + k + " not published within " + std::to_string(timeout.count()) + " ms (a rank did not start or died during rendezvous)");
  return out;
}

std::vector<char> StoreClient::get(const std::string& key) { return get_with(key, timeout_); }

void StoreClient::wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) {
  for (const auto& k : keys) get_with(k, timeout);
}

}  // namespace dist
}  // namespace grpo
