/* A judge's accepted submission: reads a number, prints its double. */
#include <stdio.h>
int main(void) {
    long n = 0;
    if (scanf("%ld", &n) != 1) return 1;
    printf("%ld\n", 2 * n);
    return 0;
}
