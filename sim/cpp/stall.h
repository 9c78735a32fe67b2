// The stall pattern of sim.streams.Stalls: splitmix64 (mix64) of (seed, lane, cycle), for the
// Verilator harnesses (sim/verilator.py, sim/cpp/system_harness.cpp); a pure function of its
// arguments, so that both backends stall the same streams in the same cycles.
#pragma once
#include <cstdint>
static uint64_t mix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}
static bool stalled(uint64_t threshold, uint64_t seed, uint64_t lane, uint64_t cycle) {
    return threshold && (mix64(mix64(mix64(seed) ^ lane) ^ cycle) >> 32) < threshold;
}
