# ckpt.cmake - the checkpoint layer (HDF5 files, atomic commit, verify,
# find-latest, prune, digest, inspect) added to rt_trainer. Included from
# trainer/CMakeLists.txt.
target_sources(rt_trainer PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/ckpt_common.c
  ${CMAKE_CURRENT_LIST_DIR}/ckpt_write.c
  ${CMAKE_CURRENT_LIST_DIR}/ckpt_read.c
  ${CMAKE_CURRENT_LIST_DIR}/ckpt_verify.c
  ${CMAKE_CURRENT_LIST_DIR}/ckpt_dir.c
  ${CMAKE_CURRENT_LIST_DIR}/ckpt_digest.c
  ${CMAKE_CURRENT_LIST_DIR}/ckpt_inspect.c
  ${CMAKE_CURRENT_LIST_DIR}/ckpt_resume.c
  ${CMAKE_CURRENT_LIST_DIR}/ckpt_agree.c)
