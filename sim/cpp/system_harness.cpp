// The Verilator harness of the full system (sim/verilator_system.py): runs image batches on
// Vwino_top (rtl.system.System inside sim.verilator_system.Monitored) as sim.system.run_image
// runs one on pysim, cycle for cycle. Per batch: the memory image is reloaded and the batch's
// input written to the input slot, the timing and the stall patterns start afresh, the system
// is reset, the start beat is offered as sim.streams.put offers it, and the run ends at the
// first cycle after the start beat was taken in which `done` is high (or fails after `limit`).
// Per batch it writes the memory after the run, the status triple, each COMPUTE's cycles
// (hand-over to answer, hand-over to the core's start + 1 or -1) and every instruction's issue and
// retire cycles from the sequencer's trace (-1: it never retired), each the value of the
// sequencer's `cycles` counter in the cycle its strobe was high (sim.system.SystemRun.times).
//
// usage: harness PARAMS RESULTS   (the params file: see sim.verilator_system.params)
#include "Vwino_top.h"
#include "memory.h"
#include "verilated.h"
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>

struct Params : PortParams {
    std::string memory_path, inputs_path;
    uint64_t slot_offset = 0, slot_size = 0, limit = 0;
    uint64_t cmd_lane = 0, data_lane = 0, start_lane = 0;
    uint64_t regions[4] = {0, 0, 0, 0};
    uint64_t start_payload = 0;
    struct Batch { uint64_t mem_threshold, mem_seed, start_threshold, start_seed; std::string out; };
    std::vector<Batch> batches;
};

static Params read_params(const char *path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error(std::string("cannot read ") + path);
    Params p;
    std::string key;
    while (in >> key) {
        if (p.read(key, in)) {}
        else if (key == "memory") in >> p.memory_path;
        else if (key == "inputs") in >> p.inputs_path;
        else if (key == "lanes") in >> p.cmd_lane >> p.data_lane >> p.start_lane;
        else if (key == "regions") in >> p.regions[0] >> p.regions[1] >> p.regions[2] >> p.regions[3];
        else if (key == "start") in >> p.start_payload;
        else if (key == "limit") in >> p.limit;
        else if (key == "slot") in >> p.slot_offset >> p.slot_size;
        else if (key == "batch") {
            Params::Batch b;
            in >> b.mem_threshold >> b.mem_seed >> b.start_threshold >> b.start_seed >> b.out;
            p.batches.push_back(b);
        } else throw std::runtime_error("unknown parameter " + key);
        if (!in) throw std::runtime_error("bad value for parameter " + key);
    }
    return p;
}

static std::vector<uint8_t> read_file(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path);
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

static void tick(Vwino_top *top, bool rst) {
    top->rst = rst;
    top->clk = 0; top->eval();
    top->clk = 1; top->eval();
    top->clk = 0; top->rst = 0;
}

// One queue's trace in one cycle: an instruction issued (its retire not yet seen) or retired,
// at the run's cycle `now` (sim.system.run_image's monitor).
static void trace(std::map<uint64_t, std::pair<uint64_t, int64_t>> &times, uint64_t now, bool issue, bool retire,
                  uint64_t index) {
    if (issue) times[index] = {now, -1};
    if (retire) times[index].second = (int64_t)now;
}

