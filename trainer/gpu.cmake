# gpu.cmake - included from trainer/cuda.cmake: the GPU training step
# (train_cuda.cu over the CUDA ops) in the CUDA build, or its stub that
# reports "unsupported" in the CPU-only build. Adds to rt_trainer.
if(RT_HAVE_CUDA)
  target_sources(rt_trainer PRIVATE ${CMAKE_CURRENT_LIST_DIR}/train_cuda.cu)
else()
  target_sources(rt_trainer PRIVATE ${CMAKE_CURRENT_LIST_DIR}/train_cuda_stub.c)
endif()
