/* Exits 0 when this process may use Intel AMX and an int8 tile product gives the right result.
 *
 * `make install LLAMA_AMX=on` compiles and runs it before building llama.cpp with its AMX kernels,
 * and stops if it fails: /proc/cpuinfo can list AMX on a virtual machine that does not grant the
 * tile state, where the first tile instruction is an illegal instruction. Build: cc -O2 -mamx-tile -mamx-int8 amx_probe.c
 */
#include <immintrin.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

/* Palette 1, tiles 0-2 of 16 rows by 64 bytes. In read-only storage: GCC 12's ldtilecfg intrinsic
 * declares an 8-byte operand, so stores that build a configuration on the stack can be dropped. */
_Alignas(64) static const uint8_t config[64] = {
    1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    64, 0, 64, 0, 64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    16, 16, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

int main(void) {
    if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0) {
        return 2;
    }
    static int8_t a[16 * 64], b[16 * 64];
    static int32_t c[16 * 16];
    for (int i = 0; i < 16 * 64; i++) {
        a[i] = 1;
        b[i] = 2;
    }
    _tile_loadconfig(config);
    _tile_loadd(1, a, 64);
    _tile_loadd(2, b, 64);
    _tile_zero(0);
    _tile_dpbssd(0, 1, 2);
    _tile_stored(0, c, 64);
    _tile_release();
    /* each entry sums 64 products of 1 and 2 */
    for (int i = 0; i < 16 * 16; i++) {
        if (c[i] != 128) {
            return 3;
        }
    }
    return 0;
}
