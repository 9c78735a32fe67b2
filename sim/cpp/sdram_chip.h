// The behavioural SDR SDRAM of sim/sdram_chip.py (SDRAMChip) for the Verilator harnesses, rule
// for rule: the same power-up, bank-state, timing, refresh and bus checks with the same messages,
// the same data behaviour (DQM on writes and, two cycles ahead, on read data; undriven or masked
// bytes read as FLOAT; read_delay register stages before dq_i). Every number comes from the
// Python side (sim/board.py's chip_params writes the part, rtl.mem.sdram.Timing, the command
// codes and the mode register's layout from the objects pysim uses); nothing is typed here.
// It counts every violation and keeps the first `keep` messages ("edge E: RULE: ...").
#pragma once
#include <cstdint>
#include <istream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

// `name=value` pairs, the rest of a parameter line.
static std::map<std::string, std::string> chip_pairs(std::istream &in) {
    std::string line, tok;
    std::getline(in, line);
    std::istringstream s(line);
    std::map<std::string, std::string> out;
    while (s >> tok) {
        size_t eq = tok.find('=');
        if (eq == std::string::npos) throw std::runtime_error("chip parameter " + tok + ": expected NAME=VALUE");
        out[tok.substr(0, eq)] = tok.substr(eq + 1);
    }
    return out;
}

struct ModeField { std::string name; unsigned offset, width; };

struct ChipParams {
    // chip_part: geometry, the part's CAS latency, cycles of power-up wait, read register
    // stages, refresh postponement, the value of an undriven byte, the all-banks address pin
    std::map<std::string, int64_t> part;
    // chip_timing: rtl.mem.sdram.Timing's fields (cycles at the clock)
    std::map<std::string, int64_t> timing;
    // chip_commands: the (ras_n, cas_n, we_n) code of each command name
    std::map<std::string, int64_t> commands;
    // chip_mode: the mode register's fields in layout order (NAME=OFFSET:WIDTH) and its size
    std::vector<ModeField> mode;
    unsigned mode_size = 0;

    static void numbers(std::istream &in, std::map<std::string, int64_t> &into) {
        for (auto &kv : chip_pairs(in)) into[kv.first] = std::stoll(kv.second);
    }
    // Reads the value of `key` when it is one of the chip's lines; false for any other key.
    bool read(const std::string &key, std::istream &in) {
        if (key == "chip_part") numbers(in, part);
        else if (key == "chip_timing") numbers(in, timing);
        else if (key == "chip_commands") numbers(in, commands);
        else if (key == "chip_mode") {
            std::string tok, line;
            std::getline(in, line);
            std::istringstream s(line);
            s >> mode_size;
            while (s >> tok) {
                size_t eq = tok.find('='), colon = tok.find(':');
                if (eq == std::string::npos || colon == std::string::npos)
                    throw std::runtime_error("chip_mode field " + tok + ": expected NAME=OFFSET:WIDTH");
                mode.push_back({tok.substr(0, eq), (unsigned)std::stoul(tok.substr(eq + 1, colon - eq - 1)),
                                (unsigned)std::stoul(tok.substr(colon + 1))});
            }
        } else return false;
        return true;
    }
    bool given() const { return !part.empty(); }
};

static int64_t chip_need(const std::map<std::string, int64_t> &m, const char *what, const std::string &name) {
    auto it = m.find(name);
    if (it == m.end()) throw std::runtime_error(std::string("chip parameters: ") + what + " lacks " + name);
    return it->second;
}

struct SDRAMChip {
    static constexpr int64_t NEVER = -(1ll << 40);
    struct Bank { int64_t row = -1, act = NEVER, pre = NEVER, write = NEVER; };   // row -1: idle

    // the parameters
    int64_t banks_n, row_bits, col_bits, nbytes, part_cas, power_up, read_delay, refresh_slack, float_byte, a10;
    int64_t rcd, rp, ras, rc, rfc, wr, mrd, rrd, refi;
    int64_t MRS, REF, PRE, ACT, WRITE, READ, NOP;
    std::map<int64_t, std::string> names;
    std::vector<ModeField> mode;
    unsigned mode_size;
    size_t keep;
    // the state
    std::vector<uint8_t> data;                // bank:row:column words, little-endian
    std::vector<Bank> banks;
    int64_t cas = -1;                         // CAS latency once the mode register is set (-1: not yet)
    int64_t init_refreshes = 0;
    bool precharged = false;
    int64_t last_ref = NEVER, last_mrs = NEVER, last_act = NEVER;
    bool has_deadline = false;
    int64_t refresh_deadline = 0;
    std::map<int64_t, uint64_t> reads;        // edge at which the chip drives a word -> the word
    std::map<int64_t, uint64_t> dqm;          // DQM of recent edges (read masking)
    int64_t edge = 0;
    uint64_t violations = 0;
    std::vector<std::string> first;           // the first `keep` messages
    std::map<std::string, uint64_t> counts;   // commands seen, by name

