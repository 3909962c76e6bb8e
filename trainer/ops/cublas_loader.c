/* cublas_loader.c - loads cuBLAS with dlopen when the first CUDA context is
 * created, instead of linking it.
 *
 * Why: libcublasLt's static initialisers run at every process start and
 * take about 0.4 s even on a machine without a GPU (perf on the development
 * VM: most of a CUDA build's 0.5 s `ringtrain --version`). A CUDA build
 * pays it in every command, also in CPU-only training, and twice where
 * `ringtrain train` re-executes itself for its thread environment
 * (cpu_env.c). Loaded here it costs only the processes that use a GPU,
 * once. The trainer calls seven cuBLAS functions; the table holds them.
 *
 * Where from: the soname of the toolkit the build used (found like any
 * shared library: LD_LIBRARY_PATH, the binary's RUNPATH, which holds the
 * CUDA library directory because cudart is linked from it, ld.so.cache),
 * then the path CMake found at configure time. */
#define _GNU_SOURCE
#include "trainer/ops/cublas_loader.h"

#include "common/check.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* The cuBLAS header maps some names to versioned symbols (cublasCreate ->
 * cublasCreate_v2); the symbol looked up is the one the macro expands to. */
#define RT_SYMBOL_NAME_(x) #x
#define RT_SYMBOL_NAME(x) RT_SYMBOL_NAME_(x)

static rt_cublas_api api;
static char load_error[512];
static pthread_once_t load_once = PTHREAD_ONCE_INIT;

static void *open_cublas(void)
{
    static const char *const candidates[] = { RT_CUBLAS_SONAME, RT_CUBLAS_PATH };
    char tried[sizeof load_error - 64] = ""; /* room for the prefix below */
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        void *lib = dlopen(candidates[i], RTLD_NOW | RTLD_LOCAL);
        if (lib != NULL)
            return lib;
        const char *why = dlerror();
        size_t used = strlen(tried);
        snprintf(tried + used, sizeof tried - used, "%s%s", used ? "; " : "",
                 why ? why : candidates[i]);
    }
    snprintf(load_error, sizeof load_error, "cannot load cuBLAS: %s", tried);
    return NULL;
}

static void load_cublas(void)
{
    void *lib = open_cublas();
    if (lib == NULL)
        return;
    struct {
        void **slot;
        const char *name;
    } symbols[] = {
        { (void **)&api.Create, RT_SYMBOL_NAME(cublasCreate) },
        { (void **)&api.Destroy, RT_SYMBOL_NAME(cublasDestroy) },
        { (void **)&api.SetStream, RT_SYMBOL_NAME(cublasSetStream) },
        { (void **)&api.SetWorkspace, RT_SYMBOL_NAME(cublasSetWorkspace) },
        { (void **)&api.SetMathMode, RT_SYMBOL_NAME(cublasSetMathMode) },
        { (void **)&api.Sgemm, RT_SYMBOL_NAME(cublasSgemm) },
        { (void **)&api.SgemmStridedBatched, RT_SYMBOL_NAME(cublasSgemmStridedBatched) },
    };
    for (size_t i = 0; i < sizeof symbols / sizeof symbols[0]; i++) {
        void *fn = dlsym(lib, symbols[i].name);
        if (fn == NULL) {
            snprintf(load_error, sizeof load_error, "cuBLAS (%s) has no %s", RT_CUBLAS_SONAME,
                     symbols[i].name);
            api = (rt_cublas_api){ 0 };
            return;
        }
        *symbols[i].slot = fn;
    }
    /* the library stays loaded for the life of the process: handles made
     * from it may outlive any one context */
}

rt_status cublas_api_get(const rt_cublas_api **out)
{
    CHECK_ARG(out != NULL, "cublas_api_get: out is NULL");
    *out = NULL;
    if (pthread_once(&load_once, load_cublas) != 0)
        return rt_fail(RT_ERR_CUDA, "cannot load cuBLAS: pthread_once failed");
    if (api.Create == NULL)
        return rt_fail(RT_ERR_CUDA, "%s", load_error);
    *out = &api;
    return RT_OK;
}
