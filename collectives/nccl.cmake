# nccl.cmake - included at the end of collectives/CMakeLists.txt: the NCCL
# device all-reduce (our ring and the ncclAllReduce reference) in the CUDA
# build, or the stub that reports "unsupported" in the CPU-only build.
# Adds to the existing target rt_collectives.
if(RT_HAVE_CUDA)
  target_sources(rt_collectives PRIVATE ${CMAKE_CURRENT_LIST_DIR}/nccl_comm.cu
    ${CMAKE_CURRENT_LIST_DIR}/nccl_ring_plan.c ${CMAKE_CURRENT_LIST_DIR}/nccl_history.c)
  target_link_libraries(rt_collectives PUBLIC CUDA::cudart NCCL::nccl)
else()
  # the schedule and the flight recorder are plain C: their CPU tests run
  # in every build
  target_sources(rt_collectives PRIVATE ${CMAKE_CURRENT_LIST_DIR}/nccl_comm_stub.c
    ${CMAKE_CURRENT_LIST_DIR}/nccl_ring_plan.c ${CMAKE_CURRENT_LIST_DIR}/nccl_history.c)
endif()
