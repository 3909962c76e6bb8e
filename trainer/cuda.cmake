# cuda.cmake - included at the end of trainer/CMakeLists.txt: the CUDA ops
# (op_cuda.cu, cuBLAS) in the CUDA build, or the stub that reports
# "unsupported" in the CPU-only build. Adds to the existing target rt_trainer.
if(RT_HAVE_CUDA)
  target_sources(rt_trainer PRIVATE ${CMAKE_CURRENT_LIST_DIR}/op_cuda.cu)
  target_link_libraries(rt_trainer PUBLIC CUDA::cudart CUDA::cublas)
else()
  target_sources(rt_trainer PRIVATE ${CMAKE_CURRENT_LIST_DIR}/op_cuda_stub.c)
endif()
include(${CMAKE_CURRENT_LIST_DIR}/gpu.cmake)