// One batch; false when the system is not done after `limit` cycles (written as `timeout`).
static bool run_batch(Vwino_top *top, const Params &p, const Params::Batch &b, std::vector<uint8_t> &mem,
                      std::ostream &out) {
    std::unique_ptr<Timing> t = p.make_timing();
    MemoryModel model(mem, *t, p.W, p.depth, p.cmd, p.num, p.den, b.mem_threshold, b.mem_seed, p.cmd_lane,
                      p.data_lane);
    top->load_lo = p.regions[0]; top->load_hi = p.regions[1];
    top->store_lo = p.regions[2]; top->store_hi = p.regions[3];
    top->start_valid = 0; top->cmd_ready = 0; top->w_ready = 0; top->r_valid = 0;
    tick(top, true);
    top->start_payload = p.start_payload;
    std::map<uint64_t, std::pair<uint64_t, int64_t>> computes, times;
    uint64_t issue_index = 0, issue_t = 0;
    int64_t core_t = -1;
    bool offered = false, started = false, done = false;
    uint64_t waited = 0;
    const uint64_t w_mask = p.w_data_bits >= 64 ? ~0ull : (1ull << p.w_data_bits) - 1;
    for (uint64_t c = 0; !done; c++) {
        model.drive(c);
        if (!started && !offered && !stalled(b.start_threshold, b.start_seed, p.start_lane, c)) offered = true;
        top->start_valid = offered && !started;
        top->cmd_ready = model.cmd_ready;
        top->w_ready = model.w_ready();
        top->r_valid = model.r_valid();
        top->r_payload = model.r_data;
        top->clk = 0;
        top->eval();
        // the monitor's sample of this cycle (sim.system.run_image's order)
        trace(times, top->cycles, top->mon_load_issue, top->mon_load_retire, top->mon_load_index);
        trace(times, top->cycles, top->mon_compute_issue, top->mon_compute_retire, top->mon_compute_index);
        trace(times, top->cycles, top->mon_store_issue, top->mon_store_retire, top->mon_store_index);
        if (top->mon_issue) issue_index = top->mon_issue_index, issue_t = c, core_t = -1;
        if (top->mon_core_start) core_t = c;
        if (top->mon_answer)
            computes[issue_index] = {c - issue_t, core_t < 0 ? -1 : core_t - (int64_t)issue_t + 1};
        bool taken = top->start_valid && top->start_ready;
        uint64_t w = top->w_payload;
        model.clock(c, top->cmd_valid, top->cmd_payload, top->w_valid, w & w_mask, w >> p.w_data_bits,
                    top->r_ready);
        top->clk = 1;
        top->eval();
        if (started || taken) {       // run_image's loop: `done`, else one more cycle, up to `limit`
            started = true;
            done = top->done;
            if (!done && ++waited >= p.limit) {
                out << "timeout\n";
                return false;
            }
        }
    }
    out << "status " << (uint64_t)top->status << " " << (uint64_t)top->index << " " << (uint64_t)top->cycles << "\n";
    for (auto &kv : computes) out << "compute " << kv.first << " " << kv.second.first << " " << kv.second.second << "\n";
    for (auto &kv : times) out << "time " << kv.first << " " << kv.second.first << " " << kv.second.second << "\n";
    std::ofstream f(b.out, std::ios::binary);
    f.write((const char *)mem.data(), mem.size());
    if (!f) throw std::runtime_error("cannot write " + b.out);
    return true;
}

int main(int argc, char **argv) {
    Verilated::commandArgs(argc, argv);
    if (argc < 3) {
        std::cerr << "usage: " << argv[0] << " PARAMS RESULTS\n";
        return 2;
    }
    try {
        Params p = read_params(argv[1]);
        std::vector<uint8_t> image = read_file(p.memory_path), inputs = read_file(p.inputs_path);
        if (inputs.size() < p.batches.size() * p.slot_size || p.slot_offset + p.slot_size > image.size())
            throw std::runtime_error("inputs or slot outside the memory");
        std::ofstream out(argv[2]);
        Vwino_top *top = new Vwino_top;
        for (size_t k = 0; k < p.batches.size(); k++) {
            std::vector<uint8_t> mem = image;
            std::memcpy(mem.data() + p.slot_offset, inputs.data() + k * p.slot_size, p.slot_size);
            out << "batch " << k << "\n";
            if (!run_batch(top, p, p.batches[k], mem, out)) break;
            out.flush();
        }
        delete top;
        return out ? 0 : 3;
    } catch (const std::exception &e) {
        std::cerr << "error: " << e.what() << "\n";
        return 4;
    }
}
