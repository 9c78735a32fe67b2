// sim/cpp/sdram_chip.h on its own, for tests/test_sim_board.py: the chip of the params file
// (its chip_ lines, as sim/board.py writes them) takes one pin sample per stdin line,
//   CKE CS_N RAS_N CAS_N WE_N BA A DQM DQ DQ_OE
// and answers each with the word it drives on dq_i until the next edge; at the end of the input
// it prints its report (every violation, then the command counts), so that a test can compare
// it with sim.sdram_chip.SDRAMChip fed the same samples.
#include "sdram_chip.h"
#include <fstream>
#include <iostream>

int main(int argc, char **argv) {
    if (argc < 2) {
        std::cerr << "usage: " << argv[0] << " PARAMS\n";
        return 2;
    }
    try {
        std::ifstream in(argv[1]);
        if (!in) throw std::runtime_error(std::string("cannot read ") + argv[1]);
        ChipParams p;
        std::string key;
        while (in >> key)
            if (!p.read(key, in)) throw std::runtime_error("unknown parameter " + key);
        SDRAMChip chip(p, (size_t)-1);
        uint64_t v[10];
        while (std::cin >> v[0] >> v[1] >> v[2] >> v[3] >> v[4] >> v[5] >> v[6] >> v[7] >> v[8] >> v[9])
            std::cout << chip.step(v[0], v[1], v[2], v[3], v[4], (int64_t)v[5], v[6], v[7], v[8], v[9]) << "\n";
        std::cout << chip.report();
        return 0;
    } catch (const std::exception &e) {
        std::cerr << "error: " << e.what() << "\n";
        return 4;
    }
}
