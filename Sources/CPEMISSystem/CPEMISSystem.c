#include "CPEMISSystem.h"

#if defined(__linux__) && defined(__GLIBC__)
#include <malloc.h>

int cpemis_release_free_memory(void) { return malloc_trim(0); }
#else
int cpemis_release_free_memory(void) { return 0; }
#endif
