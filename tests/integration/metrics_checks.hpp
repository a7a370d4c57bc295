// tests/integration/metrics_checks.hpp — what the metrics tests share:
// finding a series in a MetricsSnapshot, and `promtool check metrics` on a
// scrape (skipped with a message where promtool is missing, a failure under
// CI=true: .ci/setup installs it with the Debian package `prometheus`).
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <string_view>
#include <thread>

#include "portico/metrics.hpp"

namespace portico::testing {

inline const RequestSeries* find_series(const MetricsSnapshot& snapshot, std::string_view route,
                                        std::string_view method, int status_class, ErrorLabel error,
                                        bool fallback = false) {
  for (const RequestSeries& s : snapshot.requests) {
    if (s.route == route && s.method == method && s.status_class == status_class &&
        s.error == error && s.fallback == fallback)
      return &s;
  }
  return nullptr;
}

inline std::size_t series_for_route(const MetricsSnapshot& snapshot, std::string_view route) {
  std::size_t n = 0;
  for (const RequestSeries& s : snapshot.requests) n += s.route == route ? 1 : 0;
  return n;
}

// Requests of every series labelled `error` (and, when given, `fallback`).
inline std::uint64_t requests_with(const MetricsSnapshot& snapshot, ErrorLabel error,
                                   int fallback = -1) {
  std::uint64_t n = 0;
  for (const RequestSeries& s : snapshot.requests) {
    if (s.error == error && (fallback < 0 || s.fallback == (fallback == 1))) n += s.count;
  }
  return n;
}

// Polls `condition` (a count a reactor writes) until it holds or 5 s pass:
// for counts no socket event announces (a proxied exchange is counted as it
// ends, which may be just after its last byte went out). The pause between
// looks only spares the CPU; it orders nothing.
inline bool wait_for(const std::function<bool()>& condition) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// promtool's path, or "" when it is not installed.
inline std::string find_promtool() {
  for (const char* candidate : {"/usr/bin/promtool", "/usr/local/bin/promtool"}) {
    if (::access(candidate, X_OK) == 0) return candidate;
  }
  return {};
}

// Fails the test unless `promtool check metrics` accepts `text` (lint
// included); skips where promtool is missing, except under CI=true.
inline void check_with_promtool(const std::string& text) {
  const std::string promtool = find_promtool();
  if (promtool.empty()) {
    const char* ci = std::getenv("CI");
    if (ci != nullptr && std::string_view(ci) == "true") {
      ADD_FAILURE() << "promtool is missing (Debian package prometheus; run .ci/setup)";
    } else {
      std::fprintf(stderr,
                   "note: promtool not installed (Debian package prometheus): scrape not "
                   "checked\n");
    }
    return;
  }
  char path[] = "/tmp/portico-metrics-XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  ::close(fd);
  const std::string command = promtool + " check metrics < " + path + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char chunk[4096];
  std::size_t n = 0;
  while ((n = std::fread(chunk, 1, sizeof chunk, pipe)) > 0) output.append(chunk, n);
  const int status = ::pclose(pipe);
  ::unlink(path);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "promtool check metrics:\n"
                                                             << output << "\non:\n"
                                                             << text.substr(0, 4000);
}

}  // namespace portico::testing
