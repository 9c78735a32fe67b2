// The simulated board (sim/board.py, VerilatorBoard): rtl.board.BoardSystem (host="bytes") in
// sim.board.BoardPorts on Verilator. Its memory is one of two, chosen at build time by
// board_config.h (written by sim/board.py):
//   BOARD_SDRAM 1: memory="sdram", the SDRAM controller's pins on sim/cpp/sdram_chip.h's
//     behavioural chip (the controller drives dq_o/dq_oe, the chip dq_i), its words noise at
//     power-up, every protocol or timing violation counted;
//   BOARD_SDRAM 0: memory="port", the memory port served by sim/cpp/memory.h's MemoryModel (the
//     timings of sim/memory.py) over a memory filled with noise, as SDRAM is at power-up.
// The host's bytes come and go on stdin/stdout in lockstep: the board runs only when told, so its
// clock is simulated time, cycle for cycle as sim.board.PysimBoard's (the link's input offers the
// bytes queued at the last clock edge, as PysimBoard's feeder does; reads run in steps).
//
// usage: board_harness PARAMS   (port/cmd/w_data_bits/interval/timing as sim/cpp/memory.h's
//        PortParams reads them, chip_* as sim/cpp/sdram_chip.h's ChipParams does, then
//        "lanes CMD DATA IN OUT", "stall THRESHOLD SEED", "memory BYTES SEED", "step CYCLES",
//        "keep MESSAGES")
// stdin, one command a line; each but `w` answered with one line "CYCLE VIOLATIONS ...":
//   w HEX          queue bytes for the link's input stream
//   r N CYCLES     run in steps until N reply bytes are there or CYCLES pass: "CYCLE V [HEX]"
//   s CYCLES       run CYCLES: "CYCLE V"
//   v              "CYCLE V", then the chip's report (sdram_chip.h's SDRAMChip::report)
//   q              quit
#include "Vwino_top.h"
#include "board_config.h"
#include "memory.h"
#include "sdram_chip.h"
#include "verilated.h"
#include <cstdio>
#include <deque>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

struct Params : PortParams {
    ChipParams chip;
    uint64_t mem_bytes = 0, mem_seed = 0, threshold = 0, seed = 0, step = 1, keep = 1;
    uint64_t cmd_lane = 0, data_lane = 0, in_lane = 0, out_lane = 0;
};

static Params read_params(const char *path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error(std::string("cannot read ") + path);
    Params p;
    std::string key;
    while (in >> key) {
        if (p.read(key, in) || p.chip.read(key, in)) {}
        else if (key == "lanes") in >> p.cmd_lane >> p.data_lane >> p.in_lane >> p.out_lane;
        else if (key == "stall") in >> p.threshold >> p.seed;
        else if (key == "memory") in >> p.mem_bytes >> p.mem_seed;
        else if (key == "step") in >> p.step;
        else if (key == "keep") in >> p.keep;
        else throw std::runtime_error("unknown parameter " + key);
        if (!in) throw std::runtime_error("bad value for parameter " + key);
    }
    if (!p.step) throw std::runtime_error("step must be positive");
    return p;
}

static void noise(std::vector<uint8_t> &mem, uint64_t seed) {
    for (uint64_t i = 0; i < mem.size(); i += 8) {
        uint64_t v = mix64(seed ^ mix64(i));
        for (uint64_t j = 0; j < 8 && i + j < mem.size(); j++) mem[i + j] = v >> (8 * j) & 0xFF;
    }
}

