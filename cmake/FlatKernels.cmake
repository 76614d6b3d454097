# flat_add_isa(<isa> FLAGS <flags...>)
# Compiles kernels/<isa>/{pack,qk,qk_rows,softmax,rules,pv,quantize,table}.c, and only those, with the
# ISA's flags into an object library, and records FLAT_HAVE_<ISA> for the
# dispatcher. Every ISA folder holds the same file names (kernels/ukernel.h).
set(FLAT_KERNEL_FILES pack.c qk.c qk_rows.c softmax.c rules.c pv.c quantize.c table.c)

function(flat_add_isa isa)
  cmake_parse_arguments(A "" "" "FLAGS" ${ARGN})
  string(TOUPPER "${isa}" ISA)
  list(TRANSFORM FLAT_KERNEL_FILES PREPEND "${PROJECT_SOURCE_DIR}/kernels/${isa}/"
       OUTPUT_VARIABLE sources)
  add_library(flat_kernels_${isa} OBJECT ${sources})
  target_compile_options(flat_kernels_${isa} PRIVATE ${A_FLAGS})
  if(FLAT_CC_NO_VAR_TRACKING)
    # Debug builds (-g) keep line tables but not variable locations in the
    # kernels: gcc's variable tracking over their unrolled, inlined bodies
    # doubled their compile (avx512/qk_rows.c at -O2 -g: 82 -> 43 s), in
    # every CI leg.
    target_compile_options(flat_kernels_${isa} PRIVATE -fno-var-tracking)
  endif()
  if(FLAT_BUILD_FUZZ)
    # The fuzz build instruments the runtime and the harness with ASan and
    # UBSan, the kernels with coverage only: clang 14's ASan takes 200-340 s
    # per AVX-512 kernel file (measured on qk_rows.c). The gcc ASan + UBSan
    # leg checks the kernels, and replays the fuzz corpus through them.
    target_compile_options(flat_kernels_${isa} PRIVATE -fno-sanitize=address,undefined)
  endif()
  target_include_directories(flat_kernels_${isa} PRIVATE
      ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/kernels)
  set_target_properties(flat_kernels_${isa} PROPERTIES
      POSITION_INDEPENDENT_CODE ON C_VISIBILITY_PRESET hidden)
  set_property(GLOBAL APPEND PROPERTY FLAT_KERNEL_OBJECTS
               $<TARGET_OBJECTS:flat_kernels_${isa}>)
  set_property(GLOBAL APPEND PROPERTY FLAT_ISA_DEFINES FLAT_HAVE_${ISA}=1)
  set_property(GLOBAL APPEND PROPERTY FLAT_ISAS ${isa})
endfunction()
