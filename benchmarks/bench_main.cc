// The C++ shim: registers the C case families of bench.h with Google
// Benchmark and runs them. Bodies, counters and the summary are C (DESIGN.md).
#include <benchmark/benchmark.h>

#include <cstring>

#include "bench.h"

namespace {

constexpr int kMaxCounters = 16;

void RunCase(benchmark::State &state, const bench_family *family, int index) {
  char why[256] = "";
  void *run = family->open(index, why, sizeof why);
  if (run == nullptr) {
    state.SkipWithError(why);
    return;
  }
  // Manual time: the C body times exactly the call, so setup and the
  // AUTO-choice capture stay outside the measurement.
  double total = 0;
  for (auto _ : state) {
    double seconds = family->iterate(run);
    if (seconds < 0) {
      state.SkipWithError(family->error(run));
      break;
    }
    state.SetIterationTime(seconds);
    total += seconds;
  }
  if (!state.error_occurred() && state.iterations() > 0) {
    bench_counter counters[kMaxCounters];
    int n = family->finish(run, total / static_cast<double>(state.iterations()), counters,
                           kMaxCounters);
    for (int i = 0; i < n; ++i) state.counters[counters[i].name] = counters[i].value;
    state.SetLabel(family->label(run));
  }
  family->close(run);
}

void RegisterFamily(const bench_family *family) {
  for (int i = 0; i < family->count(); ++i) {
    benchmark::RegisterBenchmark(family->name(i), RunCase, family, i)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
  }
}

bool WantsHelp(int argc, char **argv) {
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--help") == 0) return true;
  return false;
}

}  // namespace

int main(int argc, char **argv) {
  bench_config config;
  if (bench_config_parse(&argc, argv, &config) != 0) return 2;
  if (WantsHelp(argc, argv)) bench_config_usage();  // Google Benchmark adds its own, exits
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;

  if (bench_cases_build(&config) < 0) return 1;
  RegisterFamily(&bench_attention_family);
  RegisterFamily(&bench_ukernel_family);
  benchmark::RunSpecifiedBenchmarks();
  int failures = bench_summary_print(&config);
  benchmark::Shutdown();
  return failures > 0 ? 1 : 0;
}
