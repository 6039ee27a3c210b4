// What Swift's Glibc module does not export: returning freed heap memory to the system.
#ifndef CPEMIS_SYSTEM_H
#define CPEMIS_SYSTEM_H

/// Gives the heap's free pages back to the system (glibc's malloc_trim(0)): after a crowd of
/// clients let go of their memory, the process's resident size falls again instead of staying at
/// its peak. Returns 1 if memory was released, 0 if not or where there is no such call.
int cpemis_release_free_memory(void);

#endif
