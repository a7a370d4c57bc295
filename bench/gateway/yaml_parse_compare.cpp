// yaml_parse_compare: how long each Debian YAML library takes to parse one
// file, and the peak RSS of the process that did it (one library per run, so
// the peaks do not mix). What chose the gateway config's parser.
//
//   yaml_parse_compare libyaml|libfyaml|yaml-cpp FILE
//
// Prints "<library> parse_ms=<ms> nodes=<n> max_rss_kib=<kib>". libyaml: the
// event stream, every event seen (what a loader that builds its own tree
// reads); libfyaml: the document tree (duplicate keys are errors there);
// yaml-cpp: YAML::LoadFile, the tree its users walk.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include <libfyaml.h>
#include <yaml-cpp/yaml.h>
#include <yaml.h>

namespace {

long walk_cpp(const YAML::Node& node) {
  long n = 1;
  if (node.IsMap()) {
    for (const auto& kv : node) n += walk_cpp(kv.first) + walk_cpp(kv.second);
  } else if (node.IsSequence()) {
    for (const auto& item : node) n += walk_cpp(item);
  }
  return n;
}

long walk_fy(fy_node* node) {
  long n = 1;
  if (fy_node_is_mapping(node)) {
    void* it = nullptr;
    while (fy_node_pair* pair = fy_node_mapping_iterate(node, &it)) {
      n += walk_fy(fy_node_pair_key(pair)) + walk_fy(fy_node_pair_value(pair));
    }
  } else if (fy_node_is_sequence(node)) {
    void* it = nullptr;
    while (fy_node* item = fy_node_sequence_iterate(node, &it)) n += walk_fy(item);
  }
  return n;
}

long parse_libyaml(const char* path) {
  FILE* file = std::fopen(path, "rb");
  if (file == nullptr) return -1;
  yaml_parser_t parser;
  yaml_parser_initialize(&parser);
  yaml_parser_set_input_file(&parser, file);
  long n = 0;
  for (;;) {
    yaml_event_t event;
    if (!yaml_parser_parse(&parser, &event)) {
      n = -1;
      break;
    }
    const bool done = event.type == YAML_STREAM_END_EVENT;
    if (event.type == YAML_SCALAR_EVENT || event.type == YAML_MAPPING_START_EVENT ||
        event.type == YAML_SEQUENCE_START_EVENT)
      ++n;
    yaml_event_delete(&event);
    if (done) break;
  }
  yaml_parser_delete(&parser);
  std::fclose(file);
  return n;
}

long parse_libfyaml(const char* path) {
  fy_parse_cfg cfg{};
  cfg.flags = FYPCF_QUIET;
  fy_document* doc = fy_document_build_from_file(&cfg, path);
  if (doc == nullptr) return -1;
  const long n = walk_fy(fy_document_root(doc));
  fy_document_destroy(doc);
  return n;
}

long parse_yaml_cpp(const char* path) {
  try {
    return walk_cpp(YAML::LoadFile(path));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "yaml-cpp: %s\n", e.what());
    return -1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: yaml_parse_compare libyaml|libfyaml|yaml-cpp FILE\n");
    return 2;
  }
  const std::string library = argv[1];
  const auto start = std::chrono::steady_clock::now();
  long nodes = -2;
  if (library == "libyaml") nodes = parse_libyaml(argv[2]);
  if (library == "libfyaml") nodes = parse_libfyaml(argv[2]);
  if (library == "yaml-cpp") nodes = parse_yaml_cpp(argv[2]);
  const std::chrono::duration<double, std::milli> took = std::chrono::steady_clock::now() - start;
  if (nodes == -2) {
    std::fprintf(stderr, "unknown library %s\n", argv[1]);
    return 2;
  }
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  std::printf("%s parse_ms=%.1f nodes=%ld max_rss_kib=%ld\n", library.c_str(), took.count(), nodes,
              usage.ru_maxrss);
  return nodes < 0 ? 1 : 0;
}
