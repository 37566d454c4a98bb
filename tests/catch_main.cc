// Entry point shared by every Catch2 test binary.
//
// Under `bazel test` the XML_OUTPUT_FILE variable names where Bazel expects a
// JUnit report; writing one there gives per-test-case results in test.xml
// (which .ci/run counts) instead of one result per binary. Run by hand, the
// binary uses Catch2's console reporter as usual. When a test fails under
// Bazel, the report is also copied to stderr so test.log shows the failure.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <vector>

int main(int argc, char** argv) {
  Catch::Session session;
  std::vector<const char*> args(argv, argv + argc);
  const char* xml = std::getenv("XML_OUTPUT_FILE");
  if (xml != nullptr && *xml != '\0') {
    args.push_back("--reporter");
    args.push_back("junit");
    args.push_back("--out");
    args.push_back(xml);
  }
  const int rc = session.applyCommandLine(static_cast<int>(args.size()), args.data());
  if (rc != 0) return rc;
  const int failed = session.run();
  if (failed != 0 && xml != nullptr && *xml != '\0') {
    std::ifstream report(xml);
    std::cerr << report.rdbuf();
  }
  return failed;
}
