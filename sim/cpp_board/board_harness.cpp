// The simulated board (sim/board.py, VerilatorBoard): rtl.board.BoardSystem (host="bytes") in
// sim.board.BoardPorts on Verilator, its memory port served by sim/cpp/memory.h's MemoryModel
// (the timings of sim/memory.py) over a memory filled with noise, as SDRAM is at power-up. The
// host's bytes come and go on stdin/stdout in lockstep: the board runs only when told, so its
// clock is simulated time, as PysimBoard's is.
//
// usage: board_harness PARAMS   (port/cmd/w_data_bits/interval/timing/lanes as
//        sim/cpp/system_harness.cpp reads them, then "stall THRESHOLD SEED", "memory BYTES SEED")
// stdin, one command a line; each but `w` answered with one line:
//   w HEX          queue bytes for the link's input stream
//   r N CYCLES     run until N reply bytes are there or CYCLES pass: "CYCLE [HEX]" (at most N bytes)
//   s CYCLES       run CYCLES: "CYCLE"
//   q              quit
#include "Vwino_top.h"
#include "memory.h"
#include "verilated.h"
#include <cstdio>
#include <deque>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

struct Params : PortParams {
    uint64_t mem_bytes = 0, mem_seed = 0, threshold = 0, seed = 0;
    uint64_t cmd_lane = 0, data_lane = 0;
};

static Params read_params(const char *path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error(std::string("cannot read ") + path);
    Params p;
    std::string key;
    while (in >> key) {
        if (p.read(key, in)) {}
        else if (key == "lanes") in >> p.cmd_lane >> p.data_lane;
        else if (key == "stall") in >> p.threshold >> p.seed;
        else if (key == "memory") in >> p.mem_bytes >> p.mem_seed;
        else throw std::runtime_error("unknown parameter " + key);
        if (!in) throw std::runtime_error("bad value for parameter " + key);
    }
    return p;
}

struct Board {
    Vwino_top *top;
    MemoryModel &model;
    uint64_t w_bits, w_mask, c = 0;
    std::deque<uint8_t> in, out;

    // one clock cycle: the memory and the host's byte streams driven, sampled at the edge
    void cycle() {
        model.drive(c);
        top->cmd_ready = model.cmd_ready;
        top->w_ready = model.w_ready();
        top->r_valid = model.r_valid();
        top->r_payload = model.r_data;
        top->i_valid = !in.empty();
        top->i_payload = in.empty() ? 0 : in.front();
        top->o_ready = 1;
        top->clk = 0;
        top->eval();
        bool taken = top->i_valid && top->i_ready, sent = top->o_valid;
        uint8_t byte = top->o_payload;
        uint64_t w = top->w_payload;
        model.clock(c, top->cmd_valid, top->cmd_payload, top->w_valid, w & w_mask, w >> w_bits, top->r_ready);
        top->clk = 1;
        top->eval();
        if (taken) in.pop_front();
        if (sent) out.push_back(byte);
        c++;
    }
};

static std::vector<uint8_t> noise(uint64_t n, uint64_t seed) {
    std::vector<uint8_t> mem(n);
    for (uint64_t i = 0; i < n; i += 8) {
        uint64_t v = mix64(seed ^ mix64(i));
        for (uint64_t j = 0; j < 8 && i + j < n; j++) mem[i + j] = v >> (8 * j) & 0xFF;
    }
    return mem;
}

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
        std::vector<uint8_t> mem = noise(p.mem_bytes, p.mem_seed);
        std::unique_ptr<Timing> t = p.make_timing();
        MemoryModel model(mem, *t, p.W, p.depth, p.cmd, p.num, p.den, p.threshold, p.seed, p.cmd_lane, p.data_lane);
        Vwino_top *top = new Vwino_top;
        top->rst = 1;
        top->clk = 0; top->eval();
        top->clk = 1; top->eval();
        top->rst = 0;
        Board b{top, model, p.w_data_bits, p.w_data_bits >= 64 ? ~0ull : (1ull << p.w_data_bits) - 1};
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
                for (uint64_t k = 0; k < cycles && b.out.size() < n; k++) b.cycle();
                std::cout << b.c << " " << hex(b.out, n) << "\n" << std::flush;
            } else if (op == "s") {
                uint64_t cycles;
                cmd >> cycles;
                for (uint64_t k = 0; k < cycles; k++) b.cycle();
                std::cout << b.c << "\n" << std::flush;
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
