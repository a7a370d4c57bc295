// Links portico::server the way a host application does: a Server on an
// ephemeral loopback port answers one request from a raw socket, then stops.
// It includes the umbrella header, so every public header compiles outside
// portico's own tree.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <portico/portico.hpp>
#include <string>

int main() {
  portico::Server server({.port = 0, .handle_signals = false});
  server.get("/users/:id", [](portico::Request& req, portico::Response& res) {
    res.format("user {}", req.param("id"));
  });
  if (server.start()) return 1;
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  timeval timeout{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(server.port());
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) return 1;
  const std::string request = "GET /users/7 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  if (::write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) return 1;
  std::string response;
  char chunk[4096];
  for (ssize_t n; (n = ::read(fd, chunk, sizeof chunk)) > 0;) response.append(chunk, n);
  ::close(fd);
  server.stop();
  server.wait();
  const bool ok = response.rfind("HTTP/1.1 200 OK\r\n", 0) == 0 &&
                  response.size() >= 6 && response.substr(response.size() - 6) == "user 7";
  return ok ? 0 : 1;
}