    SDRAMChip(const ChipParams &p, size_t keep) : keep(keep) {
        auto P = [&](const char *n) { return chip_need(p.part, "chip_part", n); };
        auto T = [&](const char *n) { return chip_need(p.timing, "chip_timing", n); };
        auto C = [&](const char *n) { return chip_need(p.commands, "chip_commands", n); };
        banks_n = P("banks"), row_bits = P("row_bits"), col_bits = P("col_bits"), nbytes = P("width_bits") / 8;
        part_cas = P("cas"), power_up = P("power_up"), read_delay = P("read_delay");
        refresh_slack = P("refresh_slack"), float_byte = P("float"), a10 = P("a10");
        rcd = T("rcd"), rp = T("rp"), ras = T("ras"), rc = T("rc"), rfc = T("rfc"), wr = T("wr"), mrd = T("mrd");
        rrd = T("rrd"), refi = T("refi");
        MRS = C("MRS"), REF = C("REF"), PRE = C("PRE"), ACT = C("ACT"), WRITE = C("WRITE"), READ = C("READ");
        NOP = C("NOP");
        for (auto &kv : p.commands) names[kv.second] = kv.first;
        mode = p.mode, mode_size = p.mode_size;
        for (const char *f : {"burst_length", "burst_type", "cas_latency", "op_mode"}) mode_field(f);
        data.assign((size_t)(banks_n << (row_bits + col_bits)) * nbytes, 0);
        banks.assign(banks_n, Bank());
    }

    const ModeField &mode_field(const std::string &name) const {
        for (auto &f : mode)
            if (f.name == name) return f;
        throw std::runtime_error("chip_mode lacks " + name);
    }
    static uint64_t bits(uint64_t v, unsigned off, unsigned w) { return v >> off & ((1ull << w) - 1); }

    void flag(const std::string &what) {
        violations++;
        if (first.size() < keep) first.push_back("edge " + std::to_string(edge) + ": " + what);
    }
    void since(const char *name, int64_t then, int64_t need, const std::string &what) {
        if (edge - then < need)
            flag(std::string(name) + ": " + what + " " + std::to_string(edge - then) + " cycles after, needs " +
                 std::to_string(need));
    }
    uint64_t word_at(int64_t ba, int64_t row, int64_t col) const {
        size_t at = (size_t)((((ba << row_bits) | row) << col_bits) | col) * nbytes;
        uint64_t v = 0;
        for (int64_t j = 0; j < nbytes; j++) v |= (uint64_t)data[at + j] << (8 * j);
        return v;
    }

    // -- commands ---------------------------------------------------------------------------
    void activate(int64_t ba, uint64_t a) {
        Bank &b = banks[ba];
        std::string bank = std::to_string(ba);
        if (b.row >= 0) flag("ACTIVATE to bank " + bank + " with row " + std::to_string(b.row) + " open");
        since("tRP", b.pre, rp, "ACTIVATE bank " + bank + " PRECHARGE");
        since("tRC", b.act, rc, "ACTIVATE bank " + bank + " its ACTIVATE");
        since("tRRD", last_act, rrd, "ACTIVATE another ACTIVATE");
        b.row = (int64_t)(a & ((1ull << row_bits) - 1)), b.act = edge;
        last_act = edge;
    }
    void column(int64_t ba, uint64_t a, bool write, uint64_t dq, uint64_t dqm_v, bool dq_oe) {
        Bank &b = banks[ba];
        std::string name = write ? "WRITE" : "READ", bank = std::to_string(ba);
        if (b.row < 0) {
            flag(name + " to idle bank " + bank);
            return;
        }
        since("tRCD", b.act, rcd, name + " bank " + bank + " ACTIVATE");
        if (a >> a10 & 1) flag(name + " with auto-precharge (A10), not modelled");
        int64_t col = (int64_t)(a & ((1ull << col_bits) - 1));
        if (write) {
            if (!dq_oe) flag("WRITE without driving dq");
            size_t at = (size_t)((((ba << row_bits) | b.row) << col_bits) | col) * nbytes;
            for (int64_t j = 0; j < nbytes; j++)
                if (!(dqm_v >> j & 1)) data[at + j] = dq >> (8 * j) & 0xFF;
            b.write = edge;
        } else {
            reads[edge + cas] = word_at(ba, b.row, col);
        }
    }
    void precharge(int64_t ba, uint64_t a) {
        bool all = a >> a10 & 1;
        for (int64_t i = all ? 0 : ba; i < (all ? banks_n : ba + 1); i++) {
            Bank &b = banks[i];
            if (b.row < 0) continue;                // a precharge of an idle bank is a NOP for it
            since("tRAS", b.act, ras, "PRECHARGE bank " + std::to_string(i) + " ACTIVATE");
            since("tWR", b.write, wr, "PRECHARGE bank " + std::to_string(i) + " the last write");
            b.row = -1, b.pre = edge;
        }
        if (all) precharged = true;
    }
    void idle_all(const std::string &name) {
        for (int64_t i = 0; i < banks_n; i++) {
            if (banks[i].row >= 0) flag(name + " with bank " + std::to_string(i) + " active");
            since("tRP", banks[i].pre, rp, name + " PRECHARGE of bank " + std::to_string(i));
        }
    }
    void refresh() {
        idle_all("AUTO REFRESH");
        for (int64_t i = 0; i < banks_n; i++)
            since("tRC", banks[i].act, rc, "AUTO REFRESH ACTIVATE of bank " + std::to_string(i));
        last_ref = edge;
        if (cas < 0) init_refreshes++;
        else refresh_deadline += refi;
    }
    void set_mode(int64_t ba, uint64_t a) {
        idle_all("MODE REGISTER SET");
        if (init_refreshes < 2)
            flag("MODE REGISTER SET after " + std::to_string(init_refreshes) + " of the 2 power-up refreshes");
        auto field = [&](const char *n) { const ModeField &f = mode_field(n); return bits(a, f.offset, f.width); };
        if (ba || a >> mode_size) {
            std::ostringstream s;
            s << "MODE REGISTER SET with reserved bits set (ba " << ba << ", a 0x" << std::hex << a << ")";
            flag(s.str());
        }
        if (field("burst_length") || field("burst_type") || field("op_mode")) {
            std::string d = "{";
            for (size_t i = 0; i < mode.size(); i++)
                d += (i ? ", '" : "'") + mode[i].name + "': " + std::to_string(bits(a, mode[i].offset, mode[i].width));
            flag("mode " + d + "}: only burst length 1, sequential, standard operation are modelled");
        }
        int64_t cl = (int64_t)field("cas_latency");
        if ((cl != 2 && cl != 3) || cl < part_cas)
            flag("CAS latency " + std::to_string(cl) + ": the part needs " + std::to_string(part_cas) + " (2 or 3)");
        cas = cl;
        last_mrs = edge;
        has_deadline = true, refresh_deadline = edge + refi + refresh_slack;
    }

