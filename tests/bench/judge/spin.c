/* Burns the CPU time given in milliseconds (argv[1]), for the accuracy check. */
#include <stdlib.h>
#include <time.h>
int main(int argc, char **argv) {
    double want = (argc > 1 ? atof(argv[1]) : 300) / 1000.0;
    volatile unsigned long x = 0;
    while ((double)clock() / CLOCKS_PER_SEC < want) x++;
    return 0;
}