#if BOARD_SDRAM
// The controller's pins on the chip: dq_i is what the chip drove after the last edge.
struct Memory {
    SDRAMChip chip;
    uint64_t dq_i = 0;
    explicit Memory(const Params &p) : chip(p.chip, p.keep) {
        if (p.mem_bytes != chip.data.size())
            throw std::runtime_error("memory of " + std::to_string(p.mem_bytes) + " bytes, the chip holds " +
                                     std::to_string(chip.data.size()));
        noise(chip.data, p.mem_seed);
    }
    void drive(Vwino_top *top, uint64_t) { top->sd_dq_i = dq_i; }
    void clock(Vwino_top *top, uint64_t) {
        dq_i = chip.step(top->sd_cke, top->sd_cs_n, top->sd_ras_n, top->sd_cas_n, top->sd_we_n, top->sd_ba, top->sd_a,
                         top->sd_dqm, top->sd_dq_o, top->sd_dq_oe);
    }
    uint64_t violations() const { return chip.violations; }
    std::string report() const { return chip.report(); }
};
#else
// The memory port on sim/memory.py's model.
struct Memory {
    std::vector<uint8_t> mem;
    std::unique_ptr<Timing> t;
    MemoryModel model;
    uint64_t w_bits, w_mask;
    explicit Memory(const Params &p)
        : mem(p.mem_bytes), t(p.make_timing()),
          model(mem, *t, p.W, p.depth, p.cmd, p.num, p.den, p.threshold, p.seed, p.cmd_lane, p.data_lane),
          w_bits(p.w_data_bits), w_mask(p.w_data_bits >= 64 ? ~0ull : (1ull << p.w_data_bits) - 1) {
        noise(mem, p.mem_seed);
    }
    void drive(Vwino_top *top, uint64_t c) {
        model.drive(c);
        top->cmd_ready = model.cmd_ready;
        top->w_ready = model.w_ready();
        top->r_valid = model.r_valid();
        top->r_payload = model.r_data;
    }
    void clock(Vwino_top *top, uint64_t c) {
        uint64_t w = top->w_payload;
        model.clock(c, top->cmd_valid, top->cmd_payload, top->w_valid, w & w_mask, w >> w_bits, top->r_ready);
    }
    uint64_t violations() const { return 0; }
    std::string report() const { return "0 0\n\n"; }
};
#endif

struct Board {
    Vwino_top *top;
    Memory &mem;
    const Params &p;
    uint64_t c = 0, visible = 0;        // visible: the input bytes queued at the last edge
    std::deque<uint8_t> in, out;

    // one clock cycle: the memory and the host's byte streams driven, sampled at the edge
    void cycle() {
        if (c == 0) visible = in.size();        // PysimBoard's feeder first looks before any edge
        mem.drive(top, c);
        top->i_valid = visible && !stalled(p.threshold, p.seed, p.in_lane, c);
        top->i_payload = in.empty() ? 0 : in.front();
        top->o_ready = !stalled(p.threshold, p.seed, p.out_lane, c);
        top->clk = 0;
        top->eval();
        bool taken = top->i_valid && top->i_ready, sent = top->o_valid && top->o_ready;
        uint8_t byte = top->o_payload;
        mem.clock(top, c);
        top->clk = 1;
        top->eval();
        if (taken) in.pop_front();
        if (sent) out.push_back(byte);
        visible = in.size();
        c++;
    }
    void run(uint64_t cycles) {
        for (uint64_t k = 0; k < cycles; k++) cycle();
    }
    std::string head() const { return std::to_string(c) + " " + std::to_string(mem.violations()); }
};

static std::string hex(std::deque<uint8_t> &q, uint64_t n) {
    static const char digits[] = "0123456789abcdef";
    std::string s;
    for (uint64_t k = 0; k < n && !q.empty(); k++) {
        s += digits[q.front() >> 4];
        s += digits[q.front() & 15];
        q.pop_front();
    }
    return s;
}

int main(int argc, char **argv) {
    Verilated::commandArgs(argc, argv);
    if (argc < 2) {
        std::cerr << "usage: " << argv[0] << " PARAMS\n";
        return 2;
    }
    try {
        Params p = read_params(argv[1]);
        Memory mem(p);
        Vwino_top *top = new Vwino_top;
        top->rst = 1;
        top->clk = 0; top->eval();
        top->clk = 1; top->eval();
        top->rst = 0;
        Board b{top, mem, p};
        std::string line;
        while (std::getline(std::cin, line)) {
            std::istringstream cmd(line);
            std::string op;
            cmd >> op;
            if (op == "w") {
                std::string h;
                cmd >> h;
                for (size_t i = 0; i + 1 < h.size(); i += 2) b.in.push_back((uint8_t)std::stoul(h.substr(i, 2), nullptr, 16));
            } else if (op == "r") {
                uint64_t n, cycles;
                cmd >> n >> cycles;
                for (uint64_t k = 0; k < cycles && b.out.size() < n; k += p.step) b.run(std::min(p.step, cycles - k));
                std::cout << b.head() << " " << hex(b.out, n) << "\n" << std::flush;
            } else if (op == "s") {
                uint64_t cycles;
                cmd >> cycles;
                b.run(cycles);
                std::cout << b.head() << "\n" << std::flush;
            } else if (op == "v") {
                std::cout << b.head() << "\n" << mem.report() << std::flush;
            } else if (op == "q") {
                break;
            } else {
                throw std::runtime_error("unknown command " + line);
            }
        }
        delete top;
        return 0;
    } catch (const std::exception &e) {
        std::cerr << "error: " << e.what() << "\n";
        return 4;
    }
}
