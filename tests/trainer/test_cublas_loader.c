/* test_cublas_loader.c - cuBLAS is loaded on first use, not at start (CUDA
 * build only; no GPU needed):
 *  - the ringtrain binary (argv[1]) does not load libcublas at start:
 *    the dynamic loader's own list of what it loads (LD_TRACE_LOADED_OBJECTS,
 *    what ldd prints) names no libcublas, directly or through another
 *    library; before the first cublas_api_get() none is mapped here either;
 *  - the table's every entry is the function an independent dlopen of
 *    the same library gives under its versioned symbol name, typed here by
 *    hand (cublasCreate_v2 ...), so a swapped or mis-named slot fails;
 *  - a second call returns the same table; libcublas is mapped after. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "test_util.h"
#include "trainer/ops/cublas_loader.h"

/* whether a mapping of this process names libcublas (not libcublasLt) */
static int cublas_mapped(void)
{
    FILE *maps = fopen("/proc/self/maps", "r");
    if (maps == NULL)
        return -1;
    char line[4096];
    int found = 0;
    while (fgets(line, sizeof line, maps) != NULL)
        if (strstr(line, "/libcublas.so") != NULL)
            found = 1;
    fclose(maps);
    return found;
}

/* whether the dynamic loader would load libcublas (or libcublasLt) when
 * starting `binary`; -1 when it cannot be asked */
static int binary_loads_cublas(const char *binary)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "LD_TRACE_LOADED_OBJECTS=1 '%s' 2>&1", binary);
    FILE *p = popen(cmd, "r");
    if (p == NULL)
        return -1;
    char line[4096];
    int found = 0, lines = 0;
    while (fgets(line, sizeof line, p) != NULL) {
        lines++;
        if (strstr(line, "libcublas") != NULL) {
            found = 1;
            fprintf(stderr, "loaded at start: %s", line);
        }
    }
    int rc = pclose(p);
    return rc == 0 && lines > 0 ? found : -1;
}

int main(int argc, char **argv)
{
    EXPECT(argc == 2, "usage: test_cublas_loader PATH_TO_RINGTRAIN");
    if (argc == 2)
        EXPECT(binary_loads_cublas(argv[1]) == 0, "%s loads libcublas at start (linked again?)",
               argv[1]);
    EXPECT(cublas_mapped() == 0, "libcublas is mapped before its first use");

    const rt_cublas_api *api = NULL;
    rt_status st = cublas_api_get(&api);
    EXPECT(st == RT_OK && api != NULL, "cublas_api_get: %s", rt_last_error());
    if (api == NULL)
        return TEST_EXIT();
    EXPECT(cublas_mapped() == 1, "libcublas is not mapped after cublas_api_get");

    void *lib = dlopen(RT_TEST_CUBLAS_SONAME, RTLD_NOW | RTLD_NOLOAD);
    EXPECT(lib != NULL, "%s is not the loaded library: %s", RT_TEST_CUBLAS_SONAME, dlerror());
    if (lib != NULL) {
        struct {
            void *got;
            const char *symbol;
        } want[] = {
            { (void *)api->Create, "cublasCreate_v2" },
            { (void *)api->Destroy, "cublasDestroy_v2" },
            { (void *)api->SetStream, "cublasSetStream_v2" },
            { (void *)api->SetWorkspace, "cublasSetWorkspace_v2" },
            { (void *)api->SetMathMode, "cublasSetMathMode" },
            { (void *)api->Sgemm, "cublasSgemm_v2" },
            { (void *)api->SgemmStridedBatched, "cublasSgemmStridedBatched" },
        };
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
            void *fn = dlsym(lib, want[i].symbol);
            EXPECT(fn != NULL && fn == want[i].got, "slot %zu is not %s (%p, library's %p)", i,
                   want[i].symbol, want[i].got, fn);
        }
        dlclose(lib);
    }

    const rt_cublas_api *again = NULL;
    EXPECT(cublas_api_get(&again) == RT_OK && again == api, "second call: another table");
    return TEST_EXIT();
}
