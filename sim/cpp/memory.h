// The memory models of sim/memory.py for the Verilator system harness, line for line: the
// timings IdealTiming, BandwidthTiming and SDRAMTiming (start/finish/split, the same state),
// and MemoryModel's port server (up to `depth` commands, segments served in order, one word a
// cycle at most, a segment's word k due at start + (k + 1) * interval - 1 in exact rationals,
// a stalled word delaying the rest). Every parameter comes from the Python side (the params
// file sim/verilator_system.py writes from the same objects pysim uses); nothing is typed here.
#pragma once
#include "stall.h"
#include <cstdint>
#include <cstring>
#include <deque>
#include <istream>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

typedef __int128 i128;
typedef std::vector<std::pair<uint64_t, uint64_t>> Segments;

struct Timing {
    virtual ~Timing() {}
    virtual void split(uint64_t addr, uint64_t n, Segments &out) { out.push_back({addr, n}); }
    virtual int64_t start(uint64_t addr, uint64_t n, bool write, int64_t known) = 0;
    virtual void finish(int64_t end) = 0;
};

struct IdealTiming : Timing {
    int64_t bus_end = 0;
    int64_t start(uint64_t, uint64_t, bool, int64_t known) override { return known > bus_end ? known : bus_end; }
    void finish(int64_t end) override { bus_end = end; }
};

// A burst that continues the previous one (next address, same direction) streams on.
struct BandwidthTiming : IdealTiming {
    int64_t latency;
    bool has_next = false, next_write = false;
    uint64_t next_addr = 0;
    explicit BandwidthTiming(int64_t latency) : latency(latency) {}
    int64_t start(uint64_t addr, uint64_t n, bool write, int64_t known) override {
        int64_t first = IdealTiming::start(addr, n, write, known);
        if (!(has_next && next_addr == addr && next_write == write)) first += latency;
        has_next = true, next_addr = addr + n, next_write = write;
        return first;
    }
};

struct SDRAMParams {
    int64_t rcd, rp, ras, rc, rfc, cas, wr, refi;
    uint64_t page, bank_bytes, banks;
};

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

struct SDRAMTiming : Timing {
    SDRAMParams p;
    std::vector<int64_t> open, act, wr_last;       // open row per bank (-1: none), last ACTIVATE, last write word
    int64_t col_next = 0, bus_end = 0, due;
    uint64_t cur_bank = 0;
    bool cur_write = false, last_write = false;

    explicit SDRAMTiming(const SDRAMParams &p)
        : p(p), open(p.banks, -1), act(p.banks, -(1ll << 40)), wr_last(p.banks, -(1ll << 40)), due(p.refi) {}

    void split(uint64_t addr, uint64_t n, Segments &out) override {
        while (n) {
            uint64_t m = p.page - addr % p.page;
            if (m > n) m = n;
            out.push_back({addr, m});
            addr += m, n -= m;
        }
    }
    int64_t precharge_ready(uint64_t b) const { return max64(act[b] + p.ras, wr_last[b] + p.wr); }
    int64_t refresh(int64_t t) {
        while (due <= t) {
            int64_t s = max64(due, col_next);
            bool any = false;
            for (uint64_t b = 0; b < p.banks; b++)
                if (open[b] >= 0) any = true, s = max64(s, precharge_ready(b));
            if (any) s += p.rp;
            int64_t end = s + p.rfc;
            for (auto &o : open) o = -1;
            col_next = max64(col_next, end), due += p.refi;
            t = max64(t, end);
        }
        return t;
    }
    int64_t start(uint64_t addr, uint64_t n, bool write, int64_t known) override {
        if (addr + n > p.bank_bytes * p.banks)
            throw std::runtime_error("SDRAM model: bytes " + std::to_string(addr) + ".." +
                                     std::to_string(addr + n - 1) + " are outside the part");
        uint64_t bank = addr / p.bank_bytes;
        int64_t row = (int64_t)(addr % p.bank_bytes / p.page);
        int64_t t = refresh(max64(known, col_next));
        if (write && !last_write) t = max64(t, bus_end);     // read data drains before write data
        if (open[bank] != row) {
            if (open[bank] >= 0) t = max64(t, precharge_ready(bank)) + p.rp;
            t = max64(t, act[bank] + p.rc);
            act[bank] = t, open[bank] = row;
            t += p.rcd;
        }
        cur_bank = bank, cur_write = write;
        return write ? t : t + p.cas;
    }
    void finish(int64_t end) override {
        bus_end = end, last_write = cur_write;
        col_next = cur_write ? end : end - p.cas;
        if (cur_write) wr_last[cur_bank] = end - 1;
    }
};

// The port's command fields (bit offsets and widths in the payload, from the Python side).
struct CmdLayout { unsigned addr_off, addr_w, len_off, len_w, write_off; };

static uint64_t field(uint64_t v, unsigned off, unsigned w) { return v >> off & ((w >= 64 ? 0 : 1ull << w) - 1); }

