/* import_idx.c - IDX image/label pairs (MNIST, Fashion-MNIST) to a
 * classification dataset. */
#include "data/import.h"

#include <stdio.h>
#include <string.h>

#include "common/check.h"
#include "data/dataset_write.h"
#include "data/idx.h"
#include "data/import_paths.h"

rt_status import_idx(const char *images_path, const char *labels_path, const char *out_path,
                     import_idx_summary_t *summary)
{
    idx_array_t images, labels;
    dataset_writer_t *w = NULL;
    rt_status st;
    memset(&labels, 0, sizeof labels);
    const import_path_t ins[] = {{"images", images_path}, {"labels", labels_path}};
    const import_path_t outs[] = {{"out", out_path}};
    TRY(import_check_paths(ins, 2, outs, 1));
    TRY(idx_read(images_path, 0, &images));
    TRY_GOTO(st, idx_read(labels_path, 1, &labels), done);
    if (images.dims < 2) {
        st = rt_fail(RT_ERR_FORMAT,
                     "%s: magic number 0x%08x gives %d dimension, images need at least 2 "
                     "dimensions (a label file?)", images_path, 0x800u + (unsigned)images.dims,
                     images.dims);
        goto done;
    }
    if (images.count != labels.count) {
        st = rt_fail(RT_ERR_FORMAT, "%s has %lld images but %s has %lld labels", images_path,
                     (long long)images.count, labels_path, (long long)labels.count);
        goto done;
    }
    int max_label = 0;
    for (int64_t i = 0; i < labels.count; i++)
        if (labels.data[i] > max_label)
            max_label = labels.data[i];
    int64_t features = 1;
    for (int i = 1; i < images.dims; i++)
        features *= images.shape[i];

    TRY_GOTO(st, dataset_writer_create(out_path, &w), done);
    TRY_GOTO(st, dataset_writer_classification(w, images.count, images.dims - 1, images.shape + 1,
                                               RT_DTYPE_U8, RT_DTYPE_U8, max_label + 1), done);
    TRY_GOTO(st, dataset_writer_put(w, "inputs", 0, images.count, images.data), done);
    TRY_GOTO(st, dataset_writer_put(w, "labels", 0, labels.count, labels.data), done);
    char source[2048];
    snprintf(source, sizeof source, "idx images=%s labels=%s", images_path, labels_path);
    TRY_GOTO(st, dataset_writer_set_string(w, "source", source), done);
    st = dataset_writer_commit(w);
    w = NULL;
    if (st == RT_OK && summary) {
        summary->records = images.count;
        summary->features = features;
        summary->num_classes = max_label + 1;
    }
done:
    dataset_writer_abort(w);
    idx_free(&images);
    idx_free(&labels);
    return st;
}