    // -- one edge ---------------------------------------------------------------------------
    void command(int64_t code, int64_t ba, uint64_t a, uint64_t dq, uint64_t dqm_v, bool dq_oe) {
        const std::string &name = names.at(code);
        counts[name]++;
        if (edge < power_up)
            flag(name + " during the power-up wait (" + std::to_string(power_up) + " cycles)");
        if (!precharged && !(code == PRE && (a >> a10 & 1))) flag(name + " before the power-up PRECHARGE ALL");
        since("tRFC", last_ref, rfc, name + " AUTO REFRESH");
        since("tMRD", last_mrs, mrd, name + " MODE REGISTER SET");
        if ((code == ACT || code == READ || code == WRITE) && cas < 0) {
            flag(name + " before MODE REGISTER SET");
            return;
        }
        if (code == ACT) activate(ba, a);
        else if (code == READ || code == WRITE) column(ba, a, code == WRITE, dq, dqm_v, dq_oe);
        else if (code == PRE) precharge(ba, a);
        else if (code == REF) refresh();
        else if (code == MRS) set_mode(ba, a);
    }

    // The pins sampled at one clock edge; returns the word dq_i shows until the next.
    uint64_t step(bool cke, bool cs_n, bool ras_n, bool cas_n, bool we_n, int64_t ba, uint64_t a, uint64_t dqm_v,
                  uint64_t dq, bool dq_oe) {
        if (!cke) flag("CKE low (power-down and self-refresh are not modelled)");
        dqm[edge] = dqm_v;
        dqm.erase(edge - 4 - read_delay);
        if (dq_oe && (reads.count(edge - 1) || reads.count(edge) || reads.count(edge + 1)))
            flag("bus contention: dq driven within a cycle of read data");
        if (!cs_n) {
            int64_t code = (int64_t)ras_n << 2 | (int64_t)cas_n << 1 | (int64_t)we_n;
            if (code != NOP) command(code, ba, a, dq, dqm_v, dq_oe);
        }
        if (has_deadline && edge > refresh_deadline) {
            auto it = counts.find("REF");
            int64_t refs = (it == counts.end() ? 0 : (int64_t)it->second) - init_refreshes;
            flag("refresh overdue: " + std::to_string(refs) + " refreshes since MODE REGISTER SET at edge " +
                 std::to_string(last_mrs));
            refresh_deadline += refi;
        }
        edge++;
        return bus(edge - read_delay);
    }

    // The word the chip drives at edge d (DQM of edge d - 2 masks its bytes).
    uint64_t bus(int64_t d) {
        reads.erase(d - 3);
        auto w = reads.find(d);
        auto m = dqm.find(d - 2);
        uint64_t mask = m == dqm.end() ? 0 : m->second, out = 0;
        for (int64_t j = 0; j < nbytes; j++) {
            bool undriven = w == reads.end() || (mask >> j & 1);
            out |= (undriven ? (uint64_t)float_byte : (w->second >> (8 * j) & 0xFF)) << (8 * j);
        }
        return out;
    }

    // "COUNT KEPT", the kept messages one a line, then the command counts "NAME=N ..."
    std::string report() const {
        std::string s = std::to_string(violations) + " " + std::to_string(first.size()) + "\n";
        for (auto &m : first) s += m + "\n";
        std::string c;
        for (auto &kv : counts) c += (c.empty() ? "" : " ") + kv.first + "=" + std::to_string(kv.second);
        return s + c + "\n";
    }
};