// sim.memory.MemoryModel: what the memory drives in a cycle (`drive`) and what it does with the
// master's signals sampled at the clock edge (`clock`). Times are in units of 1/den cycles.
struct MemoryModel {
    struct Seg { uint64_t addr, n; bool write; int64_t known; bool last; };
    std::vector<uint8_t> &mem;
    Timing &t;
    uint64_t W, depth;
    CmdLayout cl;
    int64_t num, den;                 // the interval between words, num/den cycles (>= 1)
    uint64_t threshold, seed, cmd_lane, data_lane;
    std::deque<Seg> segs;
    bool active = false, cur_write = false, cur_last = false;
    uint64_t cur_addr = 0, cur_words = 0, pending = 0;
    i128 cur_due = 0;
    // this cycle's outputs
    bool moving = false, cmd_ready = false;
    uint64_t r_data = 0;

    MemoryModel(std::vector<uint8_t> &mem, Timing &t, uint64_t W, uint64_t depth, CmdLayout cl, int64_t num,
                int64_t den, uint64_t threshold, uint64_t seed, uint64_t cmd_lane, uint64_t data_lane)
        : mem(mem), t(t), W(W), depth(depth), cl(cl), num(num), den(den), threshold(threshold), seed(seed),
          cmd_lane(cmd_lane), data_lane(data_lane) {}

    i128 ceil_cycles(i128 x) const { return x >= 0 ? (x + den - 1) / den : -((-x) / den); }

    uint64_t word(uint64_t addr) const {
        if (addr + W > mem.size())
            throw std::runtime_error("memory model: word at byte " + std::to_string(addr) + " is outside the " +
                                     std::to_string(mem.size()) + "-byte memory");
        uint64_t v = 0;
        for (uint64_t j = 0; j < W; j++) v |= (uint64_t)mem[addr + j] << (8 * j);
        return v;
    }

    void drive(uint64_t c) {
        if (!active && !segs.empty()) {
            Seg s = segs.front();
            segs.pop_front();
            active = true, cur_addr = s.addr, cur_words = (s.n + W - 1) / W, cur_write = s.write, cur_last = s.last;
            cur_due = (i128)t.start(s.addr, s.n, s.write, s.known) * den + num - den;
        }
        moving = active && (i128)c >= ceil_cycles(cur_due) && !stalled(threshold, seed, data_lane, c);
        cmd_ready = pending < depth && !stalled(threshold, seed, cmd_lane, c);
        if (moving && !cur_write) r_data = word(cur_addr);
    }
    bool w_ready() const { return moving && cur_write; }
    bool r_valid() const { return moving && !cur_write; }

    void clock(uint64_t c, bool cmd_valid, uint64_t cmd, bool w_valid, uint64_t w_data, uint64_t w_strb, bool r_ready) {
        if (cmd_valid && cmd_ready) {
            uint64_t addr = field(cmd, cl.addr_off, cl.addr_w) * W, n = field(cmd, cl.len_off, cl.len_w) * W;
            bool write = field(cmd, cl.write_off, 1);
            Segments parts;
            t.split(addr, n, parts);
            for (size_t i = 0; i < parts.size(); i++)
                segs.push_back({parts[i].first, parts[i].second, write, (int64_t)c + 1, i == parts.size() - 1});
            pending++;
        }
        if (moving && (cur_write ? w_valid : r_ready)) {
            if (cur_write) {
                word(cur_addr);
                for (uint64_t j = 0; j < W; j++)
                    if (w_strb >> j & 1) mem[cur_addr + j] = w_data >> (8 * j) & 0xFF;
            }
            cur_addr += W, cur_words--;
            cur_due += num + (i128)c * den - ceil_cycles(cur_due) * den;    // a stalled word delays the rest
            if (cur_words == 0) {
                t.finish((int64_t)c + 1);
                pending -= cur_last;
                active = false;
            }
        }
    }
};

// The port and timing lines of a harness's parameter file, the same in every harness: `port W
// DEPTH`, `cmd` (the command layout), `w_data_bits`, `interval NUM DEN`, `timing ideal |
// bandwidth LATENCY | sdram ...` (sim/verilator_system.py's timing_params writes them).
struct PortParams {
    uint64_t W = 1, depth = 4;
    CmdLayout cmd{};
    unsigned w_data_bits = 8;
    int64_t num = 1, den = 1, latency = 0;
    std::string timing = "ideal";
    SDRAMParams sdram{};

    // Reads the value of `key` when it is one of these lines; false for any other key.
    bool read(const std::string &key, std::istream &in) {
        if (key == "port") in >> W >> depth;
        else if (key == "cmd") in >> cmd.addr_off >> cmd.addr_w >> cmd.len_off >> cmd.len_w >> cmd.write_off;
        else if (key == "w_data_bits") in >> w_data_bits;
        else if (key == "interval") in >> num >> den;
        else if (key == "timing") {
            in >> timing;
            if (timing == "bandwidth") in >> latency;
            else if (timing == "sdram") {
                SDRAMParams &s = sdram;
                in >> s.rcd >> s.rp >> s.ras >> s.rc >> s.rfc >> s.cas >> s.wr >> s.refi >> s.page >> s.bank_bytes >> s.banks;
            } else if (timing != "ideal") throw std::runtime_error("unknown timing " + timing);
        } else return false;
        return true;
    }

    std::unique_ptr<Timing> make_timing() const {
        if (timing == "bandwidth") return std::unique_ptr<Timing>(new BandwidthTiming(latency));
        if (timing == "sdram") return std::unique_ptr<Timing>(new SDRAMTiming(sdram));
        return std::unique_ptr<Timing>(new IdealTiming());
    }
};
